"""DenseNet-121 on Fashion-MNIST at 56 px, ImageNet stem.

No row in the benchmark table; ResNet-18's 94.9% is the bar for a network of its cost.

- 56 px with the ImageNet stem (dense blocks at 14x14 ... 2x2): the small-input stem at
  28 px costs four times the multiply-adds (672M).
- SGD with Nesterov momentum at 0.1, weight decay 5e-4 (the DenseNet paper's), one
  warm-up epoch then cosine; flips and 4-pixel crops; label smoothing 0.1.
"""

from kimnet.configs.recipes import recipe

SETTINGS = {
    "data": {"image_size": 56, "batch_size": 128},
    "model": {"name": "densenet121", "small_input": "false"},
    "augment": {"ops": "flip_h,crop=4"},
    "optim": {
        "name": "sgd",
        "learning_rate": 0.1,
        "momentum": 0.9,
        "weight_decay": 0.0005,
        "label_smoothing": 0.1,
    },
    "schedule": {"epochs": 8, "warmup_epochs": 1.0},
}


def get_config(arg=None):
    return recipe("fmnist_densenet121", arg, SETTINGS)
