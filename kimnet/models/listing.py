"""The model zoo as a table, from the metadata table alone (no Keras, no model built).

:func:`rows` gives one row per registered model; :func:`format_table` prints rows
as aligned text (also the measured rows of :func:`kimnet.models.zoo.describe`,
which add multiply-adds and stages); :func:`markdown` is the table of
``docs/models.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from kimnet.models import registry

HEAD = "head"  # the stage map's last stage (kimnet.models.stages.HEAD, without Keras)


def rows(names: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """One row per model (all, or ``names``) with the table's facts; builds nothing."""
    specs = [registry.get(n) for n in (registry.names() if names is None else names)]
    return [
        {
            "name": spec.name,
            "family": spec.family,
            "params": spec.params,
            "trainable_params": spec.trainable_params,
            "default_size": spec.default_size,
            "min_size": spec.min_size,
            "normalization": spec.normalization,
            "imagenet": spec.imagenet,
            "reference": spec.reference,
            "error": None,
        }
        for spec in specs
    ]


def _human(value: int | None) -> str:
    if value is None:
        return "-"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= scale:
            return f"{value / scale:.2f}{unit}"
    return str(value)


def _stages_text(names: list[str]) -> str:
    """``stem,stage1-stage5,head`` when the stages are numbered, else the full list."""
    numbered = [n for n in names if n.startswith("stage") and n[5:].isdigit()]
    if not names:
        return "-"
    if numbered and numbered == [f"stage{i}" for i in range(1, len(numbered) + 1)]:
        parts = [n for n in names if n not in numbered]
        span = numbered[0] if len(numbered) == 1 else f"{numbered[0]}-{numbered[-1]}"
        head = [p for p in parts if p != HEAD]
        return ",".join([*head, span] + ([HEAD] if HEAD in parts else []))
    return ",".join(names)


def _count(key: str) -> Callable[[dict[str, Any]], str]:
    return lambda r: f"{r[key]:,}" if r.get(key) is not None else "-"


_BASIC = (
    ("model", lambda r: r["name"]),
    ("family", lambda r: r["family"]),
    ("params", _count("params")),
    ("trainable", _count("trainable_params")),
)
_SIZES = (
    ("default px", lambda r: str(r["default_size"])),
    ("min px", lambda r: str(r["min_size"])),
    ("norm", lambda r: r["normalization"]),
    ("imagenet", lambda r: "yes" if r["imagenet"] else "no"),
)
_DETAILS = (
    ("MACs", lambda r: _human(r["macs"])),
    ("at px", lambda r: str(r["input_size"])),
)
_STAGES = (("stages", lambda r: _stages_text(r["stages"]) if not r.get("error") else r["error"]),)
_NUMERIC = {"params", "trainable", "MACs", "at px", "default px", "min px"}


def format_table(table_rows: Sequence[dict[str, Any]]) -> str:
    """Rows as an aligned plain-text table (numbers right-aligned).

    Measured rows (with ``macs``, from ``describe``) add multiply-adds, the input
    size they were measured at and the stages.
    """
    details = any("macs" in row for row in table_rows)
    columns = (*_BASIC, *_DETAILS, *_SIZES, *_STAGES) if details else (*_BASIC, *_SIZES)
    header = [title for title, _ in columns]
    cells = [[render(row) for _, render in columns] for row in table_rows]
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(header))]

    def line(values: list[str]) -> str:
        parts = [
            v.rjust(w) if title in _NUMERIC else v.ljust(w)
            for v, w, title in zip(values, widths, header, strict=True)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(c) for c in cells)])


def markdown(table_rows: Sequence[dict[str, Any]]) -> str:
    """Rows as a Markdown table, with the Keras Applications reference of each model."""
    titles = ("model", "family", "default px", "min px", "normalization", "ImageNet")
    header = "| " + " | ".join([*titles, "parameters", "reference"]) + " |"
    lines = [header, "|---|---|--:|--:|---|---|--:|---|"]
    for r in table_rows:
        reference = f"`keras.applications.{r['reference']}`" if r["reference"] else "-"
        lines.append(
            f"| `{r['name']}` | {r['family']} | {r['default_size']} | {r['min_size']} | "
            f"{r['normalization']} | {'yes' if r['imagenet'] else 'no'} | {r['params']:,} | "
            f"{reference} |"
        )
    return "\n".join(lines)
