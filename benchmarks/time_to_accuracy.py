"""Time to accuracy: one recipe trained by kimnet and by PyTorch, test top-1 against time.

    python benchmarks/time_to_accuracy.py --torch-python=/path/to/venv/bin/python
    python benchmarks/time_to_accuracy.py --kimnet-run=runs/other_run ...  # read that run
    python benchmarks/time_to_accuracy.py --quick ...   # the quick variant, 2 epochs: a smoke test

The recipe is ``configs/recipes/fmnist_mobilenetv2.py`` (``--recipe``): MobileNetV2 with
the small-input stem at 28 px, AdamW, warm-up and cosine decay, label smoothing,
dropout, flips and small crops. kimnet trains it as ``make train RECIPE=...`` does, with
a test pass after every epoch (``evaluate.test_every_epoch``), in its usual run directory:
rerunning the script resumes an interrupted kimnet run and reuses a finished one;
``--kimnet-run`` reads another run instead. The PyTorch side
(``time_to_accuracy_torch.py``, in ``--torch-python``) trains torchvision's MobileNetV2
with the same stem, on the same training images (kimnet's training split, without its
validation images) and the same settings, read from the recipe; the recipe's
augmentation must be flips and crops, the two the PyTorch side implements. Both sides
run one after the other, never at once, and time training without the test passes.

Writes ``tta.md`` (the time each side first reached ``--target`` and its final test
top-1), ``tta.json`` (both curves) and ``tta.png`` (test top-1 against minutes) to
``--out`` (default ``reports/time-to-accuracy/``). The full recipe takes hours on two
CPU cores per side.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_train  # noqa: E402  (the benchmark next to this one)

from kimnet.errors import InputError  # noqa: E402

WORKER = Path(__file__).resolve().with_name("time_to_accuracy_torch.py")
# --quick: the recipe's own quick variant (few steps, few evaluation batches), 2 epochs.
QUICK_EPOCHS = 2


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = bench_train.Parser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="configs/recipes/fmnist_mobilenetv2.py")
    parser.add_argument("--kimnet-run", help="a kimnet run of the recipe to read, not retrain")
    parser.add_argument("--torch-python", default=sys.executable, help="interpreter with torch")
    parser.add_argument("--target", type=float, default=0.92, help="test top-1 to reach")
    parser.add_argument("--quick", action="store_true", help="2 epochs of a few steps")
    parser.add_argument("--out", default="reports/time-to-accuracy")
    args = parser.parse_args(argv)
    if not 0 < args.target < 1:
        raise InputError(f"--target={args.target}: a test top-1 between 0 and 1.")
    if not Path(args.torch_python).is_file():
        raise InputError(f"--torch-python={args.torch_python}: no such interpreter.")
    if args.kimnet_run and not (Path(args.kimnet_run) / "history.csv").is_file():
        raise InputError(f"--kimnet-run={args.kimnet_run}: no history.csv there.")
    return args


def recipe(args: argparse.Namespace, scratch: Path):
    """The recipe's experiment. The full one trains where ``make train RECIPE=...`` does,
    so an interrupted run resumes and a finished one is reused; ``--quick`` shrinks it
    and trains in ``scratch``, which is thrown away."""
    from kimnet import experiment

    config = experiment.load(f"{args.recipe}:quick" if args.quick else args.recipe)
    overrides = {"evaluate.test_every_epoch": True}
    if args.quick:
        overrides.update({"schedule.epochs": QUICK_EPOCHS, "runtime.workdir": str(scratch)})
    experiment.override(config, overrides)
    return config


def crop_padding(ops: str) -> int:
    """The recipe's ``crop=N`` (0 without a crop); refuses ops PyTorch's side lacks."""
    from kimnet.data import augment

    pad = 0
    for name, strength in augment.parse(ops):
        if name == "crop":
            pad = int(strength)
        elif name != "flip_h":
            raise InputError(
                f"augment.ops={ops!r}: the PyTorch side implements flip_h and crop only."
            )
    return pad


def curve(history_csv: Path) -> list[dict[str, float]]:
    """``elapsed_seconds`` and ``test_top1`` per epoch from a history CSV."""
    with history_csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if rows and "test_top1" not in rows[0]:
        raise InputError(f"'{history_csv}' has no test_top1: the run did not test per epoch.")
    return [
        {"elapsed_seconds": float(row["elapsed_seconds"]), "test_top1": float(row["test_top1"])}
        for row in rows
    ]


def kimnet_curve(args: argparse.Namespace, config) -> list[dict[str, float]]:
    """``--kimnet-run``'s curve, the recipe run's if it finished, else trains (or resumes)
    the recipe run first."""
    from kimnet import experiment, training

    run_dir = Path(args.kimnet_run or Path(config.runtime.workdir) / experiment.run_name(config))
    if args.kimnet_run or _finished(run_dir):
        return curve(run_dir / "history.csv")
    return curve(training.train(config).run_dir / "history.csv")


def _finished(run_dir: Path) -> bool:
    results = run_dir / "metrics.json"
    return results.is_file() and json.loads(results.read_text()).get("status") == "finished"


def write_images(config, path: Path) -> None:
    """kimnet's training and test images of the recipe (uint8, one channel) as ``.npz``."""
    import numpy as np

    from kimnet.training.loop import load_data

    splits = load_data(config, None)

    def arrays(dataset):
        images, labels = [], []
        for image, label in dataset.batch(4096):
            images.append(image.numpy()[..., 0])
            labels.append(label.numpy())
        return np.concatenate(images).astype(np.uint8), np.concatenate(labels).astype(np.int64)

    train_x, train_y = arrays(splits.train)
    test_x, test_y = arrays(splits.test)
    np.savez(path, train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y)


