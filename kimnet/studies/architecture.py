"""The architecture comparison's report: one row per model, the shared budget in a note.

Every model of ``configs/architecture_study.py`` is trained from scratch with the
same base experiment; this module adds each model's family and multiply-adds to
its record and writes ``results.md`` (a markdown table).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kimnet import experiment, models
from kimnet.models.zoo import count_macs
from kimnet.training import RunResult


def extra(result: RunResult) -> dict[str, Any]:
    """What the table shows besides the run's metrics."""
    config = experiment.load(str(result.run_dir))
    return {
        "model": result.metrics.model,
        "family": models.get(result.metrics.model).family,
        "small_input": experiment.uses_small_input(config),
        "macs": count_macs(result.model),
    }


def record_text(record: dict[str, Any]) -> str:
    if record.get("error"):
        return f"  {record['label']} failed: {record['error']}"
    return (
        f"  {record['label']}: test top-1 {record['test_top1']:.4f}, top-5 "
        f"{record['test_top5']:.4f}, {_number(record.get('steady_images_per_second'))} images/s "
        f"after the first step, {record['total_seconds']:.0f} s"
    )


def _millions(value: int) -> str:
    return f"{value / 1e6:.2f}M"


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def _accuracy(row: dict[str, Any], key: str) -> str:
    text = f"{row[key]:.2%}"
    return text + (f" ± {row[key + '_std']:.2%}" if len(row.get("seeds", [])) > 1 else "")


def _table_row(r: dict[str, Any]) -> str:
    if r.get("error") and not r.get("seeds"):
        return f"| {r['label']} | {models.get(r['label']).family} | failed: {r['error']} |||||||||"
    return (
        f"| {r['model']} | {r['family']} | {'yes' if r['small_input'] else 'no'} "
        f"| {_millions(r['parameters'])} | {_millions(r['macs'])} | {_accuracy(r, 'test_top1')} "
        f"| {_accuracy(r, 'test_top5')} | {_number(r.get('steady_images_per_second'))} "
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
    steps = b.schedule.steps_per_epoch or "all"
    seeds = ", ".join(str(s) for s in study.seeds)
    return (
        f"{b.data.name} at {b.data.image_size} px, trained from scratch: {b.schedule.epochs} "
        f"epoch(s) x {steps} steps of batch {b.data.batch_size}, {b.optim.name} (lr "
        f"{b.optim.learning_rate:g}, warm-up {b.schedule.warmup_epochs:g} epoch, cosine decay, "
        f"weight decay {b.optim.weight_decay:g}), label smoothing {b.optim.label_smoothing:g}, "
        f"augmentation {b.augment.ops}, dropout {b.model.dropout:g}, small_input "
        f"{b.model.small_input}"
        + (f" (per model: {per_model})" if per_model else "")
        + (
            f"; evaluated on the first {b.evaluate.max_batches} batches of validation and test"
            if b.evaluate.max_batches
            else "; tested on the whole test split"
        )
        + f"; seeds {seeds} (top-1/top-5: mean ± standard deviation over seeds when several)."
        " Multiply-adds of one image at the trained size; parameters include the classifier. "
        "Train images/s: training throughput after the first step; the first step (first step "
        "s) builds the graph and fills the shuffle buffer. Fit s: training plus the validation "
        "pass; total s adds the test pass and the SavedModel export."
        + (" Chance is 10%." if b.data.name == "fashion_mnist" else "")
    )


def markdown(summaries: Sequence[dict[str, Any]], study) -> str:
    lines = [
        "| model | family | small input | parameters | multiply-adds | test top-1 "
        "| test top-5 | train images/s | first step s | fit s | total s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(_table_row(r) for r in summaries),
    ]
    return "\n".join(lines) + "\n\n" + _note(study) + "\n"


def write_report(study, summaries: Sequence[dict[str, Any]], out: Path) -> None:
    (out / "results.md").write_text(markdown(summaries, study))
