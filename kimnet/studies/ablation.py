"""The augmentation and regularisation studies' report: one row per setting, train top-1
next to test top-1.

Both studies (``configs/augmentation_study.py``, ``configs/regularization_study.py``)
train one model on a small training subset with one shared budget and change one
setting per row. This module writes ``results.md`` (train top-1, test top-1, their gap
and test top-5, mean ± std over seeds, marked where a row differs from the study's
first row, the baseline) and ``train_vs_test.png`` (train and test top-1 side by side).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kimnet import fileio
from kimnet.studies import report
from kimnet.training import RunResult

PLOT = "train_vs_test.png"
HEADERS = (
    "setting",
    "changes",
    "train top-1",
    "test top-1",
    "gap (train - test)",
    "test top-5",
    "fit s",
)


def extra(result: RunResult) -> dict[str, Any]:
    """Nothing beyond the runner's record: it holds train and test top-1."""
    return {}


def record_text(record: dict[str, Any]) -> str:
    """The console line of a finished run."""
    return (
        f"  {record['label']}: train top-1 {record['train_top1']:.4f}, test top-1 "
        f"{record['test_top1']:.4f}, {record['total_seconds']:.0f} s"
    )


def _changes(study: Any, name: str) -> str:
    row = next((row for row in study.rows if row.name == name), None)
    if row is None or not row.overrides:
        return "(baseline)" if row is study.rows[0] else "-"
    return ", ".join(f"{key}={value}" for key, value in row.overrides.items())


def _table_row(study: Any, s: dict[str, Any]) -> list[str]:
    if s.get("error") and not s.get("seeds"):
        return [s["label"], _changes(study, s["row"]), f"failed: {s['error']}", "", "", "", ""]
    return [
        report.label_with_failures(s),
        _changes(study, s["row"]),
        report.cell(s, "train_top1"),
        report.cell(s, "test_top1"),
        report.cell(s, "gap"),
        report.cell(s, "test_top5"),
        f"{s['fit_seconds']:.0f}",
    ]


def markdown(study: Any, summaries: Sequence[dict[str, Any]]) -> str:
    table = report.markdown_table(HEADERS, [_table_row(study, s) for s in summaries], left=2)
    note = (
        f"{report.budget_text(study.base)}; {report.evaluation_text(study.base)}. Train top-1: "
        "the plain (un-augmented) training images in evaluation mode, as many batches as the "
        "test pass. Top-1, top-5 and the gap in %. "
        + report.rule_note(study)
        + " Fit s: training plus the validation passes, of the first seed."
    )
    return f"# {study.name}\n\n{table}\n\n{note}\n"


def write_report(study: Any, summaries: Sequence[dict[str, Any]], out: Path) -> None:
    fileio.write_text_atomic(out / "results.md", markdown(study, summaries))
    report.plot_bars(
        summaries,
        [("train_top1", "train top-1"), ("test_top1", "test top-1")],
        out / PLOT,
        ylabel="top-1 (%)",
        title=f"{study.name}: mean ± std over seeds {', '.join(map(str, study.seeds))}",
    )
