"""Side-by-side training benchmark: kimnet's training against a plain Keras fit and PyTorch.

    python benchmarks/bench_train.py                          # make bench: about an hour
    python benchmarks/bench_train.py --rounds=1 --steps=4 --models=mobilenetv2-32  # QUICK=1
    python benchmarks/bench_train.py --torch-python=/path/to/venv/bin/python

For each model (``--models``: ``mobilenetv2-32`` and ``resnet18-32`` with kimnet's
small-input stem, ``mobilenetv2-96`` with ImageNet strides), the same model at the
same batch is trained for N steps by each side (``--steps``; by default per model,
about 15-20 s of training each), in rounds: A, B, A', B',
C, C', then again, ``--rounds`` times, so that load from other processes hits every
side alike. Each figure is training images/s over steps 2..N (kimnet's: all N steps of
its second epoch): the first step holds graph tracing or compilation and the
shuffle-buffer fill, which a long run pays once.

* A, A': kimnet's training, the real path: ``kimnet.training.train(config)`` of the
  default experiment (``kimnet.experiment.base()``) with ``schedule.epochs=2`` over a
  training split of the first N x batch images (one pass an epoch), the step count in
  ``schedule.steps_per_epoch``, export off and one batch of evaluation, with
  ``augment.ops=none`` (A) and ``flip_h,crop`` (A', the default). The figure is the
  second epoch's ``images_per_second`` in the run's ``history.csv`` (``EpochStats``):
  the first epoch fills kimnet's cache of resized images, as the first epoch of a
  long run does, and holds the tracing. ``EpochStats`` times an epoch's training steps
  (all N; the first step of a second epoch has no tracing, only the shuffle buffer's
  fill from memory), which includes every per-step cost of kimnet's path: its tf.data
  pipeline, augmentation and callbacks; the run's fixed costs (loading, building,
  evaluation) are left out.
* B: a plain ``model.fit`` of the same kimnet-built model (``kimnet.training.
  build_model``), compiled with AdamW and label-smoothed cross-entropy, on cached
  in-memory tensors: real Fashion-MNIST images resized and normalised once,
  ``from_tensor_slices(...).batch().cache().repeat()``. The ceiling for Keras here.
* B': the same plain fit on a plain tf.data pipeline over the same source (cache of
  the raw images, shuffle, batch, one map that resizes, applies
  ``kimnet.data.augment.build("flip_h,crop", size)`` and normalises): the
  augmentation-on comparison for A'. B and B' are timed with the same ``EpochStats``
  callback as A, so all Keras sides share one clock.
* C, C': PyTorch eager, channels-last, and ``torch.compile``, ``os.cpu_count()``
  threads, torchvision MobileNetV2 / ResNet-18 adapted like kimnet's small-input stem,
  AdamW, on the same cached tensors as B (``bench_train_torch.py`` in a worker
  process: ``--torch-python`` names an interpreter with torch; without one the
  PyTorch sides are skipped with one line).

* D: A's run as ``--workers`` local processes (default 2; ``--workers=1`` skips it)
  under ``runtime.strategy=multi_worker`` with the same global batch, started by
  ``python -m kimnet.launch``; the chief's steady images/s. On one machine the workers
  share its cores, so D/A measures what multi-worker training costs, not a speed-up.

Ratios: A/B (kimnet's overhead without augmentation), A'/B' (with it), A/C and A/C'
(kimnet against PyTorch on the same model, neither augmenting), D/A, each the median and
range of the per-round ratios. Then the model (trained on B's few steps) is exported
with ``kimnet.export.export`` and its serving signature timed at batch 1 (latency,
ms/image) and batch 64 (images/s) by :func:`kimnet.export_timing.measure_savedmodel`.

Writes ``bench.md`` (tables), ``bench.json`` (every round's figure, the machine,
versions and load average before and after) and ``bench.png`` (bars with the
rounds' range) to ``--out`` (default ``reports/bench/``). With the defaults (5
rounds, batch 128, three models) it takes about an hour on 2 idle cores: per model
and round, six measurements of 15-20 s plus kimnet's fixed run costs (about 30 s a
run, twice) and the first steps; ``torch.compile`` compiles once per model. Side D
adds one measurement of about 50 s per model and round (46-54 s measured at 16 steps,
the workers' start-up included): about 13 minutes over the defaults. The
QUICK variant (``--rounds=1 --steps=4 --models=mobilenetv2-32``) takes about 4
minutes. ``bench.json`` records each measurement's wall time (``side_seconds``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kimnet.errors import ONE_LINE_ERRORS, InputError, exit_code

WORKER = Path(__file__).resolve().with_name("bench_train_torch.py")
DEFAULT_OUT = "reports/bench"
SERVED_SIZE, SERVED_CHANNELS = 28, 1  # Fashion-MNIST images as a client sends them
CACHED_BATCHES = 8  # distinct batches of B's and C's in-memory data


@dataclasses.dataclass(frozen=True)
class Case:
    """One model of the benchmark: a registered kimnet model at one size and stem."""

    model: str
    image_size: int
    small_input: bool
    steps: int  # default steps per side and round: about 15-20 s each on 2 idle cores


CASES = {
    "mobilenetv2-32": Case("mobilenetv2", 32, True, steps=40),
    # About 19 times MobileNetV2's multiply-adds at 32 px: fewer steps for the same time.
    "resnet18-32": Case("resnet18", 32, True, steps=8),
    # ImageNet strides (kimnet's own choice from 96 px on), about twice the work of 32 px.
    "mobilenetv2-96": Case("mobilenetv2", 96, False, steps=18),
}
KIMNET, KIMNET_AUG = "A kimnet, augment none", "A' kimnet, augment flip_h,crop"
PLAIN, PLAIN_AUG = "B plain fit, cached tensors", "B' plain fit, tf.data + flip_h,crop"
TORCH, TORCH_COMPILED = "C PyTorch eager, channels-last", "C' PyTorch torch.compile"
WORKERS = "D kimnet, local workers, augment none"
SIDES = (KIMNET, PLAIN, KIMNET_AUG, PLAIN_AUG, TORCH, TORCH_COMPILED, WORKERS)
RATIOS = {
    "local workers / one process (augment none)": (WORKERS, KIMNET),
    "kimnet / plain fit (augment none)": (KIMNET, PLAIN),
    "kimnet / plain fit (flip_h,crop)": (KIMNET_AUG, PLAIN_AUG),
    "kimnet / PyTorch eager": (KIMNET, TORCH),
    "kimnet / torch.compile": (KIMNET, TORCH_COMPILED),
}


# ---------------------------------------------------------------- command line


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line and status 2, as kimnet's other programs
        raise InputError(f"{message}; see --help.")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The flags, checked before anything heavy is imported; bad input is an InputError."""
    parser = Parser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(CASES), help=f"of {', '.join(CASES)}")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument(
        "--steps", type=int, help="training steps per side and round (default: per model)"
    )
    parser.add_argument("--batch", type=int, default=128, help="batch size of every side")
    parser.add_argument("--out", default=DEFAULT_OUT, help="folder for bench.md/.json/.png")
    parser.add_argument(
        "--torch-python", default=sys.executable, help="interpreter with torch and torchvision"
    )
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=os.cpu_count() or 1,
        help="PyTorch's intra-op threads (default: every core, as TensorFlow uses)",
    )
    parser.add_argument("--infer-repeats", type=int, default=20, help="timed inference calls")
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="local tf.distribute workers of side D, same global batch (default 2; 1: skip D)",
    )
    args = parser.parse_args(argv)
    args.cases = _cases(args.models)
    checks = (
        ("rounds", 1),
        ("steps", 2),
        ("batch", 1),
        ("infer_repeats", 1),
        ("torch_threads", 1),
        ("workers", 1),
    )
    for name, low in checks:
        if getattr(args, name) is not None and getattr(args, name) < low:
            flag = name.replace("_", "-")
            raise InputError(f"--{flag}={getattr(args, name)}: must be at least {low}.")
    if not Path(args.torch_python).is_file():
        raise InputError(f"--torch-python={args.torch_python}: no such interpreter.")
    return args


