"""What every study's report shares: per-row mean ± std over seeds, the significance mark,
markdown cells, bar plots with error bars and the TensorBoard HParams dashboard.

:func:`summarise` turns the runs' records into one summary per row. Each row is
compared with its group's baseline, the first row of its ``group`` in study order
(rows without a group: the study's first row), by :func:`kimnet.studies.stats.welch`
on every metric of :data:`METRICS`; ``<metric>_differs`` is then ``True`` or ``False``
(``None`` for the baseline itself or with fewer than two seeds).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kimnet.studies import stats

# Per-run numbers aggregated over seeds (a record lacking one leaves it out).
METRICS = (
    "test_top1",
    "test_top5",
    "train_top1",
    "gap",
    "latency_ms",
    "images_per_second",
)
MARK = "*"
HPARAMS_DIR = "hparams"


def summarise(
    records: Sequence[dict[str, Any]], order: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """One summary per row (in ``order``, the study's row names, when given): the first
    good record with each metric's mean, ``_std``, ``_values`` and the comparison with
    the row's baseline (``_p``, ``_differs``)."""
    by_row: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_row.setdefault(record["row"], []).append(record)
    rank = {name: index for index, name in enumerate(order or [])}
    names = sorted(by_row, key=lambda name: rank.get(name, len(rank)))
    summaries = [_summary(by_row[name]) for name in names]
    baselines: dict[Any, dict[str, Any]] = {}
    for summary in summaries:
        baseline = baselines.setdefault(summary.get("group"), summary)
        summary["baseline"] = baseline["row"]
        for key in METRICS:
            _compare(summary, baseline, key)
    return summaries


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    good = [r for r in runs if not r.get("error")]
    summary = dict(good[0] if good else runs[0])
    summary["seeds"] = [r["seed"] for r in good]
    summary["failed_seeds"] = [r["seed"] for r in runs if r.get("error")]
    summary["failure"] = next((r["error"] for r in runs if r.get("error")), None)
    for key in METRICS:
        values = [r[key] for r in good if r.get(key) is not None]
        if values and len(values) == len(good):
            summary[key], summary[f"{key}_std"] = stats.mean_std(values)
            summary[f"{key}_values"] = values
    return summary


def _compare(summary: dict[str, Any], baseline: dict[str, Any], key: str) -> None:
    if summary is baseline or f"{key}_values" not in summary:
        return
    test = stats.welch(summary[f"{key}_values"], baseline.get(f"{key}_values", []))
    summary[f"{key}_p"] = None if test is None else test.p
    summary[f"{key}_differs"] = None if test is None else test.differs


def cell(summary: dict[str, Any], key: str, *, scale: float = 100, digits: int = 1) -> str:
    """``"81.3 ± 1.0 *"``: the mean, ± the std with several seeds, the mark when the row
    differs from its baseline; ``"-"`` when the row lacks the metric."""
    if summary.get(key) is None:
        return "-"
    text = f"{scale * summary[key]:.{digits}f}"
    if len(summary.get(f"{key}_values", [])) > 1:
        text += f" ± {scale * summary[f'{key}_std']:.{digits}f}"
    return text + (f" {MARK}" if summary.get(f"{key}_differs") else "")


def label_with_failures(summary: dict[str, Any]) -> str:
    """The row's label, plus the seeds that failed and why when some did but not all:
    the mean of the others must not pass for the row's."""
    failed = summary.get("failed_seeds") or []
    if not failed or not summary.get("seeds"):
        return summary["label"]
    reason = re.match(r"\w+", summary.get("failure") or "")  # the exception's class
    seeds = ", ".join(str(seed) for seed in failed)
    why = f": {reason.group(0)}" if reason else ""
    return f"{summary['label']} (seed {seeds} failed{why}; mean of the other seeds)"


def rule_note(study: Any) -> str:
    """The sentence under every table: seeds, what ± means and what the mark means."""
    seeds = ", ".join(str(seed) for seed in study.seeds)
    return (
        f"Seeds {seeds}: mean ± sample standard deviation over seeds. {MARK}: differs from "
        f"the baseline row ({_baseline_words(study)}) by {stats.RULE}."
    )


def budget_text(b: Any) -> str:
    """The shared budget of a study's base experiment ``b``, in one sentence."""
    steps = b.schedule.steps_per_epoch or "all"
    images = (
        f" on the first {b.data.train_examples} training images" if b.data.train_examples else ""
    )
    return (
        f"{b.data.name} at {b.data.image_size} px{images or ''}, trained from scratch: "
        f"{b.schedule.epochs} epoch(s) x {steps} steps of batch {b.data.batch_size}, "
        f"{b.optim.name} (lr {b.optim.learning_rate:g}, warm-up {b.schedule.warmup_epochs:g} "
        f"epoch, cosine decay, weight decay {b.optim.weight_decay:g}), label smoothing "
        f"{b.optim.label_smoothing:g}, augmentation {b.augment.ops}, dropout "
        f"{b.model.dropout:g}, small_input {b.model.small_input}"
    )


def evaluation_text(b: Any) -> str:
    """Which images the base experiment ``b`` tests on."""
    if b.evaluate.max_batches:
        return f"evaluated on the first {b.evaluate.max_batches} batches of validation and test"
    if b.data.test_examples:
        return f"tested on the first {b.data.test_examples} test images"
    return "tested on the whole test split"


def _baseline_words(study: Any) -> str:
    if any(row.group is not None for row in study.rows):
        return "the first row of the same group"
    return study.rows[0].label


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> str:
    """A markdown table whose first ``left`` columns are left-aligned, the others right."""
    rule = ["---"] * left + ["---:"] * (len(headers) - left)
    lines = [headers, rule, *rows]
    return "\n".join("| " + " | ".join(str(c) for c in line) + " |" for line in lines)


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_bars(
    summaries: Sequence[dict[str, Any]],
    series: Sequence[tuple[str, str]],
    path: Path,
    *,
    ylabel: str,
    title: str,
) -> None:
    """Bars of each ``(metric, legend)`` of ``series`` per row, ± one std, ``*`` above
    the bars that differ from their baseline."""
    plt = pyplot()
    rows = [s for s in summaries if any(s.get(key) is not None for key, _ in series)]
    width = 0.8 / len(series)
    figure, axes = plt.subplots(figsize=(max(6.0, 0.7 * len(rows) * len(series) + 2), 4.8))
    for index, (key, legend) in enumerate(series):
        xs = [i + (index - (len(series) - 1) / 2) * width for i in range(len(rows))]
        heights = [100 * (s.get(key) or 0) for s in rows]
        errors = [100 * s.get(f"{key}_std", 0) for s in rows]
        axes.bar(xs, heights, width, yerr=errors, capsize=3, label=legend)
        for x, height, error, s in zip(xs, heights, errors, rows, strict=True):
            if s.get(f"{key}_differs"):
                axes.annotate(MARK, (x, height + error), ha="center", va="bottom")
    axes.set_xticks(range(len(rows)), [s["label"] for s in rows], rotation=35, ha="right")
    axes.set_ylabel(ylabel)
    axes.set_title(title, fontsize=10)
    axes.grid(True, axis="y", alpha=0.3)
    if len(series) > 1:
        axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_hparams(study: Any, records: Sequence[dict[str, Any]], out: Path) -> Path:
    """``<out>/hparams/``: the HParams dashboard, one TensorBoard run per finished run with
    the settings its row varies (plus row and seed) and its final metrics."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    root = out / HPARAMS_DIR
    shutil.rmtree(root, ignore_errors=True)
    good = [r for r in records if not r.get("error")]
    keys = sorted({key for row in study.rows for key in row.overrides})
    metrics = [key for key in METRICS if any(r.get(key) is not None for r in good)]
    _write(
        tf,
        root,
        lambda: hp.hparams_config(
            hparams=[hp.HParam("row"), hp.HParam("seed"), *(hp.HParam(key) for key in keys)],
            metrics=[hp.Metric(key) for key in metrics],
        ),
    )
    rows = {row.name: row for row in study.rows}
    for record in good:
        values = {"row": record["row"], "seed": record["seed"]}
        values |= {key: _hparam(_setting(study, rows.get(record["row"]), key)) for key in keys}
        trial = f"{record['row']}-seed{record['seed']}"
        _write(tf, root / trial, lambda v=values, r=record, t=trial: _trial(hp, tf, v, r, t))
    return root


def _write(tf: Any, directory: Path, body) -> None:
    writer = tf.summary.create_file_writer(str(directory))
    with writer.as_default():
        body()
    writer.close()


def _trial(hp: Any, tf: Any, values: dict, record: dict, trial: str) -> None:
    hp.hparams(values, trial_id=trial)
    for key in METRICS:
        if record.get(key) is not None:
            tf.summary.scalar(key, record[key], step=0)


def _setting(study: Any, row: Any, key: str) -> Any:
    if row is not None and key in row.overrides:
        return row.overrides[key]
    section, name = key.split(".")
    return study.base[section][name]


def _hparam(value: Any) -> bool | int | float | str:
    """HParams take booleans, numbers and strings only."""
    return value if isinstance(value, bool | int | float | str) else str(value)
