"""Runs a study: every row once per seed, results rewritten after each run.

``<workdir>/<study name>/`` receives ``runs/`` and ``savedmodels/`` (one run
directory per row and seed), ``results.json`` (the study's definition, one record
per run and one summary per row) and the report of the study's kind
(``results.md`` and a plot), and ``hparams/``, TensorBoard's HParams dashboard of
every run (``tensorboard --logdir <study dir>/hparams``). A rerun of the same
definition continues: runs with results are skipped (retrained with ``overwrite``)
and rows outside ``only`` keep theirs; another definition is refused unless
``overwrite``.
"""

from __future__ import annotations

import gc
import json
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import keras

from kimnet import data, fileio
from kimnet.errors import InputError, TrainingStopped
from kimnet.studies import ablation, architecture, report, transfer_methods
from kimnet.studies.study import SOURCE, SOURCE_RUN, Row, Study
from kimnet.training import RunResult, train
from kimnet.transfer import subsets

REPORTS = {
    "architecture": architecture,
    "transfer": transfer_methods,
    "augmentation": ablation,
    "regularization": ablation,
}
Trainer = Callable[..., RunResult]


def study_dir(study: Study, workdir: str | Path) -> Path:
    return Path(workdir) / study.name


def _previous(study: Study, out: Path, overwrite: bool) -> list[dict[str, Any]]:
    """Records of an earlier run of the same study definition in ``out``; another
    definition there is refused, or removed with ``overwrite``."""
    path = out / "results.json"
    if not out.exists():
        return []
    if path.is_file():
        try:
            payload = json.loads(path.read_text())
        except json.JSONDecodeError:
            payload = {}  # not ours, or cut by an older writer: treated as another study
        if payload.get("definition") == json.loads(json.dumps(study.definition())):
            return payload.get("records", [])
    if overwrite:
        shutil.rmtree(out)
        return []
    raise InputError(
        f"'{out}' holds another definition of the study {study.name}; pass --overwrite to "
        "replace it, or another --workdir."
    )


def _to_train(
    study: Study, rows: Sequence[Row], kept: list[dict[str, Any]], overwrite: bool, out: Path
) -> list[tuple[Row, int]]:
    """The (row, seed) runs still to train: those without a finished record, or all of
    them with ``overwrite``. A study with nothing left is refused, not silently retrained."""
    finished = {(r["row"], r["seed"]) for r in kept if not r.get("error")}
    runs = [(row, seed) for row in rows for seed in study.seeds]
    todo = runs if overwrite else [(r, s) for r, s in runs if (r.name, s) not in finished]
    if runs and not todo:
        raise InputError(
            f"The study {study.name} in '{out}' is finished for these rows; pass --overwrite "
            "to train them again."
        )
    return todo


