"""The architecture comparison study: several families, one training budget, one table.

A study config (``configs/architecture_study.py``) names the models and the shared
budget, i.e. the :class:`~kimnet.training.TrainConfig` settings every model is
trained with. :func:`run_study` trains each model from scratch with exactly that
budget through :func:`kimnet.training.train`, measures its multiply-adds at the
trained input size, and writes ``results.md`` (a markdown table) and
``results.json`` to ``<workdir>/architecture-study/``, rewriting both after every
model so an interrupted study keeps what it measured. Runs go to
``<workdir>/architecture-study/runs/arch-<model>/`` and SavedModels to
``<workdir>/architecture-study/savedmodels/arch-<model>/``; a rerun replaces both.
"""

from __future__ import annotations

import dataclasses
import gc
import importlib.util
import json
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import keras

from kimnet import models
from kimnet.errors import InputError
from kimnet.models.zoo import count_macs
from kimnet.training import RunResult, TrainConfig, train

STUDY_DIR = "architecture-study"
RUN_PREFIX = "arch-"
# Settings the study sets per model; a budget may not fix them.
PER_MODEL_FIELDS = (
    "model",
    "model_args",
    "run_name",
    "workdir",
    "export_dir",
    "export_version",
    "overwrite",
)


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """The models to compare, the shared budget (TrainConfig field -> value), and
    per-model ``overrides`` (model -> {field: value}) for what a model cannot share,
    e.g. AlexNet's small-input stem at 32 px; the table shows each override."""

    models: tuple[str, ...]
    budget: dict[str, Any]
    overrides: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def validate(self) -> None:
        """Raises ``InputError`` naming the first unknown model or budget setting."""
        if not self.models:
            raise InputError("The study names no models; list at least one in the config.")
        known = set(models.names())
        for name in self.models:
            if name not in known:
                models.get(name)  # raises with the nearest registered names
        fields = {f.name for f in dataclasses.fields(TrainConfig)}
        settings = [*self.budget, *(k for o in self.overrides.values() for k in o)]
        for key in settings:
            if key not in fields:
                raise InputError(
                    f"Budget setting '{key}' is not a TrainConfig field; known: "
                    f"{', '.join(sorted(fields - set(PER_MODEL_FIELDS)))}."
                )
            if key in PER_MODEL_FIELDS:
                raise InputError(f"Budget setting '{key}' is set per model by the study.")
        strangers = [name for name in self.overrides if name not in self.models]
        if strangers:
            raise InputError(f"Overrides for models not in the study: {', '.join(strangers)}.")
        if len(set(self.models)) != len(self.models):
            raise InputError(f"The study lists a model twice: {', '.join(self.models)}.")

    def select(self, names: Sequence[str] | None) -> StudyConfig:
        """The same study restricted to ``names`` (in the config's order); None: all."""
        if not names:
            return self
        unknown = [n for n in names if n not in self.models]
        if unknown:
            raise InputError(
                f"Not in the study: {', '.join(unknown)}. The study's models: "
                f"{', '.join(self.models)}."
            )
        return dataclasses.replace(
            self,
            models=tuple(m for m in self.models if m in names),
            overrides={m: o for m, o in self.overrides.items() if m in names},
        )


def load_config(path: str | Path, *, quick: bool = False) -> StudyConfig:
    """Calls ``get_config(quick=quick)`` of the Python file ``path`` and validates it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Study config '{path}' does not exist.")
    spec = importlib.util.spec_from_file_location(f"_study_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise InputError(f"Study config '{path}' has no get_config(quick=False) function.")
    config = module.get_config(quick=quick)
    if not isinstance(config, StudyConfig):
        raise InputError(f"get_config() of '{path}' must return a StudyConfig.")
    config.validate()
    return config


def study_dir(workdir: str | Path) -> Path:
    """Where a study run with ``workdir`` puts its runs, exports and results."""
    return Path(workdir) / STUDY_DIR


def train_config(config: StudyConfig, name: str, out_dir: Path) -> TrainConfig:
    """The TrainConfig of one model of the study: the budget, the model's overrides,
    and the per-model run name and directories."""
    return TrainConfig(
        model=name,
        run_name=f"{RUN_PREFIX}{name}",
        workdir=str(out_dir / "runs"),
        export_dir=str(out_dir / "savedmodels"),
        overwrite=True,
        **{**config.budget, **config.overrides.get(name, {})},
    )


def _row(run: TrainConfig, result: RunResult, seconds: float) -> dict[str, Any]:
    m = result.metrics
    return {
        "model": run.model,
        "family": models.get(run.model).family,
        "small_input": run.use_small_input(),
        "parameters": m["parameters"],
        "macs": count_macs(result.model),
        "image_size": m["image_size"],
        "test_top1": m["test_top1"],
        "test_top5": m["test_top5"],
        "train_images_per_second": m["train_images_per_second"],
        "steady_images_per_second": m.get("steady_images_per_second"),
        "first_step_seconds": m.get("first_step_seconds"),
        "fit_seconds": m["wall_time_seconds"],
        "total_seconds": round(seconds, 1),
        "steps": m["epochs"] * m["steps_per_epoch"],
        "run_dir": str(result.run_dir),
        "export_dir": str(result.export_dir),
        "error": None,
    }


def previous_rows(config: StudyConfig, out_dir: Path) -> list[dict[str, Any]]:
    """Rows of an earlier run in ``out_dir`` with the same budget and overrides.

    A study run on a subset of models (``--models``) keeps the other models' rows of
    an earlier run of the same experiment, so one model can be rerun alone.
    """
    path = out_dir / "results.json"
    if not path.is_file():
        return []
    payload = json.loads(path.read_text())
    same = (
        payload.get("budget") == config.budget and payload.get("overrides", {}) == config.overrides
    )
    return list(payload.get("results", [])) if same else []


def _merge(old: Sequence[dict[str, Any]], new: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = {row["model"]: row for row in old}
    rows.update({row["model"]: row for row in new})
    return list(rows.values())


def run_study(
    config: StudyConfig,
    workdir: str | Path,
    *,
    trainer: Callable[[TrainConfig], RunResult] = train,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Trains every model of ``config`` with its budget; returns the table's rows.

    A model that fails (e.g. runs out of memory) gets a row with its ``error`` and
    the study goes on. ``results.md`` and ``results.json`` are rewritten after each
    model; they also keep the rows of models that an earlier run of the same budget
    trained and this run does not (see :func:`previous_rows`).
    """
    config.validate()
    out_dir = study_dir(workdir)
    out_dir.mkdir(parents=True, exist_ok=True)
    old = [row for row in previous_rows(config, out_dir) if row["model"] not in config.models]
    new: list[dict[str, Any]] = []
    for index, name in enumerate(config.models, 1):
        run = train_config(config, name, out_dir)
        log(f"[{index}/{len(config.models)}] {name}: {_budget_text(run)}")
        # A rerun replaces the model's earlier exports instead of adding versions.
        shutil.rmtree(Path(run.export_dir) / run.resolved_run_name(), ignore_errors=True)
        start = time.perf_counter()
        try:
            result = trainer(run)
            row = _row(run, result, time.perf_counter() - start)
            del result
        except Exception as error:  # noqa: BLE001 - one model's failure must not end the study
            row = {"model": name, "family": models.get(name).family, "error": repr(error)}
        finally:
            keras.backend.clear_session()
            gc.collect()
        new.append(row)
        write_results(_merge(old, new), config, out_dir)
        log(_row_text(row))
    return _merge(old, new)


