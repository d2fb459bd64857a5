"""Export under faults: concurrent exporters, staging of killed ones, a full disk."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import keras
import pytest

import kimnet.export
from kimnet import fileio
from kimnet.errors import DiskFullError

pytest_plugins = ["fault_helpers"]  # small_tmpfs, child_env

CLASSES = ["a", "b", "c"]

# Builds a tiny model, says "ready", waits for the go file, then exports it.
EXPORTER = """
import sys, time
from pathlib import Path
import keras
import kimnet.export
model_dir, go, writer = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
keras.utils.set_random_seed(int(writer))
model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3),
    keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, activation="softmax")])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.01)
print(kimnet.export.versions(model_dir), flush=True)  # what it sees when it starts
path = kimnet.export.export(model, model_dir, class_names=["a", "b", "c"],
    normalization="raw", metadata={"writer": writer})
print(path.name, flush=True)
"""


def _tiny_model(units: int = 4) -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(units),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )


def test_two_processes_exporting_at_once_keep_both_models(tmp_path, child_env):
    model_dir, go = tmp_path / "models" / "tiny", tmp_path / "go"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", EXPORTER, str(model_dir), str(go), str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env,
        )
        for i in (1, 2)
    ]
    for writer in writers:
        assert writer.stdout.readline().strip() == "ready", writer.stderr.read()
    go.touch()  # both start exporting now, both see no version yet
    claimed, starts = [], []
    for writer in writers:
        out, err = writer.communicate(timeout=240)
        assert writer.returncode == 0, err
        seen, version = out.split()
        claimed.append(version)
        starts.append(seen)
    # Both saw no version when they began, so both first tried version 1.
    assert starts == ["[]", "[]"] and sorted(claimed) == ["1", "2"]
    assert kimnet.export.versions(model_dir) == [1, 2]
    writers_seen = {kimnet.export.load(model_dir / v).metadata["writer"] for v in claimed}
    assert writers_seen == {"1", "2"}
    assert sorted(p.name for p in model_dir.iterdir()) == ["1", "2"]  # no staging left


def test_a_version_completed_meanwhile_is_not_overwritten(tmp_path):
    model_dir = tmp_path / "m"
    (model_dir / "1").mkdir(parents=True)
    (model_dir / "1" / "saved_model.pb").write_bytes(b"the other process's model")
    staging = fileio.staging_path(model_dir / "1")
    staging.mkdir()
    (staging / "saved_model.pb").write_bytes(b"ours")
    # What export does after writing: it had chosen 1, which another process took.
    assert kimnet.export._claim(staging, model_dir, 1, explicit=False) == model_dir / "2"
    assert (model_dir / "1" / "saved_model.pb").read_bytes() == b"the other process's model"
    assert (model_dir / "2" / "saved_model.pb").read_bytes() == b"ours"
    staging.mkdir()
    with pytest.raises(FileExistsError, match="exported by another process"):
        kimnet.export._claim(staging, model_dir, 2, explicit=True)


def test_staging_of_killed_exporters_is_cleaned_when_old(tmp_path):
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    dead = int(
        subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
        ).stdout
    )
    old_dead = model_dir / f"{fileio.STAGING_MARK}{dead}-00000001-1"
    new_dead = model_dir / f"{fileio.STAGING_MARK}{dead}-00000002-1"
    old_live = model_dir / f"{fileio.STAGING_MARK}{os.getppid()}-00000003-1"
    for folder in (old_dead, new_dead, old_live):
        (folder / "variables").mkdir(parents=True)
    long_ago = time.time() - fileio.STALE_AFTER_S - 60
    for folder in (old_dead, old_live):
        os.utime(folder, (long_ago, long_ago))
    kimnet.export.export(_tiny_model(), model_dir, class_names=CLASSES, normalization="raw")
    assert sorted(p.name for p in model_dir.iterdir()) == sorted(
        ["1", new_dead.name, old_live.name]
    )


def test_full_disk_at_export_is_one_error_and_keeps_old_files(small_tmpfs):
    model_dir = small_tmpfs / "m"
    kimnet.export.export(_tiny_model(), model_dir, class_names=CLASSES, normalization="raw")
    before = {p: p.read_bytes() for p in (model_dir / "1").rglob("*") if p.is_file()}
    big = _tiny_model(units=8192)  # 64 x 8192 float32 weights: 2 MiB, on a 2 MiB disk
    with pytest.raises(DiskFullError) as caught:
        kimnet.export.export(big, model_dir, class_names=CLASSES, normalization="raw")
    message = str(caught.value)
    assert message.startswith(f"No space left to write '{model_dir / '2'}'; it needs about")
    assert "\n" not in message and caught.value.needed_bytes > 2 * 2**20
    assert sorted(p.name for p in model_dir.iterdir()) == ["1"]
    assert kimnet.export.versions(model_dir) == [1]
    assert {p: p.read_bytes() for p in (model_dir / "1").rglob("*") if p.is_file()} == before
    assert kimnet.export.load(model_dir / "1").class_names == CLASSES