def run(
    study: Study,
    workdir: str | Path,
    *,
    only: Sequence[str] | None = None,
    overwrite: bool = False,
    trainer: Trainer = train,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Trains the study's rows (``only`` these, if given) and returns every record.

    A rerun of the same definition continues: runs with results are kept and skipped
    (retrained with ``overwrite``), other rows' results are kept. SIGINT/SIGTERM stop
    the study after the current run saved its state (:class:`TrainingStopped`).
    """
    rows = study.select(list(only) if only else None).rows
    out = study_dir(study, workdir)
    previous = _previous(study, out, overwrite)
    runs = _to_train(study, rows, previous, overwrite, out)
    again = {(row.name, seed) for row, seed in runs}
    records = [r for r in previous if (r["row"], r["seed"]) not in again]
    out.mkdir(parents=True, exist_ok=True)
    splits = _shared_splits(study)
    source = _source_run(study, [row for row, _ in runs], out, splits, trainer, log)
    order = {row.name: index for index, row in enumerate(study.rows)}
    for index, (row, seed) in enumerate(runs, start=1):
        log(f"[{index}/{len(runs)}] {row.label} (seed {seed})")
        records.append(_train_row(study, row, seed, out, splits, source, trainer))
        records.sort(key=lambda r: (order[r["row"]], r["seed"]))
        write(study, records, out)
        log(_record_text(study, records[-1]))
    return records


def _record_text(study: Study, record: dict[str, Any]) -> str:
    if record.get("error"):
        return f"  {record['label']} failed: {record['error']}"
    return REPORTS[study.kind].record_text(record)


def _shared_splits(study: Study) -> data.Splits:
    """The study's dataset, decoded into memory once when its images have one size."""
    d = study.base.data
    splits = data.load(d.name, data_dir=d.data_dir, seed=study.base.runtime.seed)
    if splits.info.decoded_bytes("train") is None:
        return splits
    return subsets.in_memory(splits)


def _source_run(study, rows, out, splits, trainer, log) -> str | None:
    """Trains the study's source experiment when a selected row starts from it."""
    if study.source is None or not any(
        row.overrides.get("transfer.init_from") == SOURCE for row in rows
    ):
        return None
    log(f"[source] {study.name}: training the source model")
    config = study.experiment(study.source, SOURCE_RUN, study.seeds[0], out)
    run_dir = trainer(config, splits=splits).run_dir
    _free_memory()
    return str(run_dir)


def _free_memory() -> None:
    """Drops the finished run's graphs and model, so many runs fit in one process."""
    keras.backend.clear_session()
    gc.collect()


def _train_row(study, row: Row, seed, out, splits, source, trainer) -> dict[str, Any]:
    overrides = dict(row.overrides)
    if overrides.get("transfer.init_from") == SOURCE:
        overrides["transfer.init_from"] = source
    name = row.name if len(study.seeds) == 1 else f"{row.name}-seed{seed}"
    record = {"row": row.name, "label": row.label, "group": row.group, "seed": seed}
    start = time.perf_counter()
    try:
        result = trainer(study.experiment(overrides, name, seed, out), splits=splits)
    except TrainingStopped:
        raise  # asked to stop: the study stops too, and a rerun continues
    except Exception as error:  # noqa: BLE001 - one row's failure must not end the study
        _free_memory()
        return {**record, "error": repr(error)}
    record.update(_measured(result, time.perf_counter() - start))
    record.update(REPORTS[study.kind].extra(result))
    del result
    _free_memory()
    return record


def _measured(result: RunResult, seconds: float) -> dict[str, Any]:
    m = result.metrics
    return {
        "error": None,
        "test_top1": m.test_top1,
        "test_top5": m.test_top5,
        "train_top1": m.train_top1,
        "gap": None if m.train_top1 is None else m.train_top1 - m.test_top1,
        "validation_top1": m.validation_top1,
        "parameters": m.parameters,
        "trainable_parameters": m.trainable_parameters_per_phase or [m.trainable_parameters],
        "image_size": m.image_size,
        "steps": m.epochs * m.steps_per_epoch,
        "train_images_per_second": m.train_images_per_second,
        "steady_images_per_second": m.steady_images_per_second,
        "first_step_seconds": m.first_step_seconds,
        "fit_seconds": m.wall_time_seconds,
        "total_seconds": round(seconds, 1),
        "run_dir": str(result.run_dir),
        "export_dir": str(result.export_dir) if result.export_dir else None,
    }


def write(study: Study, records: Sequence[dict[str, Any]], out: Path) -> None:
    """``results.json`` and the kind's report, rewritten from all records so far."""
    summaries = report.summarise(records, [row.name for row in study.rows])
    payload = {
        "study": study.name,
        "kind": study.kind,
        "definition": study.definition(),
        "rows": summaries,
        "records": list(records),
    }
    # Atomic: a rerun continues from this file, so a kill mid-write must not cut it.
    fileio.write_json_atomic(out / "results.json", payload)
    REPORTS[study.kind].write_report(study, summaries, out)
    report.write_hparams(study, records, out)
