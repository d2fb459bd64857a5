"""Data faults found early and named: dataset names, bad images, cut shards, full disks."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

import kimnet.data
from kimnet.data import names
from kimnet.errors import InputError

pytest_plugins = ["fault_helpers"]  # small_tmpfs, child_env, one_line


def _run_data_command(env, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kimnet.data", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("fashion-mnist", "did you mean 'fashion_mnist'?"),
        ("Fashion_MNIST", "did you mean 'fashion_mnist'?"),
        ("cifar_10", "did you mean 'cifar10'?"),
        ("/data/photos", "write 'folder:/data/photos'"),
        ("~/no/such/photos", "write 'folder:~/no/such/photos'"),
    ],
)
def test_mistyped_names_say_what_was_meant(name, expected):
    with pytest.raises(InputError) as caught:
        kimnet.data.load(name)
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_a_shard_folder_without_prefix_suggests_tfrecord(tmp_path):
    (tmp_path / "dataset.json").write_text("{}")
    with pytest.raises(InputError, match=f"write 'tfrecord:{tmp_path}'"):
        kimnet.data.load(str(tmp_path))


def test_unprepared_dataset_offline_fails_fast(tmp_path):
    if names.can_download():
        pytest.skip("this machine can reach TFDS's mirror; the offline path needs no network")
    start = time.perf_counter()
    with pytest.raises(InputError) as caught:
        kimnet.data.load("cifar10", data_dir=str(tmp_path))
    assert time.perf_counter() - start < 10
    message = str(caught.value)
    assert "python -m kimnet.data prepare cifar10" in message and str(tmp_path) in message
    assert not any(tmp_path.iterdir())  # nothing half-downloaded left behind


def test_command_line_names_errors_in_one_line(tmp_path, child_env, one_line):
    start = time.perf_counter()
    result = _run_data_command(child_env, "tfrecord", "fashion-mnist", str(tmp_path / "out"))
    assert result.returncode == 2
    assert one_line(result.stderr) == (
        "error: Unknown dataset 'fashion-mnist': did you mean 'fashion_mnist'? Use a TFDS name "
        "(e.g. fashion_mnist, cifar10; `tfds.list_builders()` lists them), "
        "folder:/path/to/images or tfrecord:/path/to/shards."
    )
    if not names.can_download():
        result = _run_data_command(
            child_env, "prepare", "cifar10", "--data_dir", str(tmp_path / "tfds")
        )
        assert result.returncode == 2
        assert "python -m kimnet.data prepare cifar10" in one_line(result.stderr)
    assert time.perf_counter() - start < 60
    assert not (tmp_path / "out").exists()
