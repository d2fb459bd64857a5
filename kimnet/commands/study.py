"""``kimnet study``: run a study file's experiments and write its table.

kimnet study --study=configs/architecture_study.py[:quick] [--only=ROW,...]
    [--workdir=runs] [--overwrite]
"""

from __future__ import annotations

import sys

from absl import flags

from kimnet import cli_flags, console

_STUDY = flags.DEFINE_string(
    "study", None, "Study file: FILE.py[:ARG] whose get_config(arg) returns the study."
)
_ONLY = flags.DEFINE_list("only", [], "Run only these rows (names as in results.json).")
_WORKDIR = flags.DEFINE_string("workdir", "runs", "The study directory goes under it.")
_OVERWRITE = flags.DEFINE_boolean(
    "overwrite",
    False,
    "Retrain the selected rows' finished runs (the other rows' results are kept), or "
    "replace another definition of the study.",
)


def _study(argv: list[str]) -> None:
    from kimnet.errors import InputError
    from kimnet.studies import report, runner, study

    if len(argv) > 1:
        raise InputError(f"Unexpected arguments: {' '.join(argv[1:])}.")
    if not _STUDY.value:
        raise InputError("Pass --study=FILE.py[:ARG], e.g. configs/architecture_study.py:quick.")
    definition = study.load(_STUDY.value)
    records = runner.run(definition, _WORKDIR.value, only=_ONLY.value, overwrite=_OVERWRITE.value)
    out = runner.study_dir(definition, _WORKDIR.value)
    print("\n" + (out / "results.md").read_text())
    print(
        f"Written to {out}/: results.md, results.json, a plot, and an HParams dashboard "
        f"(tensorboard --logdir {out / report.HPARAMS_DIR})"
    )
    failed = [record for record in records if record.get("error")]
    if failed:
        print(
            f"{len(failed)} of {len(records)} runs failed (results.md says which and why); "
            "the same command retrains only those.",
            file=sys.stderr,
        )
        sys.exit(1)


def main(argv: list[str] | None = None) -> int:
    console.start_tensorflow()
    return cli_flags.run(_study, argv)


if __name__ == "__main__":
    sys.exit(main())
