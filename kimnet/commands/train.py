"""``kimnet train``: parse the experiment config, train, print the summary."""

from __future__ import annotations

import sys

import ml_collections

from kimnet import cli_flags, console


def _train(config: ml_collections.ConfigDict) -> None:
    from kimnet.training import train

    cli_flags.print_summary(train(config))


def main(argv: list[str] | None = None) -> int:
    console.start_tensorflow()
    return cli_flags.run_experiment(_train, argv)


if __name__ == "__main__":
    sys.exit(main())