def _cases(text: str) -> dict[str, Case]:
    from kimnet.models.registry import unknown_name_message

    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise InputError(f"--models is empty; choose from {', '.join(CASES)}.")
    for name in names:
        if name not in CASES:
            raise InputError(unknown_name_message("--models entry", name, list(CASES)))
    return {name: CASES[name] for name in names}


# ---------------------------------------------------------------- figures


def summarize(values: Sequence[float]) -> dict[str, Any]:
    """Median and range of one side's rounds, with the rounds themselves."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "rounds": list(values),
    }


def ratios(rounds: dict[str, list[float]]) -> dict[str, dict[str, Any]]:
    """Each of :data:`RATIOS` over the rounds both of its sides measured (per round)."""
    out = {}
    for label, (top, bottom) in RATIOS.items():
        pairs = list(zip(rounds.get(top, []), rounds.get(bottom, []), strict=False))
        if pairs:
            out[label] = summarize([a / b for a, b in pairs])
    return out


def machine() -> dict[str, Any]:
    """CPU model and cores, and the versions of what ran."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()}


# ---------------------------------------------------------------- writers


def _range(summary: dict[str, Any], digits: int = 0) -> str:
    f = f"{{:,.{digits}f}}"
    return f"{f.format(summary['median'])} ({f.format(summary['min'])}-{f.format(summary['max'])})"


