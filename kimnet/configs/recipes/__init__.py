"""Training recipes: one full schedule per model family, meant to reach published accuracy.

``make train RECIPE=fmnist_mobilenetv2`` runs ``configs/recipes/fmnist_mobilenetv2.py``;
``RECIPE=... QUICK=1`` its smoke variant. Each recipe file states the benchmark row it
is meant to beat, why its settings are what they are, and what it measured here.
"""

from __future__ import annotations

from typing import Any

import ml_collections

from kimnet import experiment

# Fashion-MNIST's own benchmark table (zalandoresearch/fashion-mnist, README), test top-1.
BENCHMARK_TOP1 = {
    "alexnet": 0.899,
    "vgg16": 0.935,
    "googlenet": 0.937,
    "resnet18": 0.949,
    "mobilenet": 0.950,
}


def recipe(name: str, arg: str | None, settings: dict[str, Any]) -> ml_collections.ConfigDict:
    """The experiment of recipe ``name``: the defaults, then ``settings`` (nested like the
    experiment), run as ``runs/<name>``; ``arg`` ``quick`` shrinks it to a smoke test."""
    config = experiment.base()
    experiment.override(config, dict(experiment.flatten(settings)))
    experiment.override(config, {"runtime.run_name": name})
    return experiment.variant(config, arg)
