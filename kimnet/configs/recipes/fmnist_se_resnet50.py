"""SE-ResNet-50 on Fashion-MNIST at 56 px, ImageNet stem.

No row in the benchmark table; ResNet-18's 94.9% is the bar.

- The SENet family's lightest member that is not grouped (TensorFlow's grouped
  convolutions are slow on CPUs); ImageNet stem at 56 px for a quarter of the small-input
  stem's multiply-adds (994M at 28 px).
- SGD with Nesterov momentum at 0.1, weight decay 5e-4, one warm-up epoch then cosine;
  flips and 4-pixel crops; label smoothing 0.1.
"""

from kimnet.configs.recipes import SGD_56PX, recipe

CHANGES = {"model": {"name": "se_resnet50"}, "schedule": {"epochs": 6}}


def get_config(arg=None):
    return recipe("fmnist_se_resnet50", arg, SGD_56PX, CHANGES)
