"""The transfer study: pretrain on a source task, compare transfer methods on a target task.

    python pipelines/transfer_study.py          # configs/transfer_study.py, ~25 min on 2 cores
    python pipelines/transfer_study.py --quick  # the same experiment, shrunk

Writes runs/<name>/results.md (table), results.json and accuracy_vs_size.png.
"""

from __future__ import annotations

import sys
from pathlib import Path

from absl import app, flags

from kimnet import cli_flags
from kimnet.studies import transfer as study

ROOT = Path(__file__).resolve().parents[1]
FLAGS = flags.FLAGS
flags.DEFINE_string(
    "config", str(ROOT / "configs" / "transfer_study.py"), "Experiment file with get_config()."
)
flags.DEFINE_boolean("quick", False, "The config's quick variant (a smoke test).")
flags.DEFINE_string("workdir", "runs", "Where the study directory goes.")
flags.DEFINE_boolean("overwrite", False, "Replace an existing study directory.")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    config = study.load_config(FLAGS.config, quick=FLAGS.quick)
    out = study.run(config, workdir=FLAGS.workdir, overwrite=FLAGS.overwrite)
    print((out / "results.md").read_text())
    print(f"Study directory: {out}")


if __name__ == "__main__":
    sys.exit(cli_flags.run(main))
