"""MobileNetV2 (width 1.0, small-input stem) on Fashion-MNIST at its native 28 px.

Meant to beat the benchmark table's MobileNet row (95.0%); target 94.0% in 2 hours on
the 2-core machine.

- 28 px, not 32: the images are 28 px, upsampling adds no information and costs 30%
  more time per image.
- 30 epochs: about 150 s an epoch here (AVX-512 machine, 2 cores, with validation and
  the per-epoch test), so about 80 minutes. The same recipe at 16 epochs reached 93.40%
  test top-1 in 53 minutes with train top-1 at 95.7% (docs/results.md, "Recipes"): it
  was still improving, and the longer schedule gets random erasing against the
  overfitting that the extra epochs bring.
- AdamW at 2e-3 with a one-epoch warm-up and cosine decay; weight decay 0.05 (Keras'
  AdamW multiplies it by the learning rate, so 5e-4 would be almost no decay).
- Flips, 2-pixel crops and random erasing (p 0.5, as Zhong et al. used on
  Fashion-MNIST): label-preserving for clothes; label smoothing 0.1 and dropout 0.2.
"""

from kimnet.configs.recipes import ADAMW_28PX, recipe

CHANGES = {
    "model": {"name": "mobilenetv2"},
    "schedule": {"epochs": 30},
    "augment": {"ops": "flip_h,crop=2,erasing=0.5"},
}


def get_config(arg=None):
    return recipe("fmnist_mobilenetv2", arg, ADAMW_28PX, CHANGES)
