"""XLA or not, per model family: training images/s with ``jit_compile`` off and on.

    python benchmarks/bench_jit.py                     # make bench-jit: every family
    python benchmarks/bench_jit.py --models=resnet18,mobilenetv2 --rounds=1   # a probe

Keras compiles with ``jit_compile="auto"``, which it resolves to XLA on GPUs and TPUs
(unless tf.distribute is on) and to no XLA on CPU-only machines; kimnet keeps that
default. This benchmark checks it per family on this machine: the model each family
contributes to the architecture study (``configs/architecture_study.py``: 32 px,
ImageNet strides but AlexNet's small-input stem, batch 64), built by kimnet, compiled
twice as a plain Keras user would (``bench_train``'s ``plain_model``), once with
``jit_compile=False`` and once with ``True``, trained on the same cached real
Fashion-MNIST tensors. Per round: off, then on, each a warm-up fit
(tracing; XLA compiles here) and then ``--steps`` timed steps, images/s after the first
(``EpochStats``, as ``make bench``). The ratio on/off is per round; the figure is its
median and range. Writes ``jit.md`` and ``jit.json`` to ``--out`` (default
``reports/bench-jit/``) with the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_train  # noqa: E402  (the benchmark next to this one)

from kimnet.errors import InputError  # noqa: E402

IMAGE_SIZE, BATCH = 32, 64


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    from kimnet.configs import architecture_study
    from kimnet.models.registry import unknown_name_message

    parser = bench_train.Parser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(architecture_study.MODELS))
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds")
    parser.add_argument("--steps", type=int, default=8, help="timed training steps per side")
    parser.add_argument("--out", default="reports/bench-jit", help="folder for jit.md/.json")
    args = parser.parse_args(argv)
    args.models = [name.strip() for name in args.models.split(",") if name.strip()]
    known = list(architecture_study.MODELS + architecture_study.DEEPER)
    for name in args.models:
        if name not in known:
            raise InputError(unknown_name_message("--models entry", name, known))
    for name, low in (("rounds", 1), ("steps", 2)):
        if getattr(args, name) < low:
            raise InputError(f"--{name}={getattr(args, name)}: must be at least {low}.")
    return args


def case_of(model_name: str, steps: int) -> bench_train.Case:
    """The model as the architecture study builds it (AlexNet: its small-input stem)."""
    from kimnet.configs import architecture_study

    stem = architecture_study.PER_MODEL.get(model_name, {}).get("model", {})
    small = stem.get("small_input", "false") == "true"
    return bench_train.Case(model_name, IMAGE_SIZE, small_input=small, steps=steps)


def compiled_pair(model_name: str, splits, workdir: Path) -> dict[bool, Any]:
    """The family's model compiled without and with XLA (two instances)."""
    case = case_of(model_name, steps=2)
    pair = {}
    for jit in (False, True):
        model = bench_train.plain_model(case, BATCH, splits, workdir)
        model.compile(
            optimizer=model.optimizer, loss=model.loss, metrics=["accuracy"], jit_compile=jit
        )
        pair[jit] = model
    return pair


def measure_model(model_name: str, args, splits, workdir: Path) -> dict[str, Any]:
    case = case_of(model_name, args.steps)
    x, y = bench_train.cached_batches(case, BATCH, splits)
    dataset = bench_train.cached_dataset(x, y, splits.info.num_classes)
    pair = compiled_pair(model_name, splits, workdir)
    sides = {jit: bench_train.fit_side(pair[jit], dataset, args.steps, BATCH) for jit in pair}
    for jit in pair:  # tracing, and XLA's compilation
        bench_train.fit_side(pair[jit], dataset, 2, BATCH)()
    rounds: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.rounds):
        for jit in (False, True):
            rounds[jit].append(sides[jit]())
    ratios = [on / off for off, on in zip(rounds[False], rounds[True], strict=True)]
    return {
        "model": model_name,
        "off": bench_train.summarize(rounds[False]),
        "on": bench_train.summarize(rounds[True]),
        "ratio": bench_train.summarize(ratios),
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# jit_compile per family ({report['machine']['cpu']}, {report['machine']['cores']} "
        f"cores; load {report['load_before']} before, {report['load_after']} after)",
        "",
        f"Training images/s, {IMAGE_SIZE} px, batch {BATCH}, {report['rounds']} round(s) of "
        f"{report['steps']} steps per side: median (range).",
        "",
        "| model | XLA off | XLA on | on / off |",
        "| --- | ---: | ---: | ---: |",
    ]
    for row in report["models"]:
        if "error" in row:
            lines.append(f"| {row['model']} | failed: {row['error']} | | |")
            continue
        off, on, ratio = row["off"], row["on"], row["ratio"]
        lines.append(
            f"| {row['model']} | {bench_train._range(off)} | {bench_train._range(on)} "
            f"| {bench_train._range(ratio, 2)} |"
        )
    return "\n".join(lines) + "\n"


def _load() -> list[float]:
    return [round(load, 2) for load in os.getloadavg()]


def run(args: argparse.Namespace) -> dict[str, Any]:
    from kimnet import console

    console.start_tensorflow()
    from kimnet import data

    report = {
        "machine": bench_train.machine(),
        "rounds": args.rounds,
        "steps": args.steps,
        "load_before": _load(),
        "models": [],
    }
    splits = data.load("fashion_mnist")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            try:
                row = measure_model(name, args, splits, Path(tmp))
            except Exception as error:  # noqa: BLE001 - one family's failure is a table row
                row = {"model": name, "error": f"{type(error).__name__}: {error}"[:200]}
            print(json.dumps(row), flush=True)
            report["models"].append(row)
    report["load_after"] = _load()
    return report


def write(report: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "jit.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "jit.md").write_text(markdown(report))
    print(markdown(report))
    return [out / "jit.json", out / "jit.md"]


def main(argv: Sequence[str] | None = None) -> int:
    return bench_train.report_main(argv, parse_args, run, write)


if __name__ == "__main__":
    sys.exit(main())
