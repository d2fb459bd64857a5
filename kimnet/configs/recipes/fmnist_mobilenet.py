"""MobileNet (v1, width 1.0, small-input stem) on Fashion-MNIST at its native 28 px.

Meant to beat the benchmark table's MobileNet row (95.0%).

- The same design choices as ``fmnist_mobilenetv2`` (28 px, AdamW 2e-3 with weight
  decay 0.05, one warm-up epoch then cosine, flips and 2-pixel crops, label smoothing
  0.1, dropout 0.2), so the two versions compare on one schedule.
"""

from kimnet.configs.recipes import recipe

SETTINGS = {
    "data": {"image_size": 28, "batch_size": 128},
    "model": {"name": "mobilenet", "dropout": 0.2, "small_input": "true"},
    "augment": {"ops": "flip_h,crop=2"},
    "optim": {"learning_rate": 0.002, "weight_decay": 0.05, "label_smoothing": 0.1},
    "schedule": {"epochs": 16, "warmup_epochs": 1.0},
}


def get_config(arg=None):
    return recipe("fmnist_mobilenet", arg, SETTINGS)
