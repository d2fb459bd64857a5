"""Training recipes: one full schedule per model family, meant to reach published accuracy.

``make train RECIPE=fmnist_mobilenetv2`` runs ``configs/recipes/fmnist_mobilenetv2.py``;
``RECIPE=... QUICK=1`` its smoke variant. Each recipe file states the benchmark row it
is meant to beat and why its settings are what they are; what each reached is in
docs/results.md (Recipes).
"""

from __future__ import annotations

from typing import Any

import ml_collections

from kimnet import experiment

# The two schedules the recipes start from (nested like the experiment).
# Mobile networks: the native 28 px with the small-input stem, AdamW with weight decay
# 0.05 (Keras' AdamW multiplies it by the learning rate, so 5e-4 would be almost no
# decay), flips and 2-pixel crops (a 4-pixel shift is a seventh of a 28 px image), dropout 0.2.
ADAMW_28PX = {
    "data": {"image_size": 28, "batch_size": 128},
    "model": {"dropout": 0.2, "small_input": "true"},
    "augment": {"ops": "flip_h,crop=2"},
    "optim": {"name": "adamw", "learning_rate": 2e-3, "weight_decay": 0.05, "label_smoothing": 0.1},
    "schedule": {"warmup_epochs": 1.0},
}
# Residual and dense networks: the ImageNet stem on images upsampled to 56 px (stages
# start at 14x14; the small-input stem at 28 px costs about four times the
# multiply-adds), SGD with Nesterov momentum at 0.1 and weight decay 5e-4, the schedule
# these networks were designed with; flips and 4-pixel crops (2 native pixels).
SGD_56PX = {
    "data": {"image_size": 56, "batch_size": 128},
    "model": {"small_input": "false"},
    "augment": {"ops": "flip_h,crop=4"},
    "optim": {
        "name": "sgd",
        "learning_rate": 0.1,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "label_smoothing": 0.1,
    },
    "schedule": {"warmup_epochs": 1.0},
}


def recipe(
    name: str, arg: str | None, base: dict[str, Any], changes: dict[str, Any]
) -> ml_collections.ConfigDict:
    """The experiment of recipe ``name``: the defaults, then ``base``, then ``changes``
    (both nested like the experiment), run as ``runs/<name>``; ``arg`` ``quick`` shrinks
    it to a smoke test."""
    config = experiment.base()
    # Every recipe tests after each epoch: its accuracy-against-time curve is part of
    # what it reports (history.csv, TensorBoard, curves.png).
    every_recipe = {"runtime": {"run_name": name}, "evaluate": {"test_every_epoch": True}}
    for settings in (base, changes, every_recipe):
        experiment.override(config, dict(experiment.flatten(settings)))
    return experiment.variant(config, arg)
