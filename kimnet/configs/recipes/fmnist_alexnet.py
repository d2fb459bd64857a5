"""AlexNet (small-input stem) on Fashion-MNIST at its native 28 px.

Meant to beat the benchmark table's AlexNet row (89.9%).

- AlexNet's ImageNet stem needs 67 px; the small-input stem takes 28 px as they are.
- AdamW 1e-3, half the convolutional nets' rate, for its large fully connected
  layers; weight decay 0.05, one warm-up epoch then cosine; its own dropout in the
  classifier; flips and 2-pixel crops; label smoothing 0.1.
"""

from kimnet.configs.recipes import recipe

SETTINGS = {
    "data": {"image_size": 28, "batch_size": 128},
    "model": {"name": "alexnet", "small_input": "true"},
    "augment": {"ops": "flip_h,crop=2"},
    "optim": {"learning_rate": 0.001, "weight_decay": 0.05, "label_smoothing": 0.1},
    "schedule": {"epochs": 10, "warmup_epochs": 1.0},
}


def get_config(arg=None):
    return recipe("fmnist_alexnet", arg, SETTINGS)
