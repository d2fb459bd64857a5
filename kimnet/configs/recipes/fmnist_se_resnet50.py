"""SE-ResNet-50 on Fashion-MNIST at 56 px, ImageNet stem.

No row in the benchmark table; ResNet-18's 94.9% is the bar.

- The SENet family's lightest member that is not grouped (TensorFlow's grouped
  convolutions are slow on CPUs); ImageNet stem at 56 px for a quarter of the small-input
  stem's multiply-adds (994M at 28 px).
- SGD with Nesterov momentum at 0.1, weight decay 5e-4, one warm-up epoch then cosine;
  flips and 4-pixel crops; label smoothing 0.1.
"""

from kimnet.configs.recipes import recipe

SETTINGS = {
    "data": {"image_size": 56, "batch_size": 128},
    "model": {"name": "se_resnet50", "small_input": "false"},
    "augment": {"ops": "flip_h,crop=4"},
    "optim": {
        "name": "sgd",
        "learning_rate": 0.1,
        "momentum": 0.9,
        "weight_decay": 0.0005,
        "label_smoothing": 0.1,
    },
    "schedule": {"epochs": 6, "warmup_epochs": 1.0},
}


def get_config(arg=None):
    return recipe("fmnist_se_resnet50", arg, SETTINGS)