def markdown(report: dict[str, Any]) -> str:
    """The tables of ``report`` (what :func:`run` returns)."""
    m, s = report["machine"], report["settings"]
    versions = ", ".join(f"{k} {v}" for k, v in report["versions"].items())
    lines = [
        "# make bench: training images/s, side by side",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores; {versions}.",
        f"Load average (1, 5, 15 min) before {report['load_before']}, after "
        f"{report['load_after']}.",
        f"{s['rounds']} interleaved rounds; training images/s over steps 2..N of each side's "
        "N steps (kimnet: the N steps of its second epoch), median (range over rounds).",
    ]
    if report["torch_skipped"]:
        lines.append(f"PyTorch sides skipped: {report['torch_skipped']}")
    for name, result in report["models"].items():
        heading = f"## {name}: {result['steps']} steps at batch {result['batch']}"
        lines += ["", heading, "", "| side | images/s |", "| --- | ---: |"]
        lines += [f"| {side} | {_range(v)} |" for side, v in result["sides"].items()]
        lines += ["", "| ratio (per round) | median (range) |", "| --- | ---: |"]
        lines += [f"| {label} | {_range(v, 2)} |" for label, v in result["ratios"].items()]
        lines += _inference_lines(result.get("inference"))
    return "\n".join(lines) + "\n"


def _inference_lines(inference: dict | None) -> list[str]:
    if not inference:
        return []
    one, many = min(inference, key=int), max(inference, key=int)
    return [
        "",
        f"Exported SavedModel, serving_default on {SERVED_SIZE}x{SERVED_SIZE}x{SERVED_CHANNELS} "
        f"uint8: batch {one} {inference[one]['median_ms_per_image']:.1f} ms/image (median), "
        f"batch {many} {inference[many]['images_per_second']:,.0f} images/s.",
    ]


def write_json(report: dict[str, Any], out: Path) -> Path:
    path = out / "bench.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path


def write_markdown(report: dict[str, Any], out: Path) -> Path:
    path = out / "bench.md"
    path.write_text(markdown(report))
    return path


def write_chart(report: dict[str, Any], out: Path) -> Path:
    """One panel per model: a bar per side at its median, whiskers over the rounds' range."""
    import matplotlib

    matplotlib.use("Agg")  # headless
    import matplotlib.pyplot as plt

    models = report["models"]
    figure, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 4.5), squeeze=False)
    colors = dict(zip(SIDES, plt.get_cmap("tab10").colors, strict=False))
    for axis, (name, result) in zip(axes[0], models.items(), strict=True):
        sides = list(result["sides"])
        medians = [result["sides"][side]["median"] for side in sides]
        spans = [
            [m - result["sides"][s]["min"] for s, m in zip(sides, medians, strict=True)],
            [result["sides"][s]["max"] - m for s, m in zip(sides, medians, strict=True)],
        ]
        bar_colors = [colors[side] for side in sides]
        axis.bar(range(len(sides)), medians, yerr=spans, capsize=4, color=bar_colors)
        axis.set_xticks(range(len(sides)), [side.split(" ", 1)[0] for side in sides])
        axis.set_ylabel("training images/s")
        notes = [f"{label}: {v['median']:.2f}" for label, v in result["ratios"].items()]
        axis.set_title(name + "\n" + "\n".join(notes), fontsize=8)
    shown = [side for side in SIDES if any(side in r["sides"] for r in models.values())]
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[side]) for side in shown]
    figure.legend(handles, shown, loc="lower center", ncol=3, fontsize=8)
    m, before, after = report["machine"], report["load_before"][0], report["load_after"][0]
    title = f"{m['cpu']}, {m['cores']} cores; 1-min load {before:.2f} before, {after:.2f} after"
    figure.suptitle(title, y=1.0)
    figure.tight_layout(rect=(0, 0.12, 1, 0.97))
    path = out / "bench.png"
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)
    return path


