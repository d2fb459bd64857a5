"""The budget the augmentation and regularisation studies share: a regime that overfits.

Both studies ask whether a technique reduces overfitting, which only shows when the
model overfits without it. So VGG-11-BN at a quarter of its width (``width=0.25``:
16 to 128 filters, 1,024-unit fully connected layers, 1.8M parameters; ImageNet strides
at 32 px) trains on only the first 1,000 Fashion-MNIST training images for 12 epochs
(192 steps of 64, every image seen 12 times), with no augmentation, no dropout, no
weight decay and no label smoothing. That fits the 1,000 images (train top-1 99%) while
test top-1 stays near 82%: a gap of about 17 points that a regulariser or an
augmentation has room to shrink. VGG because it is the one family with a form without
batch norm (``vgg11``), which the regularisation study needs; both studies use one
model, so their baselines are the same experiment. A quarter of the width because the
full VGG-11-BN trains at 28 images/s on the 2-core machine, against 434 at this width
(``train_on_batch`` probe, idle): at that rate the full network's 12,000 training images
a run would take about 7 minutes, nearly 5 hours for the augmentation study.

The optimiser is SGD with Nesterov momentum at 0.05 (the usual rate for VGG with batch
norm at this batch size), so weight decay acts at a rate of 0.05 rather than the 1e-3 of
Keras' AdamW. Keras applies it decoupled, outside the momentum: decoupled 5e-3 is about
the classic coupled 5e-4 (the VGG paper's) with momentum 0.9.

The test pass uses the first 2,000 test images (the same for every row, so rows are
compared on the same images) and validation the first 256; there is no export.
Each row runs with seeds 0, 1, 2 (weights, shuffling and augmentation change with
the seed; the 1,000 training images do not).

Time: a baseline run took 54 s on the otherwise idle 2-core machine (47 s of training
at about 350 images/s, the rest building the graph and the test and train passes). The
whole studies were measured only with other work sharing the cores: 54 minutes for the
augmentation study's 39 runs, 36 for the regularisation study's 24 (docs/studies.md).

The quick variant keeps every row and two seeds (so the aggregation and the
significance test run) but trains 2 steps per epoch for 1 epoch and evaluates 2
batches: a smoke test, not a measurement.
"""

import ml_collections

from kimnet import experiment
from kimnet.studies.study import QUICK_SEEDS, SEEDS

BUDGET = {
    "data": {
        "name": "fashion_mnist",
        "image_size": 32,
        "batch_size": 64,
        "train_examples": 1000,
        "validation_examples": 256,
        "test_examples": 2000,
    },
    "model": {"name": "vgg11_bn", "small_input": "false", "dropout": 0.0, "args": "width=0.25"},
    "schedule": {"epochs": 12, "warmup_epochs": 0.5},
    "optim": {"name": "sgd", "learning_rate": 0.05, "weight_decay": 0.0, "label_smoothing": 0.0},
    "augment": {"ops": "none"},
    "evaluate": {"bn_recalibration_batches": 4},
    "export": {"enabled": False},
}
QUICK = {
    "schedule.epochs": 1,
    "schedule.steps_per_epoch": 2,
    "evaluate.max_batches": 2,
    "evaluate.bn_recalibration_batches": 1,
}


def study(name: str, kind: str, rows: list[dict], arg: str | None) -> ml_collections.ConfigDict:
    """The study ``name`` of ``kind`` with ``rows`` on this budget, full or ``quick``."""
    config = experiment.base()
    experiment.override(config, dict(experiment.flatten(BUDGET)))
    seeds = SEEDS
    if arg == "quick":
        experiment.override(config, QUICK)
        name, seeds = f"{name}-quick", QUICK_SEEDS
    elif arg:
        raise ValueError(f"Unknown variant '{arg}'; known: quick.")
    return ml_collections.ConfigDict(
        {
            "name": name,
            "kind": kind,
            "base": config.to_dict(),
            "rows": rows,
            "seeds": list(seeds),
            "source": None,
        }
    )
