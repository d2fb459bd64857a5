"""The transfer study: Fashion-MNIST classes 0-4 as the source task, 5-9 as the target.

The source task (T-shirt/top, trouser, pullover, dress, coat) and the target task
(sandal, shirt, sneaker, bag, ankle boot) share no class. A MobileNetV2 (alpha 0.35,
32 px) is pretrained on the source, then every method trains on the first N target
training images for the same number of epochs, for each N in SIZES, and is tested on
the same target test images::

    make transfer-study            # about 25 minutes per seed on two CPU cores
    make transfer-study QUICK=1    # get_config("quick"): the same experiment, shrunk

Every method runs with seeds 0, 1 and 2 (the quick variant: 0 and 1) from the one
source model (trained once, with the first seed); a method is marked where it differs
from training from scratch at the same size.
"""

import ml_collections

from kimnet import experiment
from kimnet.studies.study import QUICK_SEEDS, SEEDS, SOURCE
from kimnet.studies.transfer_methods import phase_epochs

BASE = {
    "data": {
        "name": "fashion_mnist",
        "image_size": 32,
        "batch_size": 32,
        "validation_examples": 64,
        "test_examples": 1000,
    },
    "model": {"name": "mobilenetv2", "args": "alpha=0.35"},
    "augment": {"ops": "flip_h,crop"},
    "optim": {"learning_rate": 5e-3},
    "evaluate": {"bn_recalibration_batches": 2},
    "export": {"enabled": False},
}
SOURCE_TASK = {
    "data.classes": "0-4",
    "data.batch_size": 64,
    "schedule.epochs": 2,
    "schedule.steps_per_epoch": 50,
}
TARGET_CLASSES = "5-9"
# Target training-set sizes, and the epochs every method gets at each size.
SIZES = {100: 6, 400: 3}
# Gradual unfreezing: (first trainable stage, share of the epochs) per phase.
GRADUAL = (("head", 1 / 3), ("stage4", 1 / 3), ("all", 1 / 3))
UNFREEZE_LR_SCALE = 0.5
# Frozen features cut after each of these stages (the last one is the frozen backbone).
FEATURE_STAGES = ("stage1", "stage2", "stage3", "stage4", "stage5")


def _methods(epochs, gradual, feature_stages):
    """(name suffix, label, transfer overrides) of every method at one size."""
    from_source = {"init_from": SOURCE, "new_head": True}
    yield "scratch", "from scratch", {}
    yield "finetune", "full fine-tuning", from_source
    yield (
        "gradual",
        "gradual unfreezing",
        {
            **from_source,
            "schedule": phase_epochs(gradual, epochs),
            "unfreeze_lr_scale": UNFREEZE_LR_SCALE,
        },
    )
    for stage in feature_stages:
        label = f"frozen features from {stage}"
        if stage == feature_stages[-1]:
            label += " (frozen backbone)"
        yield f"features-{stage}", label, {**from_source, "features_from": stage}


def get_config(arg=None):
    sizes, gradual, stages, source = SIZES, GRADUAL, FEATURE_STAGES, dict(SOURCE_TASK)
    seeds = list(SEEDS)
    base = experiment.base()
    experiment.override(base, dict(experiment.flatten(BASE)))
    if arg == "quick":
        sizes, gradual, stages = (
            {100: 2, 200: 2},
            (("head", 0.5), ("all", 0.5)),
            ("stage3", "stage5"),
        )
        source.update({"schedule.epochs": 1, "schedule.steps_per_epoch": 30})
        experiment.override(base, {"data.test_examples": 300})
        seeds = list(QUICK_SEEDS)
    elif arg:
        raise ValueError(f"Unknown variant '{arg}'; known: quick.")
    rows = []
    for size, epochs in sizes.items():
        for suffix, label, transfer in _methods(epochs, gradual, stages):
            overrides = {
                "data": {"classes": TARGET_CLASSES, "train_examples": size},
                "schedule": {"epochs": epochs},
                "transfer": transfer,
            }
            rows.append(
                {"name": f"n{size}-{suffix}", "label": label, "group": size, "overrides": overrides}
            )
    name = "transfer-study" + ("-quick" if arg == "quick" else "")
    return ml_collections.ConfigDict(
        {
            "name": name,
            "kind": "transfer",
            "base": base.to_dict(),
            "rows": rows,
            "seeds": seeds,
            "source": _nested(source),
        }
    )


def _nested(flat):
    nested = {}
    for path, value in flat.items():
        section, field = path.split(".")
        nested.setdefault(section, {})[field] = value
    return nested
