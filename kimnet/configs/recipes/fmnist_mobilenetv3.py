"""MobileNetV3-Large (small-input stem) on Fashion-MNIST at its native 28 px.

No row in the benchmark table; MobileNet's 95.0% is the bar.

- The same schedule as ``fmnist_mobilenetv2``: 28 px, AdamW 2e-3 with weight decay
  0.05, one warm-up epoch then cosine, flips and 2-pixel crops, label smoothing 0.1,
  dropout 0.2.
"""

from kimnet.configs.recipes import ADAMW_28PX, recipe

CHANGES = {"model": {"name": "mobilenetv3_large"}, "schedule": {"epochs": 16}}


def get_config(arg=None):
    return recipe("fmnist_mobilenetv3", arg, ADAMW_28PX, CHANGES)
