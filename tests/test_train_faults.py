"""Training under faults: divergence, SIGTERM and kill -9 with resume, a kill while a
checkpoint is written, two runs with one name, finished and changed runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from kimnet import experiment
from kimnet.errors import InputError, TrainingDiverged
from kimnet.training import state, train

ROOT = Path(__file__).resolve().parents[1]


def _tiny(root: Path, name: str = "run", **sections) -> dict:
    config = {
        "model": {"args": "alpha=0.35"},
        "data": {"batch_size": 16},
        "schedule": {"epochs": 2, "steps_per_epoch": 4},
        "evaluate": {"bn_recalibration_batches": 2, "max_batches": 2},
        "augment": {"ops": "none"},
        "runtime": {"workdir": str(root / "runs"), "run_name": name},
        "export": {"dir": str(root / "saved")},
    }
    for section, values in sections.items():
        config[section] = {**config.get(section, {}), **values}
    return config


@pytest.mark.slow  # a real (diverging) training run
def test_a_diverged_run_fails_and_exports_nothing(tmp_path, fmnist):
    config = experiment.validate(_tiny(tmp_path, optim={"learning_rate": 1e9}))
    # The first epoch's updates already break the weights: nothing may be saved from it.
    message = r"loss became (nan|inf) (at|after) epoch 1.*try a lower config.optim.learning_rate"
    with pytest.raises(TrainingDiverged, match=message):
        train(config, splits=fmnist)
    results = json.loads((tmp_path / "runs" / "run" / "metrics.json").read_text())
    assert results["status"] == "failed" and "diverged" in results["error"]
    assert not (tmp_path / "saved").exists()
    assert not (tmp_path / "runs" / "run" / "checkpoints" / state.LAST).exists()


def _model() -> keras.Model:
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="dense")(inputs))
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0)
    return model


def test_a_kill_while_a_checkpoint_is_written_leaves_the_previous_one(tmp_path):
    model = _model()
    state.save(model, tmp_path, state.State(epoch=1))
    before = model.get_weights()

    class Killed(keras.Model):
        def save_weights(self, filepath, **kwargs):
            Path(filepath).write_bytes(b"half a file")
            raise KeyboardInterrupt  # the kill arrives mid-write

    broken = Killed(model.inputs, model.outputs)
    with pytest.raises(KeyboardInterrupt):
        state.save(broken, tmp_path, state.State(epoch=2))
    assert state.State.read(tmp_path) == state.State(epoch=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == [state.LAST, state.STATE]
    with h5py.File(tmp_path / state.LAST) as saved:
        assert "optimizer" in saved  # resume restores the optimizer's step and moments
    fresh = _model()
    fresh.load_weights(str(tmp_path / state.LAST))
    for got, want in zip(fresh.get_weights(), before, strict=True):
        np.testing.assert_array_equal(got, want)


def test_one_run_directory_has_one_writer(tmp_path):
    run_dir = tmp_path / "runs" / "r"
    with (
        state.run_lock(run_dir),
        pytest.raises(
            InputError, match=rf"in use by a run that is still going \(pid {os.getpid()}"
        ),
        state.run_lock(run_dir),
    ):
        pass
    with state.run_lock(run_dir):  # released
        pass


def _command(root: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "pipelines" / "train.py"),
        "--config.model.args=alpha=0.35",
        "--config.data.batch_size=32",
        "--config.schedule.epochs=3",
        "--config.schedule.steps_per_epoch=10",
        "--config.evaluate.max_batches=8",
        "--config.evaluate.bn_recalibration_batches=2",
        "--config.augment.ops=none",
        "--config.runtime.run_name=r",
        f"--config.runtime.workdir={root}/runs",
        f"--config.export.dir={root}/saved",
        *extra,
    ]


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.2)


def _interrupt_then_resume(tmp_path: Path, signal_number: int) -> tuple[str, int, str]:
    """Stops a real run with ``signal_number`` after its first epoch, then reruns it."""
    command = _command(tmp_path)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(tmp_path / "runs" / "r" / "checkpoints" / state.STATE, process)
    process.send_signal(signal_number)
    _, stderr = process.communicate(timeout=600)
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    return stderr, process.returncode, rerun.stdout


@pytest.mark.slow  # two real runs in subprocesses
def test_sigterm_saves_the_state_and_the_same_command_resumes(tmp_path):
    stderr, status, rerun = _interrupt_then_resume(tmp_path, signal.SIGTERM)
    assert status == 128 + signal.SIGTERM
    assert "Traceback" not in stderr
    assert "Run the same command again to resume" in stderr.strip().splitlines()[-1]
    assert "Resuming" in rerun
    results = json.loads((tmp_path / "runs" / "r" / "metrics.json").read_text())
    assert results["status"] == "finished" and results["resumed_from_epoch"] >= 1
    assert (tmp_path / "saved" / "r" / "1" / "saved_model.pb").is_file()
    # A finished run is not run again without overwrite.
    again = subprocess.run(_command(tmp_path), capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "holds a finished run" in again.stderr


@pytest.mark.slow  # three real runs in subprocesses
def test_kill_9_then_resume_ends_like_an_uninterrupted_run(tmp_path):
    _, status, _ = _interrupt_then_resume(tmp_path / "killed", signal.SIGKILL)
    assert status == -signal.SIGKILL
    whole = subprocess.run(
        _command(tmp_path / "whole"), capture_output=True, text=True, timeout=900
    )
    assert whole.returncode == 0, whole.stderr[-3000:]
    killed = json.loads((tmp_path / "killed" / "runs" / "r" / "metrics.json").read_text())
    plain = json.loads((tmp_path / "whole" / "runs" / "r" / "metrics.json").read_text())
    # The resumed run restores the weights and the optimizer (its step, so the learning
    # rate goes on) of epoch 1; only the order of the later batches differs, as after a
    # reshuffle. Tolerance: 8 points of top-1 on the 256 evaluated images.
    assert killed["resumed_from_epoch"] >= 1
    assert killed["test_top1"] == pytest.approx(plain["test_top1"], abs=0.08)


def test_a_changed_experiment_does_not_resume_into_an_unfinished_run(tmp_path):
    run_dir = tmp_path / "runs" / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    first = experiment.validate(_tiny(tmp_path))
    (run_dir / experiment.CONFIG_FILE).write_text(experiment.to_json(first))
    changed = experiment.validate(_tiny(tmp_path, optim={"learning_rate": 0.5}))
    with pytest.raises(InputError, match="another experiment .*optim.learning_rate"):
        train(changed)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"data": {"batch_size": 200, "train_examples": 100}}, "larger than the 100 training"),
        ({"data": {"batch_size": 50_000}}, r"needs about .* GiB .* use at most about \d+"),
    ],
)
def test_a_batch_that_cannot_fit_is_refused_before_training(tmp_path, fmnist, changes, message):
    config = experiment.validate(_tiny(tmp_path, **changes))
    with pytest.raises(InputError, match=message):
        train(config, splits=fmnist)
    assert not (tmp_path / "runs" / "run").exists()
