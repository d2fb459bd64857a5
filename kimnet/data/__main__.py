"""Dataset commands.

    python -m kimnet.data prepare [NAME ...] [--data_dir DIR]
    python -m kimnet.data tfrecord SOURCE OUT [--examples_per_shard N] [--data_dir DIR]

``prepare`` downloads and prepares TFDS datasets (default fashion_mnist; offline from
the Debian files when they are installed). ``tfrecord`` writes SOURCE (a TFDS name or
folder:/path) as TFRecord shards in the new folder OUT, for ``--dataset=tfrecord:OUT``.

Bad input exits 2 and a full disk 1, each with one ``error:`` line; Ctrl-C or SIGTERM
exits 130 and leaves no staging folder behind.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

from kimnet.data import tfrecord
from kimnet.data.sources import load, prepare_tfds
from kimnet.errors import ONE_LINE_ERRORS, exit_code


def _prepare(args: argparse.Namespace) -> None:
    for name in args.names or ["fashion_mnist"]:
        builder = prepare_tfds(name, args.data_dir)
        splits = {split: info.num_examples for split, info in builder.info.splits.items()}
        print(f"{name} {builder.version} is ready in {builder.data_dir}: {splits}")


def _write_tfrecord(args: argparse.Namespace) -> None:
    start = time.perf_counter()
    splits = load(args.source, data_dir=args.data_dir)
    counts = tfrecord.write(splits, args.out, examples_per_shard=args.examples_per_shard)
    written = ", ".join(f"{split} {count}" for split, count in counts.items())
    print(
        f"Wrote {args.source} to {args.out} ({written} examples) in "
        f"{time.perf_counter() - start:.0f} s. Train on it with --dataset=tfrecord:{args.out}"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m kimnet.data", description="Dataset commands.")
    commands = parser.add_subparsers(dest="command", required=True)
    prepare = commands.add_parser("prepare", help="download and prepare TFDS datasets")
    prepare.add_argument("names", nargs="*", help="TFDS names (default: fashion_mnist)")
    prepare.add_argument("--data_dir", help="TFDS data directory (default: ~/tensorflow_datasets)")
    prepare.set_defaults(run=_prepare)
    shards = commands.add_parser("tfrecord", help="write a dataset as TFRecord shards")
    shards.add_argument("source", help="TFDS name or folder:/path")
    shards.add_argument("out", help="the shard folder to create (must not exist)")
    shards.add_argument(
        "--examples_per_shard", type=int, default=tfrecord.DEFAULT_EXAMPLES_PER_SHARD
    )
    shards.add_argument("--data_dir", help="TFDS data directory (default: ~/tensorflow_datasets)")
    shards.set_defaults(run=_write_tfrecord)
    args = parser.parse_args(argv)
    # SIGTERM (a scheduler, `kill`) unwinds like Ctrl-C, so staging folders are removed.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        args.run(args)
    except ONE_LINE_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return exit_code(error)
    except KeyboardInterrupt:
        out = getattr(args, "out", None)  # only `tfrecord` stages its output
        print(
            f"Interrupted; nothing was written to {out}." if out else "Interrupted.",
            file=sys.stderr,
        )
        return 130
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
