"""DenseNet-121 on Fashion-MNIST at 56 px, ImageNet stem.

No row in the benchmark table; ResNet-18's 94.9% is the bar for a network of its cost.

- 56 px with the ImageNet stem (dense blocks at 14x14 ... 2x2): the small-input stem at
  28 px costs four times the multiply-adds (672M).
- SGD with Nesterov momentum at 0.1, weight decay 5e-4 (the DenseNet paper's), one
  warm-up epoch then cosine; flips and 4-pixel crops; label smoothing 0.1.
"""

from kimnet.configs.recipes import SGD_56PX, recipe

CHANGES = {"model": {"name": "densenet121"}, "schedule": {"epochs": 8}}


def get_config(arg=None):
    return recipe("fmnist_densenet121", arg, SGD_56PX, CHANGES)
