"""GoogLeNet (Inception v1, auxiliary heads) on Fashion-MNIST at 56 px, ImageNet stem.

Meant to beat the benchmark table's GoogLeNet row (93.7%).

- 56 px with the ImageNet stem starts the inception blocks at 7x7, as 224 px does at
  28x28 scaled down; the small-input stem at 28 px costs four times the multiply-adds.
- AdamW 2e-3, weight decay 0.05 (Keras' AdamW scales it by the learning rate), one
  warm-up epoch then cosine; flips and 4-pixel crops; label smoothing 0.1.
- 14 epochs: sized from an idle `train_on_batch` probe on the AVX-512 machine (243
  images/s at 56 px) for about 70 minutes with validation and testing every epoch.
"""

from kimnet.configs.recipes import SGD_56PX, recipe

CHANGES = {
    "model": {"name": "googlenet"},
    "optim": {"name": "adamw", "learning_rate": 2e-3, "weight_decay": 0.05},
    "schedule": {"epochs": 14},
}


def get_config(arg=None):
    return recipe("fmnist_googlenet", arg, SGD_56PX, CHANGES)