def torch_curve(args: argparse.Namespace, config, tmp: Path) -> list[dict[str, float]] | str:
    """PyTorch's curve, or why it was skipped."""
    data, out = tmp / "images.npz", tmp / "torch.csv"
    write_images(config, data)
    c = config
    command = [
        args.torch_python,
        str(WORKER),
        f"--data={data}",
        f"--out={out}",
        f"--epochs={c.schedule.epochs}",
        f"--steps-per-epoch={c.schedule.steps_per_epoch or 0}",
        f"--batch={c.data.batch_size}",
        f"--lr={c.optim.learning_rate}",
        f"--weight-decay={c.optim.weight_decay}",
        f"--label-smoothing={c.optim.label_smoothing}",
        f"--dropout={c.model.dropout}",
        f"--warmup-epochs={c.schedule.warmup_epochs}",
        f"--crop={crop_padding(c.augment.ops)}",
        f"--test-batches={c.evaluate.max_batches or 0}",
        f"--seed={c.runtime.seed}",
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"the PyTorch side failed: {tail}")
    first = json.loads((done.stdout.splitlines() or ["{}"])[0])
    return first["skip"] if "skip" in first else curve(out)


def reached(points: list[dict[str, float]], target: float) -> float | None:
    """Seconds of training when test top-1 first reached ``target`` (None: never)."""
    return next((p["elapsed_seconds"] for p in points if p["test_top1"] >= target), None)


def markdown(report: dict[str, Any]) -> str:
    target = report["target"]
    lines = [
        f"# Time to {100 * target:.0f}% test top-1: {report['recipe']}",
        "",
        f"Load average {report['load_before']} before, {report['load_after']} after.",
        "",
        f"| side | epochs | final test top-1 | minutes to {100 * target:.0f}% |",
        "| --- | ---: | ---: | ---: |",
    ]
    for side, points in report["curves"].items():
        if isinstance(points, str):
            lines.append(f"| {side} | skipped: {points} | | |")
            continue
        seconds = reached(points, target)
        minutes = "not reached" if seconds is None else f"{seconds / 60:.1f}"
        final = f"{100 * points[-1]['test_top1']:.2f}%" if points else "-"
        lines.append(f"| {side} | {len(points)} | {final} | {minutes} |")
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    for side, points in report["curves"].items():
        if not isinstance(points, str) and points:
            minutes = [p["elapsed_seconds"] / 60 for p in points]
            axis.plot(minutes, [100 * p["test_top1"] for p in points], marker="o", label=side)
    axis.axhline(100 * report["target"], color="grey", linestyle="--", linewidth=1)
    axis.set_xlabel("training time (min)")
    axis.set_ylabel("test top-1 (%)")
    axis.set_title(report["recipe"])
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from kimnet import console

    console.start_tensorflow()
    load_before = [round(load, 2) for load in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="kimnet-tta-") as tmp:
        config = recipe(args, scratch=Path(tmp) / "runs")
        crop_padding(config.augment.ops)  # before either side trains
        curves = {"kimnet": kimnet_curve(args, config)}
        curves["PyTorch"] = torch_curve(args, config, Path(tmp))
    return {
        "recipe": args.recipe + (" (quick)" if args.quick else ""),
        "target": args.target,
        "load_before": load_before,
        "load_after": [round(load, 2) for load in os.getloadavg()],
        "curves": curves,
    }


def write(report: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "tta.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "tta.md").write_text(markdown(report))
    plot(report, out / "tta.png")
    print(markdown(report))
    return [out / name for name in ("tta.json", "tta.md", "tta.png")]


def main(argv: Sequence[str] | None = None) -> int:
    return bench_train.report_main(argv, parse_args, run, write)


if __name__ == "__main__":
    sys.exit(main())
