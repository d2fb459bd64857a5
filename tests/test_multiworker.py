"""Multi-worker training: TF_CONFIG checks, the local launcher, and real two-worker runs
(MultiWorkerMirroredStrategy over loopback) that train, export once, stop together on
SIGTERM and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from kimnet import launch
from kimnet.errors import InputError
from kimnet.training import distribute, state

pytest_plugins = ["fault_helpers"]  # child_env, one_line

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "value, message",
    [
        (None, "needs TF_CONFIG"),
        ("{not json", "not a valid cluster description"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}', "index 3"),
        ('{"task": {"type": "worker", "index": 0}}', "not a valid cluster description"),
    ],
)
def test_tf_config_is_checked(monkeypatch, value, message):
    if value is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", value)
    with pytest.raises(InputError, match=message):
        distribute.make_strategy("multi_worker")


def test_a_weight_fingerprint_sees_any_change():
    weights = [np.arange(6, dtype=np.float32).reshape(2, 3), np.ones(4, np.float32)]
    changed = [weights[0].copy(), weights[1].copy()]
    changed[1][3] = np.nextafter(np.float32(1), np.float32(2))  # one bit
    assert distribute.fingerprint(weights) == distribute.fingerprint([w.copy() for w in weights])
    assert distribute.fingerprint(weights) != distribute.fingerprint(changed)
    distribute.check_same_weights(tf.distribute.get_strategy(), weights)  # one worker: agrees


def test_a_single_process_is_its_own_chief():
    who = distribute.worker(tf.distribute.get_strategy())
    assert (who.index, who.count, who.chief) == (0, 1, True)
    assert distribute.agreement(tf.distribute.get_strategy())(True) is True


def test_each_worker_gets_its_own_task_in_one_cluster():
    configs = [json.loads(c) for c in launch.tf_configs([5001, 5002, 5003])]
    assert [c["task"]["index"] for c in configs] == [0, 1, 2]
    assert all(c["cluster"] == configs[0]["cluster"] for c in configs)
    assert configs[0]["cluster"]["worker"][2] == "127.0.0.1:5003"
    assert len(set(launch.free_ports(4))) == 4


def test_the_exit_status_is_the_first_failure_else_the_chief():
    assert launch.exit_status([0, 0], None) == 0
    assert launch.exit_status([143, 3], 1) == 3  # worker 1 failed; the chief was stopped
    assert launch.exit_status([-15, -15], None) == 128 + 15


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--workers=0", "--", "true"], "--workers must be between 1 and 64"),
        (["--workers=2"], "no command to run"),
        (["--workers=2", "--", "no-such-program-xyz"], "command not found"),
    ],
)
def test_the_launcher_refuses_bad_input_in_one_line(argv, message, child_env, one_line):
    result = subprocess.run(
        [sys.executable, "-m", "kimnet.launch", *argv],
        capture_output=True,
        text=True,
        env=child_env,
        timeout=60,
    )
    assert result.returncode == 2
    assert message in one_line(result.stderr)


def test_a_failing_worker_stops_the_others_and_is_reported(tmp_path, child_env):
    # Worker 1 fails at once; the chief would otherwise wait for it for a minute.
    script = (
        "import json, os, sys, time\n"
        "index = json.loads(os.environ['TF_CONFIG'])['task']['index']\n"
        "print('worker', index, 'says hello', flush=True)\n"
        "sys.exit(3) if index == 1 else time.sleep(60)\n"
    )
    child_env["TMPDIR"] = str(tmp_path)
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "kimnet.launch", "--workers=2", "--", sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=child_env,
        timeout=60,
    )
    assert time.monotonic() - start < 30
    assert result.returncode == 3
    assert "worker 1 exited with status 3" in result.stderr
    assert "[worker 1] worker 1 says hello" in result.stderr
    assert "worker 0 says hello" in result.stdout  # the chief's output is the launcher's
    assert list(tmp_path.glob("kimnet-launch-*/worker-1.log"))  # kept: it failed


def test_multi_worker_without_tf_config_is_one_line_exit_2(tmp_path, child_env, one_line):
    child_env.pop("TF_CONFIG", None)
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "pipelines" / "train.py"),
            "--config.runtime.strategy=multi_worker",
            f"--config.runtime.workdir={tmp_path}/runs",
        ],
        capture_output=True,
        text=True,
        env=child_env,
        timeout=120,
    )
    assert result.returncode == 2
    assert "needs TF_CONFIG" in one_line(result.stderr)


def _two_workers(root: Path, epochs: int = 2) -> list[str]:
    return [
        sys.executable,
        "-m",
        "kimnet.launch",
        "--workers=2",
        "--",
        sys.executable,
        str(ROOT / "pipelines" / "train.py"),
        "--config.runtime.strategy=multi_worker",
        "--config.model.args=alpha=0.35",
        "--config.data.batch_size=32",
        f"--config.schedule.epochs={epochs}",
        "--config.schedule.steps_per_epoch=8",
        "--config.evaluate.max_batches=4",
        "--config.evaluate.bn_recalibration_batches=2",
        "--config.augment.ops=none",
        "--config.runtime.run_name=r",
        "--config.runtime.progress=epoch",
        f"--config.runtime.workdir={root}/runs",
        f"--config.export.dir={root}/saved",
    ]


@pytest.mark.slow  # two real TensorFlow workers training over loopback
def test_two_workers_train_and_only_the_chief_writes(tmp_path, child_env):
    child_env["TMPDIR"] = str(tmp_path / "tmp")
    (tmp_path / "tmp").mkdir()
    result = subprocess.run(
        _two_workers(tmp_path), capture_output=True, text=True, env=child_env, timeout=900
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Training as the chief 1 of 2" in result.stdout
    metrics = json.loads((tmp_path / "runs" / "r" / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["epochs"] == 2
    # Both workers checked that they hold the same weights before the chief exported.
    assert metrics["workers"] == 2
    assert 0.1 < metrics["test_top1"] <= 1.0
    assert [p.name for p in (tmp_path / "saved" / "r").iterdir()] == ["1"]  # one export
    history = (tmp_path / "runs" / "r" / "history.csv").read_text().splitlines()
    assert len(history) == 3  # the header and two epochs, written once
    assert list((tmp_path / "tmp").iterdir()) == []  # no worker's scratch, no launcher log


def _start_after_epoch_1(tmp_path: Path, env: dict) -> tuple[list[str], subprocess.Popen]:
    """A three-epoch two-worker run, returned once its first epoch is saved."""
    command = _two_workers(tmp_path, epochs=3)
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    checkpoint = tmp_path / "runs" / "r" / "checkpoints" / state.STATE
    deadline = time.monotonic() + 600
    while not checkpoint.exists():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.2)
    return command, process


@pytest.mark.slow  # two real two-worker runs
def test_sigterm_stops_every_worker_at_one_step_and_the_same_command_resumes(tmp_path, child_env):
    command, process = _start_after_epoch_1(tmp_path, child_env)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert "Run the same command again to resume" in stderr
    assert "Traceback" not in stderr
    rerun = subprocess.run(command, capture_output=True, text=True, env=child_env, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "Resuming" in rerun.stdout
    metrics = json.loads((tmp_path / "runs" / "r" / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["resumed_from_epoch"] >= 1


def _worker_pid(launcher: int, index: int) -> int | None:
    """The pid of the launcher's child with task ``index`` in its TF_CONFIG."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            environ = (stat.parent / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        config = [e[len(b"TF_CONFIG=") :] for e in environ if e.startswith(b"TF_CONFIG=")]
        if parent == launcher and config and json.loads(config[0])["task"]["index"] == index:
            return int(stat.parent.name)
    return None


@pytest.mark.slow  # two real two-worker runs
def test_a_killed_worker_stops_the_job_and_the_same_command_completes_it(tmp_path, child_env):
    command, process = _start_after_epoch_1(tmp_path, child_env)  # kill within epoch 2
    pid = _worker_pid(process.pid, 1)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 128 + signal.SIGKILL, stderr[-3000:]
    assert "worker 1 exited with status -9" in stderr
    rerun = subprocess.run(command, capture_output=True, text=True, env=child_env, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "Resuming" in rerun.stdout
    metrics = json.loads((tmp_path / "runs" / "r" / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["resumed_from_epoch"] >= 1
