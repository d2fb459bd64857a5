"""The architecture comparison: each family trained on Fashion-MNIST with one budget.

    python pipelines/architecture_study.py --config=configs/architecture_study.py
    python pipelines/architecture_study.py --quick --models=mobilenetv3_small,resnet18

Writes ``<workdir>/architecture-study/results.md`` (a markdown table: parameters,
multiply-adds, test top-1/top-5, training images/s, time) and ``results.json``,
and prints the table. ``--quick`` runs the config's smoke variant (a few batches
per model). Exits with status 1 when a model failed (its row says why).
"""

from __future__ import annotations

import sys

from absl import app, flags

from kimnet import cli_flags
from kimnet.studies import architecture

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "config", "configs/architecture_study.py", "Study config: a Python file with get_config()."
)
flags.DEFINE_boolean("quick", False, "Run the config's quick variant (a few batches per model).")
flags.DEFINE_list("models", [], "Only these models of the study (default: all of them).")
flags.DEFINE_string("workdir", "runs", "Results go to <workdir>/architecture-study/.")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    config = architecture.load_config(FLAGS.config, quick=FLAGS.quick).select(FLAGS.models)
    rows = architecture.run_study(config, FLAGS.workdir)
    print("\n" + architecture.format_markdown(rows, config))
    print(f"Written to {architecture.study_dir(FLAGS.workdir)}/results.md and results.json")
    if any(row.get("error") for row in rows):
        sys.exit(1)


if __name__ == "__main__":
    sys.exit(cli_flags.run(main))
