"""Data faults found early and named: dataset names, bad images, cut shards, full disks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import kimnet.data
from kimnet import fileio
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
    result = _run_data_command(child_env, "tfrecord", "fashion-mnist", str(tmp_path / "out"))
    assert result.returncode == 2
    assert one_line(result.stderr) == (
        "error: Unknown dataset 'fashion-mnist': did you mean 'fashion_mnist'? Use a TFDS name "
        "(e.g. fashion_mnist, cifar10; `tfds.list_builders()` lists them), "
        "folder:/path/to/images or tfrecord:/path/to/shards."
    )
    if not names.can_download():
        # TFDS alone retries for minutes; the limit includes TensorFlow's import.
        result = _run_data_command(
            child_env, "prepare", "cifar10", "--data_dir", str(tmp_path / "tfds"), timeout=120
        )
        assert result.returncode == 2
        assert "python -m kimnet.data prepare cifar10" in one_line(result.stderr)
    assert not (tmp_path / "out").exists()


def _plant_bad_images(root):
    """A truncated JPEG and a TIFF named .png, both made with PIL, among good images."""
    import io

    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(1).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    jpeg = io.BytesIO()
    Image.fromarray(pixels).save(jpeg, format="JPEG")
    truncated = root / "dogs" / "truncated.jpg"
    truncated.write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    tiff = root / "owls" / "tiff_named.png"
    Image.fromarray(pixels).save(tiff, format="TIFF")
    return truncated, tiff


def test_bad_images_are_named_before_training(image_folder):
    truncated, tiff = _plant_bad_images(image_folder)
    with pytest.raises(InputError) as caught:
        kimnet.data.load(f"folder:{image_folder}")
    message = str(caught.value)
    assert message.startswith(f"2 of 20 images in folder:{image_folder} cannot be decoded")
    assert str(truncated) in message and str(tiff) in message and "\n" not in message
    assert "skip_bad_images=True" in message and "function_node" not in message
    assert f"{truncated} (jpeg::Uncompress failed. Invalid JPEG data" in message


def test_skip_bad_images_trains_on_the_rest_and_lists_them(image_folder, tmp_path, capsys):
    truncated, tiff = _plant_bad_images(image_folder)
    listed = tmp_path / "skipped.txt"
    splits = kimnet.data.load(f"folder:{image_folder}", skip_bad_images=True, skipped_list=listed)
    assert sum(splits.info.num_examples.values()) == 18
    assert sum(1 for split in ("train", "validation", "test") for _ in getattr(splits, split)) == 18
    rows = [line.split("\t") for line in listed.read_text().splitlines()]
    assert sorted(row[0] for row in rows) == sorted([str(truncated), str(tiff)])
    assert all(reason for _, reason in rows)
    assert capsys.readouterr().out == (
        f"Skipping 2 of 20 images that cannot be decoded (list: {listed}).\n"
    )


def test_skipped_list_defaults_to_the_cache(image_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    _plant_bad_images(image_folder)
    kimnet.data.load(f"folder:{image_folder}", skip_bad_images=True)
    (listed,) = (tmp_path / "cache" / "kimnet" / "skipped_images").iterdir()
    assert listed.name.startswith("images-") and len(listed.read_text().splitlines()) == 2


def test_command_line_names_a_bad_image(image_folder, tmp_path, child_env, one_line):
    truncated, _ = _plant_bad_images(image_folder)
    out = tmp_path / "shards"
    result = _run_data_command(child_env, "tfrecord", f"folder:{image_folder}", str(out))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert str(truncated) in one_line(result.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]  # nothing written


def _write_shards(fmnist, out, **kwargs):
    import dataclasses

    from kimnet.data import tfrecord
    from kimnet.data.splits import Splits

    subset = {"train": 120, "validation": 20, "test": 40}
    info = dataclasses.replace(fmnist.info, num_examples=subset)
    source = Splits(**{s: getattr(fmnist, s).take(n) for s, n in subset.items()}, info=info)
    tfrecord.write(source, out, examples_per_shard=kwargs.get("examples_per_shard", 20))
    return out


@pytest.fixture(scope="module")
def shards(fmnist, tmp_path_factory):
    return _write_shards(fmnist, tmp_path_factory.mktemp("shards") / "fm")


def _damaged_copy(shards, tmp_path, damage):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(shards, copy)
    shard = copy / "test-00001-of-00002.tfrecord"
    data = shard.read_bytes()
    shard.write_bytes(damage(data))
    return copy, shard


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: data[: len(data) // 2], "is cut short: its record"),
        # 10 whole records of 20: the framing is sound, the count in dataset.json is not.
        (lambda data: _first_records(data, 10), "holds 10 records where dataset.json says 20"),
        (lambda data: data[:100] + bytes([data[100] ^ 0xFF]) + data[101:], "is corrupt"),
    ],
    ids=["cut-in-half", "cut-at-a-record", "flipped-byte"],
)
def test_a_damaged_test_shard_is_named_before_training(shards, tmp_path, damage, message):
    copy, shard = _damaged_copy(shards, tmp_path, damage)
    with pytest.raises(InputError, match=message) as caught:
        kimnet.data.load(f"tfrecord:{copy}")
    assert f"'{shard}'" in str(caught.value) and "function_node" not in str(caught.value)


def _first_records(data: bytes, count: int) -> bytes:
    import struct

    offset = 0
    for _ in range(count):
        (length,) = struct.unpack("<Q", data[offset : offset + 8])
        offset += 12 + length + 4
    return data[:offset]


def test_command_line_names_a_cut_shard(shards, tmp_path, child_env, one_line):
    copy, shard = _damaged_copy(shards, tmp_path, lambda data: data[: len(data) // 2])
    result = _run_data_command(child_env, "tfrecord", f"tfrecord:{copy}", str(tmp_path / "again"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"TFRecord shard '{shard}' is cut short" in one_line(result.stderr)
    assert not (tmp_path / "again").exists()


def _start_writing(env, out):
    """``python -m kimnet.data tfrecord fashion_mnist OUT``, returned once shards grow."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "kimnet.data", "tfrecord", "fashion_mnist", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        staged = [p for p in out.parent.glob(".kimnet-partial-*") if any(p.glob("*.tfrecord"))]
        if staged and fileio.tree_bytes(staged[0]) > 100_000:
            return proc, staged[0]
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"the writer never staged any shards: {proc.communicate()}")


