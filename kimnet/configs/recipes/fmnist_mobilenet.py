"""MobileNet (v1, width 1.0, small-input stem) on Fashion-MNIST at its native 28 px.

Meant to beat the benchmark table's MobileNet row (95.0%).

- The same design choices as ``fmnist_mobilenetv2`` (28 px, AdamW 2e-3 with weight
  decay 0.05, one warm-up epoch then cosine, flips and 2-pixel crops, label smoothing
  0.1, dropout 0.2), so the two versions compare on one schedule.
"""

from kimnet.configs.recipes import ADAMW_28PX, recipe

CHANGES = {"model": {"name": "mobilenet"}, "schedule": {"epochs": 16}}


def get_config(arg=None):
    return recipe("fmnist_mobilenet", arg, ADAMW_28PX, CHANGES)
