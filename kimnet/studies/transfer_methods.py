"""The transfer study's report: methods against target training-set sizes.

``configs/transfer_study.py`` pretrains a source model, then trains every method on
the first N target images for each N in its sizes (each row's ``group``), on the
same target test images:

- ``scratch``: random initialisation, everything trains.
- ``finetune``: from the pretrained source, everything trains.
- ``gradual``: from the source, gradual unfreezing (head first, then deeper stages).
- ``features``: the source's frozen backbone cut after each stage, a new head trains
  (the cut after the last stage is the classic frozen-backbone feature extraction).

This module writes ``results.md`` (test top-1, and top-5 when the target has at
least 10 classes; mean ± std over seeds, marked where a method differs from training
from scratch at the same size) and ``accuracy_vs_size.png`` (± one std).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kimnet import fileio
from kimnet.errors import InputError
from kimnet.studies import report
from kimnet.studies.study import SOURCE_RUN
from kimnet.training import RunResult

METHODS = ("scratch", "finetune", "gradual", "features")
TOP5_MIN_CLASSES = 10


def phase_epochs(shares: tuple[tuple[str, float], ...], epochs: int) -> str:
    """``(("head", 1/3), ("all", 2/3)), 6`` -> ``"head:2,all:4"`` (every phase >= 1 epoch)."""
    if epochs < len(shares):
        raise InputError(f"{epochs} epochs cannot hold {len(shares)} phases of at least 1 epoch.")
    counts = [max(1, round(share * epochs)) for _, share in shares]
    counts[-1] = epochs - sum(counts[:-1])
    if counts[-1] < 1:
        raise InputError(f"Phase shares {shares} do not fit {epochs} epochs.")
    return ",".join(f"{stage}:{count}" for (stage, _), count in zip(shares, counts, strict=True))


def markdown_table(results: list[dict[str, Any]], sizes: list[int], top5: bool) -> str:
    """Rows: methods; columns: target training-set sizes; cells: test top-1 (and top-5) %,
    mean ± std over seeds with the mark of :func:`kimnet.studies.report.cell`."""
    labels = list(dict.fromkeys(r["label"] for r in results))
    cell = {(r["label"], r["train_examples"]): r for r in results}
    header = "| method | " + " | ".join(f"N={n} top-1" for n in sizes)
    rule = "|---|" + "---:|" * len(sizes)
    if top5:
        header += " | " + " | ".join(f"N={n} top-5" for n in sizes)
        rule += "---:|" * len(sizes)
    lines = [header + " |", rule]
    for label in labels:
        values = []
        keys = ["test_top1", "test_top5"] if top5 else ["test_top1"]
        for key in keys:
            for n in sizes:
                r = cell.get((label, n))
                values.append(report.cell(r, key) if r else "-")
        lines.append(f"| {label} | " + " | ".join(values) + " |")
    return "\n".join(lines)


def plot(results: list[dict[str, Any]], sizes: list[int], path: Path) -> None:
    """Test top-1 against target training-set size, one line per method, ± one std."""
    plt = report.pyplot()
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for label in dict.fromkeys(r["label"] for r in results):
        points = sorted(
            (r["train_examples"], 100 * r["test_top1"], 100 * r.get("test_top1_std", 0))
            for r in results
            if r["label"] == label
        )
        xs, ys, errors = zip(*points, strict=True)
        axes.errorbar(xs, ys, yerr=errors, marker="o", capsize=3, label=label)
    axes.set_xscale("log")
    axes.minorticks_off()
    axes.set_xticks(sizes, [str(n) for n in sizes])
    axes.set_xlabel("target training images")
    axes.set_ylabel("target test top-1 (%)")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def extra(result: RunResult) -> dict[str, Any]:
    return {"classes": len(result.metrics.class_names)}


def record_text(record: dict[str, Any]) -> str:
    """The console line of a finished run."""
    return f"[study] N={record['group']} {record['label']}: test top-1 {record['test_top1']:.4f}"


def write_report(study, summaries: Sequence[dict[str, Any]], out: Path) -> None:
    results = [
        {**r, "train_examples": r["group"]} for r in summaries if r.get("test_top1") is not None
    ]
    if not results:
        return
    sizes = sorted({r["train_examples"] for r in results})
    classes = results[0]["classes"]
    top5 = classes >= TOP5_MIN_CLASSES
    source = out / "runs" / SOURCE_RUN / "metrics.json"
    source_top1 = json.loads(source.read_text())["test_top1"] if source.is_file() else None
    b = study.base
    note = (
        f"Source: {b.data.name} classes {study.source.get('data.classes')}"
        + (f", test top-1 {100 * source_top1:.1f}%" if source_top1 is not None else "")
        + f". Target: classes {b.data.classes}; N target training images, test on "
        f"{b.data.test_examples or 'all'} target test images. Test top-1 in %"
        + (", then top-5." if top5 else f" (top-5 omitted: the target has {classes} classes).")
        + " "
        + report.rule_note(study)
    )
    fileio.write_text_atomic(
        out / "results.md", f"# {study.name}\n\n{note}\n\n{markdown_table(results, sizes, top5)}\n"
    )
    plot(results, sizes, out / "accuracy_vs_size.png")
