"""benchmarks/time_to_accuracy.py: the curves, the table, the same recipe on both sides."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from kimnet.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "time_to_accuracy.py"


def _load():
    spec = importlib.util.spec_from_file_location("time_to_accuracy", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tta = _load()


def test_reached_is_the_first_epoch_at_the_target():
    points = [
        {"elapsed_seconds": 60.0, "test_top1": 0.85},
        {"elapsed_seconds": 120.0, "test_top1": 0.921},
        {"elapsed_seconds": 180.0, "test_top1": 0.91},
    ]
    assert tta.reached(points, 0.92) == 120.0
    assert tta.reached(points, 0.95) is None


def test_the_table_gives_minutes_to_target_final_accuracy_and_skips():
    report = {
        "recipe": "r",
        "target": 0.9,
        "load_before": [1.0],
        "load_after": [1.0],
        "curves": {
            "kimnet": [
                {"elapsed_seconds": 300.0, "test_top1": 0.88},
                {"elapsed_seconds": 600.0, "test_top1": 0.905},
            ],
            "PyTorch": "torch and torchvision are not importable",
        },
    }
    text = tta.markdown(report)
    assert "| kimnet | 2 | 90.50% | 10.0 |" in text
    assert "| PyTorch | skipped: torch and torchvision are not importable |" in text


def test_the_pytorch_side_implements_flips_and_crops_only():
    assert tta.crop_padding("flip_h,crop=2") == 2
    assert tta.crop_padding("flip_h") == 0
    with pytest.raises(InputError, match="flip_h and crop only"):
        tta.crop_padding("flip_h,crop=2,mixup=0.2")


def test_a_history_without_a_test_curve_is_refused(tmp_path):
    (tmp_path / "history.csv").write_text("epoch,loss,val_top1\n0,1.0,0.5\n")
    with pytest.raises(InputError, match="did not test per epoch"):
        tta.curve(tmp_path / "history.csv")


def test_a_finished_recipe_run_is_reused_not_retrained(tmp_path, monkeypatch):
    from kimnet import experiment, training

    args = tta.parse_args([f"--recipe={ROOT / 'configs/recipes/fmnist_mobilenetv2.py'}"])
    config = tta.recipe(args, scratch=tmp_path / "scratch")
    assert config.runtime.workdir == experiment.base().runtime.workdir  # the usual runs/
    experiment.override(config, {"runtime.workdir": str(tmp_path)})
    run_dir = tmp_path / "fmnist_mobilenetv2"
    run_dir.mkdir()
    (run_dir / "history.csv").write_text("epoch,elapsed_seconds,test_top1\n0,61.5,0.88\n")
    (run_dir / "metrics.json").write_text(json.dumps({"status": "finished"}))
    monkeypatch.setattr(training, "train", lambda config: pytest.fail("retrained"))
    assert tta.kimnet_curve(args, config) == [{"elapsed_seconds": 61.5, "test_top1": 0.88}]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--target=1.5"], "error: --target=1.5: a test top-1 between 0 and 1."),
        (["--kimnet-run=/no/such/run"], "error: --kimnet-run=/no/such/run: no history.csv"),
        (["--torch-python=/no/python"], "error: --torch-python=/no/python: no such interpreter."),
    ],
)
def test_bad_input_is_one_line_and_status_2(argv, expected):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert done.stderr.startswith(expected) and done.stderr.count("\n") == 1, done.stderr


@pytest.mark.slow  # the recipe's quick variant trained by kimnet: a few minutes
def test_quick_run_without_torch_trains_kimnet_and_skips_pytorch(tmp_path):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", f"--out={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "tta.json").read_text())
    kimnet = report["curves"]["kimnet"]
    assert len(kimnet) == 2 and kimnet[0]["elapsed_seconds"] < kimnet[1]["elapsed_seconds"]
    if isinstance(report["curves"]["PyTorch"], str):  # this interpreter has no torch
        assert "not importable" in report["curves"]["PyTorch"]
    assert (tmp_path / "tta.png").stat().st_size > 0
