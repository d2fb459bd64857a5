"""The architecture comparison: one model per family, one shared budget, Fashion-MNIST.

Every model is trained from scratch at 32 px with the same optimiser, schedule,
batch size and number of steps, then tested on the full 10,000-image test set::

    make compare-architectures                  # this study
    make compare-architectures QUICK=1          # get_config("quick"): the same, shrunk
    python pipelines/study.py --study=configs/architecture_study.py --only=arch-resnet18

Every row runs with seeds 0, 1 and 2 (the quick variant: 0 and 1), and its exported
SavedModel's latency at batch 1 and throughput at batch 64 are measured after training
(:func:`kimnet.export_timing.measure_savedmodel`).
"""

import ml_collections

from kimnet import experiment
from kimnet.studies.study import QUICK_SEEDS, SEEDS

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
# The article's deeper variants, in the full variant only. Their times per seed on two
# idle CPU cores are estimates from the measured rows' time per multiply-add of the same
# kind of network (multiply-adds at 32 px, ImageNet strides): vgg16 332M against
# vgg11_bn's 172M in 160 s, about 5 min; resnet50 79M against resnet18's 37M in 66 s,
# about 2.5 min; densenet169 69M against densenet121's 58M in 194 s, about 4 min. About
# 35 min for the three with three seeds. senet154 is left out: 429M multiply-adds in
# 64-group convolutions, which run like SE-ResNeXt-50's (89M in 361 s), so about 30 min
# per seed, 1.5 hours for three seeds, more than the rest of the study's rows together.
DEEPER = ("vgg16", "resnet50", "densenet169")

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
    names, seeds = MODELS + DEEPER, list(SEEDS)
    if arg == "quick":
        experiment.override(base, dict(experiment.flatten(QUICK)))
        names, seeds = MODELS, list(QUICK_SEEDS)
    elif arg:
        raise ValueError(f"Unknown variant '{arg}'; known: quick.")
    rows = []
    for name in names:
        overrides = {"model": {"name": name, **PER_MODEL.get(name, {}).get("model", {})}}
        rows.append({"name": f"arch-{name}", "label": name, "overrides": overrides})
    return ml_collections.ConfigDict(
        {
            "name": "architecture-study",
            "kind": "architecture",
            "base": base.to_dict(),
            "rows": rows,
            "seeds": seeds,
            "source": None,
        }
    )
