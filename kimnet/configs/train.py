"""The default experiment: MobileNetV2 (small-input stem, 32 px) on Fashion-MNIST.

    python pipelines/train.py                                   # this file, as it is
    python pipelines/train.py --config=configs/train.py:quick   # the same, shrunk
    python pipelines/train.py --config.model.name=resnet18 --config.schedule.epochs=10

Every field and its default is declared once, in ``kimnet.experiment.SCHEMA``;
this file is where an experiment departs from them.
"""

from kimnet import experiment


def get_config(arg: str | None = None):
    config = experiment.base()
    return experiment.variant(config, arg)
