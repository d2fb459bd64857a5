"""make bench (benchmarks/bench_train.py): figures, writers, the PyTorch skip, bad input."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from kimnet.errors import InputError

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_train.py"


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_train", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


bench = _load_bench()


def test_summary_is_median_and_range_of_the_rounds():
    assert bench.summarize([3.0, 1.0, 2.0, 10.0]) == {
        "median": 2.5,
        "min": 1.0,
        "max": 10.0,
        "rounds": [3.0, 1.0, 2.0, 10.0],
    }


def test_ratios_pair_sides_round_by_round():
    rounds = {
        bench.KIMNET: [100.0, 90.0, 120.0],
        bench.PLAIN: [100.0, 100.0, 100.0],
        bench.KIMNET_AUG: [80.0, 80.0, 80.0],
        bench.PLAIN_AUG: [100.0, 80.0, 160.0],
        bench.TORCH: [50.0, 60.0, 40.0],
    }
    ratios = bench.ratios(rounds)
    plain = ratios["kimnet / plain fit (augment none)"]
    assert (plain["median"], plain["min"], plain["max"]) == (1.0, 0.9, 1.2)
    assert ratios["kimnet / plain fit (flip_h,crop)"]["rounds"] == [0.8, 1.0, 0.5]
    assert ratios["kimnet / PyTorch eager"]["rounds"] == [2.0, 1.5, 3.0]
    assert "kimnet / torch.compile" not in ratios  # a side that did not run has no ratio


def _report(with_torch: bool) -> dict:
    rounds = {
        bench.KIMNET: [200.0, 210.0],
        bench.PLAIN: [220.0, 230.0],
        bench.KIMNET_AUG: [180.0, 190.0],
        bench.PLAIN_AUG: [200.0, 200.0],
    }
    if with_torch:
        rounds |= {bench.TORCH: [150.0, 160.0], bench.TORCH_COMPILED: [170.0, 175.0]}
    inference = {
        1: {"median_ms_per_image": 4.25, "images_per_second": 235.0},
        64: {"median_ms_per_image": 0.5, "images_per_second": 2000.0},
    }
    result = {
        "steps": 10,
        "batch": 128,
        "sides": {side: bench.summarize(values) for side, values in rounds.items()},
        "ratios": bench.ratios(rounds),
        "inference": inference,
    }
    return {
        "machine": {"cpu": "Test CPU 3000", "cores": 2, "python": "3.11"},
        "versions": {"TensorFlow": "2.21.0", "Keras": "3.15.1"},
        "load_before": [0.5, 0.4, 0.3],
        "load_after": [1.0, 0.6, 0.4],
        "settings": {"rounds": 2, "steps": "per model", "batch": 128},
        "torch_skipped": None if with_torch else "no torch here",
        "models": {"mobilenetv2-32": result, "resnet18-32": result},
    }


def test_writers_put_every_figure_in_the_table_json_and_chart(tmp_path):
    report = _report(with_torch=True)
    paths = bench.write_all(report, tmp_path / "out")
    assert [p.name for p in paths] == ["bench.json", "bench.md", "bench.png"]
    saved = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert saved["models"]["resnet18-32"]["sides"][bench.TORCH]["rounds"] == [150.0, 160.0]
    assert saved["load_before"] == [0.5, 0.4, 0.3]
    table = (tmp_path / "out" / "bench.md").read_text()
    assert "Test CPU 3000, 2 cores; TensorFlow 2.21.0, Keras 3.15.1." in table
    assert f"| {bench.KIMNET} | 205 (200-210) |" in table
    assert "| kimnet / torch.compile | 1.19 (1.18-1.20) |" in table
    assert "batch 1 4.2 ms/image (median), batch 64 2,000 images/s." in table
    assert (tmp_path / "out" / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_run_without_torch_says_so_in_its_table(tmp_path):
    bench.write_all(_report(with_torch=False), tmp_path)
    table = (tmp_path / "bench.md").read_text()
    assert "PyTorch sides skipped: no torch here" in table
    assert bench.TORCH not in table
    assert (tmp_path / "bench.png").stat().st_size > 0


def test_the_torch_worker_reports_a_missing_torch_in_one_line(tmp_path):
    # An interpreter on which `import torch` fails, whether or not torch is installed.
    (tmp_path / "shadow").mkdir()
    (tmp_path / "shadow" / "torch.py").write_text("raise ImportError('no torch')\n")
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\nPYTHONPATH={tmp_path / "shadow"} exec {sys.executable} "$@"\n')
    python.chmod(0o755)
    worker = bench.TorchWorker(str(python), tmp_path / "worker.log")
    worker.close()
    assert "torch and torchvision are not importable" in worker.skipped
    message = bench.skip_message(worker.skipped)
    assert message.startswith("PyTorch sides skipped: ") and "\n" not in message
    assert "--torch-python" in message


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--rounds=0"], "error: --rounds=0: must be at least 1."),
        (["--steps=1"], "error: --steps=1: must be at least 2."),
        (["--torch-threads=0"], "error: --torch-threads=0: must be at least 1."),
        (["--models=nope"], "error: Unknown --models entry 'nope'"),
        (["--models=,"], "error: --models is empty"),
        (["--rounds=x"], "error: argument --rounds: invalid int value: 'x'; see --help."),
        (["--torch-python=/no/such/python"], "error: --torch-python=/no/such/python: no such"),
    ],
)
def test_bad_input_is_one_line_and_status_2(argv, expected, capsys):
    assert bench.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(expected), err
    assert err.count("\n") == 1


def test_the_script_exits_2_on_bad_input_before_loading_anything():
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--models=resnet18-32,unknown"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "unknown" in done.stderr


def test_measure_savedmodel_refuses_bad_arguments_before_loading(tmp_path):
    from kimnet.export_timing import measure_savedmodel

    with pytest.raises(InputError, match="channels"):
        measure_savedmodel(tmp_path, image_size=28, channels=2)
    with pytest.raises(InputError, match="batch_sizes"):
        measure_savedmodel(tmp_path, image_size=28, channels=1, batch_sizes=(0,))


def test_measure_savedmodel_times_the_serving_signature(tmp_path):
    import kimnet.export
    import kimnet.models
    from kimnet.export_timing import measure_savedmodel

    model = kimnet.models.get("mobilenetv2")(
        input_shape=(32, 32, 3), classes=3, small_input=True, alpha=0.35
    )
    names = ["a", "b", "c"]
    path = kimnet.export.export(model, tmp_path / "m", class_names=names, normalization="tf")
    timing = measure_savedmodel(path, image_size=28, channels=1, batch_sizes=(1, 4), repeats=2)
    assert sorted(timing) == [1, 4]
    four = timing[4]
    assert four["images_per_second"] == pytest.approx(4e3 / four["median_ms_per_call"])
    assert four["median_ms_per_image"] == pytest.approx(four["median_ms_per_call"] / 4)
    assert four["min_ms_per_call"] <= four["median_ms_per_call"] <= four["max_ms_per_call"]


@pytest.mark.slow
def test_quick_bench_runs_end_to_end(tmp_path):
    argv = ["--rounds=1", "--steps=2", "--batch=8", "--models=mobilenetv2-32"]
    argv += ["--infer-repeats=1", f"--out={tmp_path}"]
    assert bench.main(argv) == 0
    report = json.loads((tmp_path / "bench.json").read_text())
    sides = report["models"]["mobilenetv2-32"]["sides"]
    assert {bench.KIMNET, bench.PLAIN, bench.KIMNET_AUG, bench.PLAIN_AUG} <= set(sides)
    assert all(side["median"] > 0 for side in sides.values())
    assert (tmp_path / "bench.png").is_file() and (tmp_path / "bench.md").is_file()