def write_all(report: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    return [write_json(report, out), write_markdown(report, out), write_chart(report, out)]


# ---------------------------------------------------------------- PyTorch worker


class TorchWorker:
    """``bench_train_torch.py`` under ``python``, kept running across rounds."""

    def __init__(self, python: str, log: Path, threads: int | None = None):
        self.log = log.open("w")
        self.process = subprocess.Popen(
            [python, str(WORKER), *([str(threads)] if threads else [])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        self.hello = self._read()

    @property
    def skipped(self) -> str | None:
        """Why the PyTorch sides cannot run, or None when they can."""
        if self.hello.get("ready"):
            return None
        return self.hello.get("skip") or self.hello.get("error", "the worker did not start")

    def _read(self) -> dict[str, Any]:
        line = self.process.stdout.readline()
        if not line:
            return {"error": f"the PyTorch worker exited; its log: {self.log.name}"}
        return json.loads(line)

    def rate(self, request: dict[str, Any]) -> float:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        reply = self._read()
        if "error" in reply:
            raise RuntimeError(f"PyTorch side failed: {reply['error']}")
        return reply["images_per_second"]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=60)
        self.log.close()


def skip_message(reason: str) -> str:
    """The one line printed when the PyTorch sides cannot run."""
    return (
        f"PyTorch sides skipped: {reason}. Install the bench extra (pip install -e '.[bench]') "
        "or pass --torch-python=<python with torch>."
    )


# ---------------------------------------------------------------- the sides


def kimnet_overrides(case: Case, ops: str, batch: int, steps: int, workdir: Path) -> dict:
    """The default experiment's changes: one short epoch of training only."""
    return {
        "model.name": case.model,
        "model.small_input": str(case.small_input).lower(),
        "data.image_size": case.image_size,
        "data.batch_size": batch,
        "augment.ops": ops,
        "schedule.epochs": 1,
        "schedule.steps_per_epoch": steps,
        "evaluate.max_batches": 1,
        "evaluate.bn_recalibration_batches": 1,
        "export.enabled": False,
        "runtime.workdir": str(workdir),
        "runtime.run_name": "bench",
        "runtime.overwrite": True,
        "runtime.progress": "silent",
    }


def kimnet_config(case: Case, ops: str, batch: int, steps: int, workdir: Path, epochs: int = 1):
    """The default experiment, shrunk to ``epochs`` short epochs of training only."""
    from kimnet import experiment

    overrides = {**kimnet_overrides(case, ops, batch, steps, workdir), "schedule.epochs": epochs}
    return experiment.with_overrides(experiment.base(), overrides)


def kimnet_side(
    case: Case, ops: str, batch: int, steps: int, splits, workdir: Path
) -> Callable[[], float]:
    """A or A': two epochs over the first ``steps * batch`` training images; the figure
    is the second epoch's. The first fills kimnet's cache of resized images, as the
    first epoch of a long run does; every later epoch reads it."""
    import contextlib
    import gc
    import io

    from kimnet import training
    from kimnet.training.loop import last_logged
    from kimnet.transfer.subsets import subset

    config = kimnet_config(case, ops, batch, steps, workdir, epochs=2)
    one_pass = subset(splits, train_examples=steps * batch)

    def measure() -> float:
        with contextlib.redirect_stdout(io.StringIO()):  # its precision line, every round
            run_dir = training.train(config, splits=one_pass).run_dir
        gc.collect()
        return last_logged(run_dir / "history.csv", "images_per_second")

    return measure


def workers_side(case: Case, batch: int, steps: int, workers: int, workdir: Path):
    """D: the same run as A as ``workers`` local processes (``python -m kimnet.launch``,
    ``runtime.strategy=multi_worker``), the same global batch; the chief's steady
    images/s. Each round pays the processes' start-up, which the figure leaves out."""
    root = Path(__file__).resolve().parents[1]
    overrides = kimnet_overrides(case, "none", batch, steps, workdir / "workers")
    overrides["runtime.strategy"] = "multi_worker"
    flags = [f"--config.{key}={value}" for key, value in overrides.items()]
    command = [sys.executable, "-m", "kimnet.launch", f"--workers={workers}", "--"]
    command += [sys.executable, str(root / "pipelines" / "train.py"), *flags]

    def measure() -> float:
        result = subprocess.run(command, capture_output=True, text=True, cwd=root)
        if result.returncode != 0:
            raise RuntimeError(f"{workers} local workers failed: {result.stderr[-2000:]}")
        metrics = json.loads((workdir / "workers" / "bench" / "metrics.json").read_text())
        return metrics["steady_images_per_second"]

    return measure


def plain_model(case: Case, batch: int, splits, workdir: Path):
    """The model kimnet builds for ``case``, compiled as a plain Keras user would."""
    import keras

    from kimnet import training
    from kimnet.training import precision

    config = kimnet_config(case, "none", batch, 2, workdir)
    keras.mixed_precision.set_global_policy(precision.choose(config.runtime.precision).policy)
    try:
        model, _ = training.build_model(config, splits.info)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    model.compile(
        optimizer=keras.optimizers.AdamW(
            config.optim.learning_rate, weight_decay=config.optim.weight_decay
        ),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.optim.label_smoothing),
        metrics=["accuracy"],
    )
    return model


def cached_batches(case: Case, batch: int, splits):
    """``CACHED_BATCHES`` real training batches, resized and normalised: numpy x, labels."""
    import numpy as np

    from kimnet import data, models

    normalization = models.get(case.model).normalization
    images, labels = [], []
    for image, label in splits.train.take(CACHED_BATCHES * batch).batch(batch):
        images.append(data.normalize(data.resize(image, case.image_size), normalization).numpy())
        labels.append(label.numpy())
    return np.stack(images), np.stack(labels)


def fit_side(model, dataset, steps: int, batch: int) -> Callable[[], float]:
    from kimnet.training.callbacks import EpochStats

    def measure() -> float:
        stats = EpochStats(batch)
        model.fit(
            dataset, epochs=1, steps_per_epoch=steps, callbacks=[stats], shuffle=False, verbose=0
        )
        return stats.steady_images_per_second

    return measure


def cached_dataset(x, y, classes: int):
    import tensorflow as tf

    flat_x = x.reshape((-1, *x.shape[2:]))
    flat_y = tf.one_hot(y.reshape(-1), classes)
    batch = x.shape[1]
    return tf.data.Dataset.from_tensor_slices((flat_x, flat_y)).batch(batch).cache().repeat()


def augmented_dataset(case: Case, batch: int, splits):
    """A plain tf.data pipeline with kimnet's augmentation, as a user would write it."""
    import tensorflow as tf

    from kimnet import data, models

    augmenter = data.augment.build("flip_h,crop", case.image_size, seed=0)
    normalization = models.get(case.model).normalization
    classes = splits.info.num_classes

    def prepare(images, labels):
        images = augmenter(data.resize(images, case.image_size), training=True)
        return data.normalize(images, normalization), tf.one_hot(labels, classes)

    autotune = tf.data.AUTOTUNE
    ds = splits.train.cache().repeat().shuffle(10_000, seed=0).batch(batch)
    return ds.map(prepare, num_parallel_calls=autotune).prefetch(autotune)


def torch_side(worker: TorchWorker, case: Case, steps: int, data_path: Path, compiled: bool):
    request = {
        "model": case.model,
        "small_input": case.small_input,
        "compiled": compiled,
        "classes": 10,
        "steps": steps,
        "data": str(data_path),
    }
    return lambda: worker.rate(request)


# ---------------------------------------------------------------- the run


def run_case(case: Case, args, splits, worker: TorchWorker | None, tmp: Path) -> dict[str, Any]:
    """Every side of one model, ``args.rounds`` interleaved rounds, then inference."""
    import numpy as np

    steps, batch = args.steps or case.steps, args.batch
    x, y = cached_batches(case, batch, splits)
    model = plain_model(case, batch, splits, tmp)
    classes = splits.info.num_classes
    sides = {
        KIMNET: kimnet_side(case, "none", batch, steps, splits, tmp),
        PLAIN: fit_side(model, cached_dataset(x, y, classes), steps, batch),
        KIMNET_AUG: kimnet_side(case, "flip_h,crop", batch, steps, splits, tmp),
        PLAIN_AUG: fit_side(model, augmented_dataset(case, batch, splits), steps, batch),
    }
    if args.workers > 1:
        sides[WORKERS] = workers_side(case, batch, steps, args.workers, tmp)
    if worker is not None and not worker.skipped:
        data_path = tmp / f"{case.model}-{case.image_size}.npz"
        np.savez(data_path, x=x, y=y)
        sides[TORCH] = torch_side(worker, case, steps, data_path, compiled=False)
        sides[TORCH_COMPILED] = torch_side(worker, case, steps, data_path, compiled=True)
    rounds: dict[str, list[float]] = {side: [] for side in sides}
    seconds: dict[str, list[float]] = {side: [] for side in sides}
    for number in range(1, args.rounds + 1):
        for side, measure in sides.items():
            start = time.perf_counter()
            rounds[side].append(measure())
            seconds[side].append(round(time.perf_counter() - start, 1))
            print(
                f"  round {number}: {side}: {rounds[side][-1]:,.0f} images/s "
                f"({seconds[side][-1]:.0f} s in all)",
                flush=True,
            )
    return {
        "model": dataclasses.asdict(case),
        "steps": steps,
        "batch": batch,
        "side_seconds": seconds,  # each measurement's wall time, fixed costs included
        "sides": {side: summarize(values) for side, values in rounds.items()},
        "ratios": ratios(rounds),
        "inference": inference(model, case, splits, args, tmp),
    }


def inference(model, case: Case, splits, args, tmp: Path) -> dict[int, dict[str, float]]:
    from kimnet import models
    from kimnet.export import export
    from kimnet.export_timing import measure_savedmodel

    path = export(
        model,
        tmp / "savedmodels" / f"{case.model}-{case.image_size}",
        class_names=list(splits.info.class_names),
        normalization=models.get(case.model).normalization,
    )
    return measure_savedmodel(
        path,
        image_size=SERVED_SIZE,
        channels=SERVED_CHANNELS,
        batch_sizes=(1, 64),
        repeats=args.infer_repeats,
        warmup=3,
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Runs every side of every model; returns the report the writers take."""
    from kimnet import console

    console.start_tensorflow()
    import keras
    import tensorflow as tf

    from kimnet import data

    # Every kimnet run builds a new model; TensorFlow reports their first-step tracing,
    # which no figure includes, as "excessive retracing".
    tf.get_logger().setLevel("ERROR")

    load_before = os.getloadavg()
    splits = data.load("fashion_mnist")
    with tempfile.TemporaryDirectory(prefix="kimnet-bench-") as tmp:
        worker = TorchWorker(args.torch_python, Path(tmp) / "torch-worker.log", args.torch_threads)
        if worker.skipped:
            print(skip_message(worker.skipped), flush=True)
        versions = {"TensorFlow": tf.__version__, "Keras": keras.__version__}
        if not worker.skipped:
            versions.update(torch=worker.hello["torch"], torchvision=worker.hello["torchvision"])
            versions["torch threads"] = worker.hello["threads"]
        try:
            results = {}
            for name, case in args.cases.items():
                print(f"{name}:", flush=True)
                results[name] = run_case(case, args, splits, worker, Path(tmp))
        finally:
            worker.close()
    batch = args.batch
    return {
        "machine": machine(),
        "versions": versions,
        "load_before": [round(load, 2) for load in load_before],
        "load_after": [round(load, 2) for load in os.getloadavg()],
        "settings": {
            "rounds": args.rounds,
            "steps": args.steps or "per model",
            "batch": batch,
            "workers": args.workers,
        },
        "torch_skipped": worker.skipped,
        "models": results,
    }


def report_main(
    argv: Sequence[str] | None,
    parse: Callable[[Sequence[str] | None], argparse.Namespace],
    measure: Callable[[argparse.Namespace], dict[str, Any]],
    write: Callable[[dict[str, Any], Path], list[Path]],
) -> int:
    """A benchmark's ``main``: parse, measure, write the report to ``--out``; bad input
    (and any other :data:`ONE_LINE_ERRORS`) is one line on stderr and its exit status."""
    try:
        args = parse(argv)
        started = time.perf_counter()
        report = measure(args)
        for path in write(report, Path(args.out)):
            print(f"wrote {path}")
        print(f"wall time {time.perf_counter() - started:.0f} s")
    except ONE_LINE_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return exit_code(error)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return report_main(argv, parse_args, run, write_all)


if __name__ == "__main__":
    sys.exit(main())
