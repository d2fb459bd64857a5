"""kimnet.fileio: atomic writes, stale staging cleanup, and a full disk (tmpfs)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from kimnet import fileio
from kimnet.errors import DiskFullError, exit_code

pytest_plugins = ["fault_helpers"]  # the small_tmpfs fixture


def _visible(folder):
    return sorted(p.name for p in folder.iterdir())


def test_write_json_and_text_replace_atomically(tmp_path):
    target = tmp_path / "metrics.json"
    fileio.write_json_atomic(target, {"top1": 0.5})
    fileio.write_json_atomic(target, {"top1": 0.9})
    assert json.loads(target.read_text()) == {"top1": 0.9}
    fileio.write_text_atomic(tmp_path / "a.txt", "héllo")
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo"
    assert _visible(tmp_path) == ["a.txt", "metrics.json"]  # no temporaries left


def test_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "metrics.json"
    fileio.write_json_atomic(target, {"epoch": 1})
    with pytest.raises(TypeError):
        fileio.write_json_atomic(target, {"bad": object()})
    with pytest.raises(RuntimeError), fileio.atomic_write(target) as file:
        file.write('{"epoch": 2, "trunc')
        raise RuntimeError("killed mid-write")
    assert json.loads(target.read_text()) == {"epoch": 1}
    assert _visible(tmp_path) == ["metrics.json"]


def test_atomic_path_keeps_the_suffix_for_keras(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    target = tmp_path / "last.weights.h5"
    with fileio.atomic_path(target) as tmp:
        assert tmp.name.endswith("last.weights.h5") and tmp.parent == tmp_path
        model.save_weights(tmp)
    model.load_weights(target)
    assert _visible(tmp_path) == ["last.weights.h5"]


def test_kill_during_a_write_leaves_the_previous_file(tmp_path):
    target = tmp_path / "state.json"
    fileio.write_json_atomic(target, {"epoch": 1})
    script = (
        "import sys, time; from kimnet import fileio\n"
        "with fileio.atomic_write(sys.argv[1]) as f:\n"
        "    f.write('{\"epoch\": 2'); f.flush(); print('writing', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(target)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert json.loads(target.read_text()) == {"epoch": 1}
    leftover = [p for p in tmp_path.iterdir() if p.name != "state.json"]
    assert len(leftover) == 1 and fileio.staging_owner(leftover[0]) == proc.pid
    # A dead writer's recent staging stays; once old, the next cleanup removes it.
    assert fileio.remove_stale(tmp_path) == []
    old = time.time() - fileio.STALE_AFTER_S - 60
    os.utime(leftover[0], (old, old))
    assert fileio.remove_stale(tmp_path) == leftover
    assert _visible(tmp_path) == ["state.json"]


def test_remove_stale_spares_live_owners_and_other_files(tmp_path):
    live = tmp_path / f"{fileio.STAGING_MARK}{os.getpid()}-abcd1234-x.json"
    live.write_text("{}")
    other = tmp_path / ".hidden-but-not-ours"
    other.write_text("")
    old = time.time() - 10 * fileio.STALE_AFTER_S
    for path in (live, other):
        os.utime(path, (old, old))
    assert fileio.remove_stale(tmp_path) == []
    assert live.exists() and other.exists()


def test_disk_full_error_is_one_line_and_an_oserror():
    error = DiskFullError("/x/metrics.json", needed_bytes=3 * 2**20, free_bytes=1024)
    assert isinstance(error, OSError) and error.errno == 28
    assert str(error) == (
        "No space left to write '/x/metrics.json'; it needs about 3.0 MiB, 1.0 KiB free. "
        "Free some space or write elsewhere."
    )
    assert exit_code(error) == 1


def test_full_disk_raises_disk_full_and_keeps_the_old_file(small_tmpfs):
    target = small_tmpfs / "metrics.json"
    fileio.write_json_atomic(target, {"epoch": 1})
    with pytest.raises(DiskFullError) as caught:
        fileio.write_bytes_atomic(target, b"x" * 4 * 2**20)  # 4 MiB on a 2 MiB disk
    assert "metrics.json" in str(caught.value) and "4.0 MiB" in str(caught.value)
    assert json.loads(target.read_text()) == {"epoch": 1}
    assert _visible(small_tmpfs) == ["metrics.json"]
