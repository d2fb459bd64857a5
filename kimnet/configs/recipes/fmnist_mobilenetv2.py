"""MobileNetV2 (width 1.0, small-input stem) on Fashion-MNIST at its native 28 px.

Meant to beat the benchmark table's MobileNet row (95.0%); target 94.0% in 2 hours on
the 2-core machine.

- 28 px, not 32: the images are 28 px, upsampling adds no information and costs 30%
  more time per image.
- 40 epochs: 146-212 s an epoch here (AVX-512 machine, 2 cores, with validation and
  the per-epoch test); measured 94.47% test top-1 in 112 minutes (docs/results.md,
  "Recipes"). At 16 epochs it reached 93.40%, at 30 epochs with random erasing 93.90%,
  still rising as the learning rate fell.
- AdamW at 2e-3 with a one-epoch warm-up and cosine decay; weight decay 0.05 (Keras'
  AdamW multiplies it by the learning rate, so 5e-4 would be almost no decay).
- Flips, 2-pixel crops and random erasing (p 0.5, as Zhong et al. used on
  Fashion-MNIST): label-preserving for clothes; label smoothing 0.1 and dropout 0.2.
"""

from kimnet.configs.recipes import ADAMW_28PX, recipe

CHANGES = {
    "model": {"name": "mobilenetv2"},
    "schedule": {"epochs": 40},
    "augment": {"ops": "flip_h,crop=2,erasing=0.5"},
}


def get_config(arg=None):
    return recipe("fmnist_mobilenetv2", arg, ADAMW_28PX, CHANGES)