def _budget_text(run: TrainConfig) -> str:
    steps = f"{run.steps_per_epoch} steps" if run.steps_per_epoch else "full epochs"
    return (
        f"{run.epochs} epoch(s) x {steps} of batch {run.batch_size} at {run.image_size} px "
        f"(small input: {run.use_small_input()}), {run.optimizer} lr {run.learning_rate:g}"
    )


def _row_text(row: dict[str, Any]) -> str:
    if row.get("error"):
        return f"  {row['model']} failed: {row['error']}"
    return (
        f"  {row['model']}: test top-1 {row['test_top1']:.4f}, top-5 {row['test_top5']:.4f}, "
        f"{_number(row.get('steady_images_per_second'))} images/s after the first step, "
        f"{row['total_seconds']:.0f} s"
    )


def _millions(value: int) -> str:
    return f"{value / 1e6:.2f}M"


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def format_markdown(rows: Sequence[dict[str, Any]], config: StudyConfig) -> str:
    """The study's results as a markdown table with a note on how they were made."""
    b = TrainConfig(**config.budget)
    chance = 0.1 if b.dataset == "fashion_mnist" else None
    lines = [
        "| model | family | small input | parameters | multiply-adds | test top-1 "
        "| test top-5 | train images/s | first step s | fit s | total s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if r.get("error"):
            lines.append(f"| {r['model']} | {r['family']} | failed: {r['error']} |||||||||")
            continue
        lines.append(
            f"| {r['model']} | {r['family']} | {'yes' if r['small_input'] else 'no'} "
            f"| {_millions(r['parameters'])} | {_millions(r['macs'])} | {r['test_top1']:.2%} "
            f"| {r['test_top5']:.2%} | {_number(r.get('steady_images_per_second'))} "
            f"| {_number(r.get('first_step_seconds'))} "
            f"| {r['fit_seconds']:.0f} | {r['total_seconds']:.0f} |"
        )
    steps = b.steps_per_epoch or "all"
    overrides = "; ".join(
        f"{name}: " + ", ".join(f"{k}={v}" for k, v in settings.items())
        for name, settings in config.overrides.items()
    )
    note = (
        f"\n{b.dataset} at {b.image_size} px, trained from scratch: {b.epochs} epoch(s) x "
        f"{steps} steps of batch {b.batch_size}, {b.optimizer} (lr {b.learning_rate:g}, "
        f"warm-up {b.warmup_epochs:g} epoch, cosine decay, weight decay {b.weight_decay:g}), "
        f"label smoothing {b.label_smoothing:g}, augmentation {b.augment}, dropout "
        f"{b.dropout:g}, small_input {b.small_input}"
        + (f" (per model: {overrides})" if overrides else "")
        + (
            "; quick (smoke) variant: validation and test on a few batches only"
            if b.quick
            else "; tested on the whole test split"
        )
        + ". Multiply-adds of one image at the trained size; parameters include the "
        "10-class head. Train images/s: training throughput after the first step; the "
        "first step (first step s) builds the graph and fills the shuffle buffer, a large "
        "share of a short budget. Fit s: training plus the validation pass; total s adds "
        "the test pass and the SavedModel export." + (f" Chance is {chance:.0%}." if chance else "")
    )
    return "\n".join(lines) + "\n" + note + "\n"


def write_results(rows: Sequence[dict[str, Any]], config: StudyConfig, out_dir: Path) -> None:
    """``results.md`` and ``results.json`` in ``out_dir``."""
    (out_dir / "results.md").write_text(format_markdown(rows, config))
    payload = {
        "models": [row["model"] for row in rows],
        "budget": config.budget,
        "overrides": config.overrides,
        "results": list(rows),
    }
    (out_dir / "results.json").write_text(json.dumps(payload, indent=2))
