"""Real fine-tuning on Fashion-MNIST: a short pretraining run on all ten classes is the
source; the target is classes 5-9 from 200 training images, with a new head.

A gradual-unfreezing fine-tune with the stem and stages 1-3 frozen throughout
must beat the same budget from scratch, leave the frozen weights (and batch-norm
statistics) bit-identical and move the unfrozen ones. (Between disjoint class
groups the same short pretraining transfers far less: see the transfer study.)
The three real runs are slow tests (`make test-slow`); the script checks are not.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import kimnet.models
from kimnet import experiment
from kimnet.training import train
from kimnet.transfer import pretrained, subsets

ROOT = Path(__file__).resolve().parents[1]
TARGET = {"classes": "5-9", "train_examples": 200, "validation_examples": 64, "test_examples": 500}
FROZEN = ("stem", "stage1", "stage2", "stage3")


def _config(root: Path, name: str, data=None, schedule=None, transfer=None, **sections):
    return experiment.validate(
        {
            "model": {"args": "alpha=0.35"},
            "data": {"batch_size": 32, **(data or {})},
            "optim": {"learning_rate": 5e-3},
            "augment": {"ops": "none"},
            "schedule": {"epochs": 3, **(schedule or {})},
            "evaluate": {"bn_recalibration_batches": 4},
            "transfer": transfer or {},
            "runtime": {"workdir": str(root / "runs"), "run_name": name},
            "export": {"enabled": False},
            **sections,
        }
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory, fmnist):
    root = tmp_path_factory.mktemp("transfer")
    fmnist = subsets.in_memory(fmnist)  # decoded once for the three runs
    source = train(
        _config(
            root,
            "source",
            data={"batch_size": 64, "validation_examples": 64, "test_examples": 64},
            schedule={"epochs": 1, "steps_per_epoch": 60, "warmup_epochs": 0.1},
        ),
        splits=fmnist,
    )
    transfer = {
        "init_from": str(source.run_dir),
        "schedule": "head:1,stage4:2",
        "unfreeze_lr_scale": 0.4,
        "new_head": True,
    }
    tuned = train(_config(root, "tuned", data=TARGET, transfer=transfer), splits=fmnist)
    scratch = train(_config(root, "scratch", data=TARGET), splits=fmnist)
    return source, tuned, scratch


@pytest.mark.slow  # three real training runs: minutes on a 2-core CPU
def test_fine_tuning_beats_the_same_budget_from_scratch(runs):
    source, tuned, scratch = runs
    assert source.metrics.test_top1 > 0.4  # the source task was learned (chance: 0.1)
    assert tuned.metrics.test_top1 > scratch.metrics.test_top1 + 0.03, (
        tuned.metrics.test_top1,
        scratch.metrics.test_top1,
    )


@pytest.mark.slow  # three real training runs: minutes on a 2-core CPU
def test_frozen_weights_are_bit_identical_and_unfrozen_ones_moved(runs):
    source, tuned, _ = runs
    model = tuned.model
    reference = kimnet.models.get("mobilenetv2")(
        input_shape=(32, 32, 3), classes=5, small_input=True, alpha=0.35
    )
    pretrained.load_run(reference, source.run_dir)
    moved = {}
    for stage, layers in kimnet.models.stages(model).items():
        for layer in layers:
            if not layer.weights or stage == "head":
                continue
            source_weights = reference.get_layer(layer.name).get_weights()
            pairs = zip(layer.get_weights(), source_weights, strict=True)
            same = all(np.array_equal(a, b) for a, b in pairs)
            if stage in FROZEN:
                assert same, f"frozen layer {layer.name} ({stage}) changed"
            else:
                moved.setdefault(stage, []).append(not same)
    assert set(moved) == {"stage4", "stage5"}
    assert all(all(flags) for flags in moved.values()), moved


@pytest.mark.slow  # three real training runs: minutes on a 2-core CPU
def test_phases_are_recorded_in_the_run_directory_and_tensorboard(runs):
    _, tuned, _ = runs
    run = tuned.run_dir
    phases = json.loads((run / "trainable.json").read_text())
    assert [(p["name"], p["epochs"]) for p in phases] == [("head", 1), ("stage4", 2)]
    first = {row["stage"]: row for row in phases[0]["stages"]}
    second = {row["stage"]: row for row in phases[1]["stages"]}
    assert all(first[s]["trainable"] == 0 for s in (*FROZEN, "stage4", "stage5"))
    assert first["head"]["trainable"] == 1280 * 5 + 5
    assert all(second[s]["trainable"] == 0 for s in FROZEN)
    assert second["stage4"]["trainable"] > 0 and second["stage5"]["trainable"] > 0
    assert phases[1]["learning_rate"] == pytest.approx(5e-3 * 0.4)
    config = json.loads((run / "config.json").read_text())
    assert config["schedule"]["epochs"] == 3
    assert config["transfer"]["schedule"] == "head:1,stage4:2"
    results = json.loads((run / "metrics.json").read_text())
    assert results["loaded"]["initialised_layers"] == ["predictions"]
    assert tuned.metrics.trainable_parameters_per_phase[0] == 1280 * 5 + 5
    phase_values = []
    for event_file in (run / "tensorboard" / "train").rglob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            for value in event.summary.value:
                if value.tag == "epoch_phase":
                    phase_values.append((event.step, float(tf.make_ndarray(value.tensor))))
    assert sorted(phase_values) == [(0, 1.0), (1, 2.0), (2, 2.0)]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["--config.transfer.init_from=/no/such/run"], "'/no/such/run' is not a kimnet run"),
        (
            ["--config.transfer.freeze=top"],
            "Unknown freezing strategy 'top'.*Valid strategies",
        ),
    ],
)
def test_finetune_rejects_bad_input_before_training(overrides, message, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "pipelines" / "train.py"),
            "--config=configs/train.py:quick",
            "--config.model.args=alpha=0.35",
            f"--config.runtime.workdir={tmp_path}/runs",
            f"--config.export.dir={tmp_path}/saved",
            *overrides,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error:")
    assert re.search(message, last), last
    assert not (tmp_path / "runs").exists()
