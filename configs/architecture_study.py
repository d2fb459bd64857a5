"""The architecture comparison study: one model per family, one shared budget.

Every model is trained from scratch on Fashion-MNIST at 32 px (each family's
``small_input`` stem) with the same optimiser, schedule, batch size and number of
steps, then tested on the full 10,000-image test set. Run it with
``make compare-architectures`` (``QUICK=1`` for the smoke variant), or::

    python pipelines/architecture_study.py --config=configs/architecture_study.py

``get_config()`` returns the real study; ``get_config(quick=True)`` the same
experiment shrunk to a few batches per model (a smoke test of the whole path).
"""

from kimnet.studies.architecture import StudyConfig

# One representative per family of the source article, in the article's order, plus
# plain vgg11 beside vgg11_bn: the pair shows what batch normalisation does for a
# plain 11-layer stack on the same budget. VGG-11 rather than VGG-16: 8 instead of 13
# convolutions, about half the training time, which a CPU budget needs.
# se_resnext50 rather than se_resnet50: the same depth and nearly the same cost, and
# it adds grouped convolutions, the one block type no other entry covers (run through
# kimnet's GroupedConv2D, since TensorFlow's own is about 12x slower on the CPU).
MODELS = (
    "alexnet",
    "vgg11",
    "vgg11_bn",
    "googlenet",
    "resnet18",
    "densenet121",
    "se_resnext50",
    "mobilenet",
    "mobilenetv2",
    "mobilenetv3_small",
)

# The shared budget: identical TrainConfig settings for every model. 200 steps of 64
# (12,800 images, about a quarter of an epoch) and a full validation and test pass keep
# the whole study near half an hour on two CPU cores; the README has the measured time.
# small_input is off: at 32 px the small-input stems keep full resolution, which costs
# 5-15x the multiply-adds (ResNet-18 555M instead of 37M, DenseNet-121 888M instead of
# 58M, SE-ResNeXt-50 1.35G instead of 89M), too slow for a CPU study. With the ImageNet
# strides every family still ends at 1x1.
BUDGET = {
    "dataset": "fashion_mnist",
    "image_size": 32,
    "small_input": "false",
    "batch_size": 64,
    "epochs": 1,
    "steps_per_epoch": 200,
    "optimizer": "adamw",
    "learning_rate": 2e-3,
    "warmup_epochs": 0.1,
    "weight_decay": 5e-4,
    "label_smoothing": 0.1,
    "augment": "none",
    "dropout": 0.0,
    "seed": 0,
}

# The smoke variant: the same models and settings, a few batches each and a short test.
QUICK_BUDGET = {
    **BUDGET,
    "batch_size": 16,
    "steps_per_epoch": 3,
    "bn_recalibration_batches": 2,
    "quick": True,
}


# AlexNet's ImageNet stem needs 67 px; at 32 px only its small-input stem fits.
OVERRIDES = {"alexnet": {"small_input": "true"}}


def get_config(quick: bool = False) -> StudyConfig:
    return StudyConfig(
        models=MODELS,
        budget=dict(QUICK_BUDGET if quick else BUDGET),
        overrides={name: dict(settings) for name, settings in OVERRIDES.items()},
    )