@pytest.mark.slow  # writes Fashion-MNIST shards in a subprocess
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_interrupted_tfrecord_command_leaves_nothing(tmp_path, child_env, one_line, signum):
    out = tmp_path / "fm"
    proc, staged = _start_writing(child_env, out)
    assert fileio.staging_owner(staged) == proc.pid
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in stderr
    assert one_line(stderr) == f"Interrupted; nothing was written to {out}."
    assert list(tmp_path.iterdir()) == []


def test_next_write_removes_stale_staging_of_dead_writers(shards, tmp_path, fmnist):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], text=True, capture_output=True
    ).stdout.strip()
    stale = tmp_path / f"{fileio.STAGING_MARK}{dead}-0badcafe-old"
    recent = tmp_path / f"{fileio.STAGING_MARK}{dead}-0badcaff-recent"
    live = tmp_path / f"{fileio.STAGING_MARK}{os.getpid()}-0badcb00-live"
    old = time.time() - fileio.STALE_AFTER_S - 60
    for folder in (stale, recent, live):
        folder.mkdir()
        (folder / "train-00000-of-00001.tfrecord").write_bytes(b"x" * 1000)
    for folder in (stale, live):
        os.utime(folder, (old, old))
    _write_shards(fmnist, tmp_path / "fm")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["fm", recent.name, live.name])


@pytest.mark.slow  # writes Fashion-MNIST shards in a subprocess
def test_disk_full_while_writing_shards(small_tmpfs, child_env, one_line):
    keep = small_tmpfs / "earlier.txt"
    keep.write_text("written before")
    out = small_tmpfs / "fm"
    result = _run_data_command(child_env, "tfrecord", "fashion_mnist", str(out))
    line = one_line(result.stderr)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert line.startswith(f"error: No space left to write '{out}'; it needs about ")
    needed = float(line.split("needs about ")[1].split(" MiB")[0])
    assert 15 < needed < 60  # 70,000 small PNGs in records: about 30 MiB
    assert sorted(p.name for p in small_tmpfs.iterdir()) == ["earlier.txt"]
    assert keep.read_text() == "written before"


def test_training_command_names_a_truncated_jpeg_before_training(
    image_folder, tmp_path, child_env, one_line
):
    truncated, _ = _plant_bad_images(image_folder)
    train_script = Path(__file__).resolve().parents[1] / "pipelines" / "train.py"
    runs = tmp_path / "runs"
    result = subprocess.run(
        [
            sys.executable,
            str(train_script),
            f"--config.data.name=folder:{image_folder}",
            "--config.model.name=mobilenetv3_small",
            "--config.schedule.epochs=1",
            f"--config.runtime.workdir={runs}",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=child_env,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert str(truncated) in one_line(result.stderr)
    assert not runs.exists()  # stopped before any run directory was made
