"""A study: a list of experiments, each a base experiment config plus overrides.

A study file (``configs/*_study.py``) defines ``get_config(arg=None)`` returning an
``ml_collections.ConfigDict`` with

- ``name``: the study directory under the work directory;
- ``kind``: which report summarises it (one of :data:`KINDS`);
- ``base``: an experiment config (:mod:`kimnet.experiment`) every row starts from;
- ``rows``: ``[{name, label, group, overrides}]``, ``overrides`` being nested like
  the experiment (``{"model": {"name": "resnet18"}}``); ``name`` is the row's run name;
- ``source``: overrides of an experiment trained first, or ``None``; a row's
  ``transfer.init_from`` of :data:`SOURCE` starts from that run;
- ``seeds``: every row runs once per seed.

:func:`load` builds and checks every row's experiment before anything runs, so a row
that does not parse is named with its field.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import ml_collections

from kimnet import experiment
from kimnet.errors import InputError

KINDS = ("architecture", "transfer", "augmentation", "regularization")
# Every study's seeds: three in the full variant, two in the quick one (enough for a
# standard deviation and a t-test, so the quick variant exercises the aggregation).
SEEDS = (0, 1, 2)
QUICK_SEEDS = (0, 1)
SOURCE = "{source}"
SOURCE_RUN = "source"
# What the study decides for every run, so rows may not set it.
PER_RUN = ("runtime.run_name", "runtime.workdir", "runtime.seed", "export.dir", "runtime.overwrite")


@dataclasses.dataclass(frozen=True)
class Row:
    name: str
    label: str
    overrides: dict[str, Any]  # dotted path -> value
    group: Any = None


@dataclasses.dataclass(frozen=True)
class Study:
    name: str
    kind: str
    base: ml_collections.ConfigDict
    rows: tuple[Row, ...]
    seeds: tuple[int, ...] = (0,)
    source: dict[str, Any] | None = None

    def select(self, names: list[str] | None) -> Study:
        """The same study restricted to the rows ``names`` (in the study's order)."""
        if not names:
            return self
        known = [row.name for row in self.rows]
        unknown = [name for name in names if name not in known]
        if unknown:
            raise InputError(
                f"Not in the study: {', '.join(unknown)}. Its rows: {', '.join(known)}."
            )
        return dataclasses.replace(self, rows=tuple(r for r in self.rows if r.name in names))

    def definition(self) -> dict[str, Any]:
        """What makes two runs the same study (results of one may complete the other's)."""
        return {
            "base": self.base.to_dict(),
            "source": self.source,
            "seeds": list(self.seeds),
            "rows": {row.name: row.overrides for row in self.rows},
        }

    def experiment(self, overrides: Mapping[str, Any], name: str, seed: int, out: Path):
        """The validated experiment of one run of the study."""
        return experiment.with_overrides(
            self.base,
            {
                **overrides,
                "runtime.run_name": name,
                "runtime.seed": seed,
                "runtime.workdir": str(out / "runs"),
                "export.dir": str(out / "savedmodels"),
                "runtime.overwrite": True,
            },
        )


def _flat_overrides(where: str, overrides: Any) -> dict[str, Any]:
    if overrides is None:
        return {}
    if not isinstance(overrides, Mapping):
        raise InputError(f"{where}: overrides must be a mapping like {{'model': {{'name': ...}}}}.")
    flat = dict(experiment.flatten(overrides))
    for path in flat:
        try:
            experiment.check_key(path)
        except InputError as error:
            raise InputError(f"{where}: {error}") from None
        if path in PER_RUN:
            raise InputError(f"{where}: '{path}' is set by the study for every run.")
    return flat


def from_config(config: Mapping[str, Any]) -> Study:
    """A checked :class:`Study` from a study file's ``get_config()`` result."""
    values = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    unknown = set(values) - {"name", "kind", "base", "rows", "seeds", "source"}
    if unknown:
        raise InputError(f"Unknown study keys {sorted(unknown)}.")
    if values.get("kind") not in KINDS:
        raise InputError(f"Study kind {values.get('kind')!r}: expected one of {', '.join(KINDS)}.")
    base = experiment.validate(values.get("base") or {})
    rows = []
    for index, row in enumerate(values.get("rows") or [], start=1):
        where = f"Study row {index} ({row.get('name', '?')})"
        rows.append(
            Row(
                name=str(row["name"]),
                label=str(row.get("label", row["name"])),
                overrides=_flat_overrides(where, row.get("overrides")),
                group=row.get("group"),
            )
        )
    if not rows:
        raise InputError("The study has no rows.")
    names = [row.name for row in rows]
    if len(set(names)) != len(names) or SOURCE_RUN in names:
        raise InputError(f"Study row names must be unique and not '{SOURCE_RUN}': {names}.")
    seeds = tuple(int(seed) for seed in values.get("seeds") or (0,))
    source = values.get("source")
    study = Study(
        name=str(values.get("name") or "study"),
        kind=values["kind"],
        base=base,
        rows=tuple(rows),
        seeds=seeds,
        source=_flat_overrides("Study source", source) if source is not None else None,
    )
    _check_rows(study)
    return study


def _check_rows(study: Study) -> None:
    """Builds every run's experiment now, so a bad row fails before the first run."""
    out = Path("/nonexistent-study-check")
    if study.source is not None:
        study.experiment(study.source, SOURCE_RUN, study.seeds[0], out)
    for index, row in enumerate(study.rows, start=1):
        overrides = dict(row.overrides)
        if overrides.get("transfer.init_from") == SOURCE:
            if study.source is None:
                raise InputError(f"Study row {index} ({row.name}) starts from a source it lacks.")
            overrides.pop("transfer.init_from")
        try:
            study.experiment(overrides, row.name, study.seeds[0], out)
        except InputError as error:
            raise InputError(f"Study row {index} ({row.name}): {error}") from None


def load_module(path_text: str) -> ModuleType:
    """The study file ``path_text`` as a module (its ``get_config`` not called yet)."""
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise InputError(f"Study file '{path_text}' does not exist.")
    module_spec = importlib.util.spec_from_file_location(f"kimnet_study_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise InputError(f"Study file '{path}' does not define get_config(arg=None).")
    return module


def load(spec: str) -> Study:
    """The study of ``file.py[:arg]`` (``get_config(arg)``), checked."""
    path_text, _, arg = spec.partition(":")
    module = load_module(path_text)
    return from_config(module.get_config(arg) if arg else module.get_config())
