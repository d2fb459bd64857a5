"""The budget the augmentation and regularisation studies share: a regime that overfits.

Both studies ask whether a technique reduces overfitting, which only shows when the
model overfits without it. So VGG-11-BN (28M parameters, 21M of them in its two
4096-wide fully connected layers, ImageNet strides at 32 px: 172M multiply-adds)
trains on only the first 1,000 Fashion-MNIST training images for 8 epochs (128 steps
of 64, every image seen 8 times), with no augmentation, no dropout, no weight decay
and no label smoothing. That is enough steps to fit 1,000 images nearly perfectly while
test top-1 stays well below it, so the gap between train and test top-1 is large
and a regulariser or an augmentation has room to shrink it. VGG-11-BN because it is
the one family with a form without batch norm (``vgg11``), which the regularisation
study needs, and both studies use one model so their baselines are the same run.
The optimiser is SGD with Nesterov momentum (0.05, the usual rate for VGG with batch
norm at this batch size): weight decay then has its classic meaning (5e-4 is the VGG
paper's), where Keras' AdamW multiplies it by a learning rate of about 1e-3 and even
5e-3 would barely shrink a weight in 128 steps.

The test pass uses the first 2,000 test images (the same for every row, so rows are
compared on the same images) and validation the first 256; there is no export.
Each row runs with seeds 0, 1, 2 (weights, shuffling and augmentation change with
the seed; the 1,000 training images do not).

Time (an estimate, not measured as a whole): VGG-11-BN trained at 123 images/s on the
idle 2-core machine in the architecture study, so 128 steps of 64 take about 67 s, and
the validation, test and train passes (about 5,600 images at inference speed) and graph
building add about 25 s: about 1.5 min per run, so about an hour for the augmentation
study's 39 runs and half an hour for the regularisation study's 21. A probe under load
(load average 7-14 from other jobs, a timed training at higher priority) ran 10-70x
slower (docs/studies.md), so expect much longer on a busy machine.

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
    "model": {"name": "vgg11_bn", "small_input": "false", "dropout": 0.0},
    "schedule": {"epochs": 8, "warmup_epochs": 0.5},
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
