"""The architecture comparison: one model per family, one shared budget, Fashion-MNIST.

Every model is trained from scratch at 32 px with the same optimiser, schedule,
batch size and number of steps, then tested on the full 10,000-image test set::

    make compare-architectures                  # this study
    make compare-architectures QUICK=1          # get_config("quick"): the same, shrunk
    python pipelines/study.py --study=configs/architecture_study.py --only=arch-resnet18
"""

import ml_collections

from kimnet import experiment

# One representative per family of the source article, in the article's order, plus
# plain vgg11 beside vgg11_bn: the pair shows what batch normalisation does for a
# plain 11-layer stack on the same budget. VGG-11 rather than VGG-16: 8 instead of 13
# convolutions, about half the training time, which a CPU budget needs.
# se_resnext50 rather than se_resnet50: the same depth and nearly the same cost, and
# it adds grouped convolutions, the one block type no other entry covers.
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

# The shared budget: 200 steps of 64 (12,800 images, about a quarter of an epoch) and a
# full validation and test pass keep the study near half an hour on two CPU cores.
# The small-input stems are off: at 32 px they keep full resolution, which costs 5-15x
# the multiply-adds (ResNet-18 555M instead of 37M), too slow for a CPU study; with the
# ImageNet strides every family still ends at 1x1.
BUDGET = {
    "data": {"name": "fashion_mnist", "image_size": 32, "batch_size": 64},
    "model": {"small_input": "false", "dropout": 0.0},
    "schedule": {"epochs": 1, "steps_per_epoch": 200, "warmup_epochs": 0.1},
    "optim": {"name": "adamw", "learning_rate": 2e-3, "weight_decay": 5e-4, "label_smoothing": 0.1},
    "augment": {"ops": "none"},
}
# The smoke variant: the same models and settings, a few batches each and a short test.
QUICK = {
    "data": {"batch_size": 16},
    "schedule": {"steps_per_epoch": 3},
    "evaluate": {"bn_recalibration_batches": 2, "max_batches": 5},
}
# AlexNet's ImageNet stem needs 67 px; at 32 px only its small-input stem fits.
PER_MODEL = {"alexnet": {"model": {"small_input": "true"}}}


def get_config(arg=None):
    base = experiment.base()
    experiment.override(base, dict(experiment.flatten(BUDGET)))
    if arg == "quick":
        experiment.override(base, dict(experiment.flatten(QUICK)))
    elif arg:
        raise ValueError(f"Unknown variant '{arg}'; known: quick.")
    rows = []
    for name in MODELS:
        overrides = {"model": {"name": name, **PER_MODEL.get(name, {}).get("model", {})}}
        rows.append({"name": f"arch-{name}", "label": name, "overrides": overrides})
    return ml_collections.ConfigDict(
        {
            "name": "architecture-study",
            "kind": "architecture",
            "base": base.to_dict(),
            "rows": rows,
            "seeds": [0],
            "source": None,
        }
    )
