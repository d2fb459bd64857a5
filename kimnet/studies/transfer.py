"""The transfer study: pretrain on a source task, then compare ways to learn a target task.

For each target training-set size, every method trains for the same epochs on
the same images and is tested on the same target test images:

- ``scratch``: random initialisation, everything trains.
- ``finetune``: from the pretrained source, everything trains.
- ``gradual``: from the source, gradual unfreezing (head first, then deeper stages).
- ``features``: the source's frozen backbone cut after each stage, a new head trains
  (the cut after the last stage is the classic frozen-backbone feature extraction).

Results go to ``<workdir>/<name>/``: ``results.json``, ``results.md`` (a markdown
table: top-1, and top-5 when the target has at least 10 classes) and
``accuracy_vs_size.png``; each training run's directory is under ``runs/``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from kimnet import data
from kimnet.errors import InputError
from kimnet.training.config import TrainConfig
from kimnet.transfer import subsets
from kimnet.transfer.finetune import TransferConfig, finetune

METHODS = ("scratch", "finetune", "gradual", "features")
TOP5_MIN_CLASSES = 10


def load_config(path: str | Path, quick: bool = False):
    """Calls ``get_config(quick)`` of the experiment file ``path`` (e.g. configs/x.py)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Experiment config '{path}' does not exist.")
    spec = importlib.util.spec_from_file_location(f"kimnet_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise InputError(f"'{path}' has no get_config(quick=False) function.")
    return module.get_config(quick=quick)


def phase_epochs(shares: tuple[tuple[str, float], ...], epochs: int) -> str:
    """``(("head", 1/3), ("all", 2/3)), 6`` -> ``"head:2,all:4"`` (every phase >= 1 epoch)."""
    if epochs < len(shares):
        raise InputError(f"{epochs} epochs cannot hold {len(shares)} phases of at least 1 epoch.")
    counts = [max(1, round(share * epochs)) for _, share in shares]
    counts[-1] = epochs - sum(counts[:-1])
    if counts[-1] < 1:
        raise InputError(f"Phase shares {shares} do not fit {epochs} epochs.")
    return ",".join(f"{stage}:{count}" for (stage, _), count in zip(shares, counts, strict=True))


def method_runs(study) -> list[tuple[str, str, dict[str, Any]]]:
    """``[(row label, method, TransferConfig changes), ...]`` for one target size."""
    unknown = set(study.methods) - set(METHODS)
    if unknown:
        raise InputError(f"Unknown study methods {sorted(unknown)}; known: {', '.join(METHODS)}.")
    rows = []
    for method in study.methods:
        if method == "scratch":
            rows.append(("from scratch", method, {}))
        elif method == "finetune":
            rows.append(("full fine-tuning", method, {"from_source": True}))
        elif method == "gradual":
            rows.append(("gradual unfreezing", method, {"from_source": True, "gradual": True}))
        else:
            last = study.feature_stages[-1] if study.feature_stages else None
            for stage in study.feature_stages:
                label = f"frozen features from {stage}"
                if stage == last:
                    label += " (frozen backbone)"
                rows.append((label, method, {"from_source": True, "features_from": stage}))
    return rows


def markdown_table(results: list[dict[str, Any]], sizes: list[int], top5: bool) -> str:
    """Rows: methods; columns: target training-set sizes; cells: test top-1 (and top-5) %."""
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
                values.append(f"{100 * r[key]:.1f}" if r else "-")
        lines.append(f"| {label} | " + " | ".join(values) + " |")
    return "\n".join(lines)


def plot(results: list[dict[str, Any]], sizes: list[int], path: Path) -> None:
    """Test top-1 against target training-set size, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for label in dict.fromkeys(r["label"] for r in results):
        points = sorted(
            (r["train_examples"], 100 * r["test_top1"]) for r in results if r["label"] == label
        )
        axes.plot(*zip(*points, strict=True), marker="o", label=label)
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


def run(study, workdir: str | Path = "runs", overwrite: bool = False) -> Path:
    """Runs the whole study; returns its directory (results written as they come)."""
    if len(study.target_sizes) != len(study.target_epochs):
        raise InputError("target_sizes and target_epochs must have the same length.")
    out = Path(workdir) / study.name
    if out.exists():
        if not overwrite:
            raise FileExistsError(f"'{out}' already exists; pass --overwrite to replace it.")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / "config.json").write_text(json.dumps(dataclasses.asdict(study), indent=2))
    rows = method_runs(study)
    for epochs in study.target_epochs:
        if any(changes.get("gradual") for _, _, changes in rows):
            phase_epochs(study.gradual, epochs)  # fails now rather than mid-study
    splits = subsets.in_memory(data.load(study.dataset, seed=study.seed))
    common = dict(
        model=study.model,
        model_args=dict(study.model_args),
        image_size=study.image_size,
        augment=study.augment,
        seed=study.seed,
        learning_rate=study.learning_rate,
        bn_recalibration_batches=study.bn_recalibration_batches,
        workdir=str(out / "runs"),
        export=False,
    )
    subset = dict(validation_examples=study.validation_examples, test_examples=study.test_examples)
    start = time.perf_counter()
    source = finetune(
        TrainConfig(
            **common,
            epochs=study.pretrain_epochs,
            steps_per_epoch=study.pretrain_steps_per_epoch,
            batch_size=study.pretrain_batch_size,
            run_name="source",
        ),
        TransferConfig(classes=list(study.source_classes), **subset),
        splits=splits,
    )
    num_target = len(study.target_classes)
    results: list[dict[str, Any]] = []
    summary = {
        "source_test_top1": source.metrics["test_top1"],
        "source_wall_time_seconds": source.metrics["wall_time_seconds"],
        "results": results,
    }
    for size, epochs in zip(study.target_sizes, study.target_epochs, strict=True):
        for label, method, changes in rows:
            transfer = TransferConfig(
                init_from=str(source.run_dir) if changes.get("from_source") else None,
                new_head=True,
                schedule=phase_epochs(study.gradual, epochs) if changes.get("gradual") else None,
                unfreeze_lr_scale=study.unfreeze_lr_scale,
                features_from=changes.get("features_from"),
                classes=list(study.target_classes),
                train_examples=size,
                **subset,
            )
            name = f"n{size}-{method}" + (
                f"-{changes['features_from']}" if changes.get("features_from") else ""
            )
            result = finetune(
                TrainConfig(**common, epochs=epochs, batch_size=study.batch_size, run_name=name),
                transfer,
                splits=splits,
            )
            m = result.metrics
            results.append(
                {
                    "label": label,
                    "method": method,
                    "train_examples": size,
                    "epochs": epochs,
                    "schedule": transfer.schedule,
                    "test_top1": m["test_top1"],
                    "test_top5": m["test_top5"],
                    "trainable_parameters": m["trainable_parameters_per_phase"],
                    "wall_time_seconds": m["wall_time_seconds"],
                    "run_dir": str(result.run_dir),
                }
            )
            summary["total_seconds"] = round(time.perf_counter() - start, 1)
            _write(out, study, summary, num_target)
            print(f"[study] N={size} {label}: test top-1 {m['test_top1']:.4f}", flush=True)
    return out


def _write(out: Path, study, summary: dict[str, Any], num_target: int) -> None:
    results = summary["results"]
    sizes = [n for n in study.target_sizes if any(r["train_examples"] == n for r in results)]
    top5 = num_target >= TOP5_MIN_CLASSES
    (out / "results.json").write_text(json.dumps(summary, indent=2))
    note = (
        f"Source: {study.dataset} classes {list(study.source_classes)}, test top-1 "
        f"{100 * summary['source_test_top1']:.1f}%. Target: classes "
        f"{list(study.target_classes)}; N target training images, test on "
        f"{study.test_examples} target test images. Test top-1 in %"
        + (", then top-5." if top5 else f" (top-5 omitted: the target has {num_target} classes).")
    )
    (out / "results.md").write_text(
        f"# {study.name}\n\n{note}\n\n{markdown_table(results, sizes, top5)}\n"
    )
    if results:
        plot(results, sizes, out / "accuracy_vs_size.png")
