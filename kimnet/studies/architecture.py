"""The architecture comparison's report: one row per model, the shared budget in a note.

Every model of ``configs/architecture_study.py`` is trained from scratch with the
same base experiment; this module adds each model's family and multiply-adds to
its record, with the exported SavedModel's latency at batch 1 and throughput at batch
64 (:func:`kimnet.export_timing.measure_savedmodel`), and writes ``results.md`` (a markdown table)
and ``top1.png`` (test top-1 per model, ± one standard deviation over seeds).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kimnet import experiment, fileio, models
from kimnet.export_timing import measure_savedmodel
from kimnet.models.zoo import count_macs
from kimnet.studies import report
from kimnet.training import RunResult

# The exported model's speed: median of the timed calls after the warm-up ones.
SERVED_BATCH = 64
SPEED_REPEATS = 20
SPEED_WARMUP = 3


def extra(result: RunResult) -> dict[str, Any]:
    """What the table shows besides the run's metrics."""
    config = experiment.load(str(result.run_dir))
    measured = {
        "model": result.metrics.model,
        "family": models.get(result.metrics.model).family,
        "small_input": experiment.uses_small_input(config),
        "macs": count_macs(result.model),
    }
    if result.export_dir is not None:
        size, _, channels = result.model.input_shape[1:]
        timed = measure_savedmodel(
            result.export_dir,
            image_size=size,
            channels=channels,
            batch_sizes=(1, SERVED_BATCH),
            repeats=SPEED_REPEATS,
            warmup=SPEED_WARMUP,
        )
        measured |= {
            "latency_ms": timed[1]["median_ms_per_call"],
            "images_per_second": timed[SERVED_BATCH]["images_per_second"],
        }
    return measured


def record_text(record: dict[str, Any]) -> str:
    """The console line of a finished run."""
    return (
        f"  {record['label']}: test top-1 {record['test_top1']:.4f}, top-5 "
        f"{record['test_top5']:.4f}, {_number(record.get('steady_images_per_second'))} images/s "
        f"after the first step, {record['total_seconds']:.0f} s"
    )


def _millions(value: int) -> str:
    return f"{value / 1e6:.2f}M"


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def _table_row(r: dict[str, Any]) -> str:
    if r.get("error") and not r.get("seeds"):
        return (
            f"| {r['label']} | {models.get(r['label']).family} | failed: {r['error']} |||||||||||"
        )
    return (
        f"| {r['model']} | {r['family']} | {'yes' if r['small_input'] else 'no'} "
        f"| {_millions(r['parameters'])} | {_millions(r['macs'])} "
        f"| {report.cell(r, 'test_top1', digits=2)} | {report.cell(r, 'test_top5', digits=2)} "
        f"| {report.cell(r, 'latency_ms', scale=1, digits=1)} "
        f"| {report.cell(r, 'images_per_second', scale=1, digits=0)} "
        f"| {_number(r.get('steady_images_per_second'))} "
        f"| {_number(r.get('first_step_seconds'))} "
        f"| {r['fit_seconds']:.0f} | {r['total_seconds']:.0f} |"
    )


def _note(study) -> str:
    b = study.base
    per_model = "; ".join(
        f"{row.label}: "
        + ", ".join(f"{k}={v}" for k, v in row.overrides.items() if k != "model.name")
        for row in study.rows
        if len(row.overrides) > 1
    )
    return (
        report.budget_text(b)
        + (f" (per model: {per_model})" if per_model else "")
        + f"; {report.evaluation_text(b)}. "
        + report.rule_note(study)
        + " Top-1/top-5 in %. Multiply-adds of one image at the trained size; parameters "
        "include the classifier. "
        "Train images/s: training throughput after the first step; the first step (first step "
        "s) builds the graph and fills the shuffle buffer. Fit s: training plus the validation "
        "pass; total s adds the test and train passes, the SavedModel export and the speed "
        "measurement. Latency: the exported SavedModel's serving_default signature, called in "
        f"process with one uint8 image, median of {SPEED_REPEATS} calls after "
        f"{SPEED_WARMUP} warm-up calls; served images/s: batches of "
        f"{SERVED_BATCH}, median of {SPEED_REPEATS} calls."
        + (" Chance is 10%." if b.data.name == "fashion_mnist" else "")
    )


def markdown(summaries: Sequence[dict[str, Any]], study) -> str:
    lines = [
        "| model | family | small input | parameters | multiply-adds | test top-1 "
        "| test top-5 | latency ms (batch 1) | served images/s (batch 64) | train images/s "
        "| first step s | fit s | total s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(_table_row(r) for r in summaries),
    ]
    return "\n".join(lines) + "\n\n" + _note(study) + "\n"


def write_report(study, summaries: Sequence[dict[str, Any]], out: Path) -> None:
    fileio.write_text_atomic(out / "results.md", markdown(summaries, study))
    report.plot_bars(
        summaries,
        [("test_top1", "test top-1")],
        out / "top1.png",
        ylabel="test top-1 (%)",
        title=f"{study.name}: mean ± std over seeds {', '.join(map(str, study.seeds))}",
    )
