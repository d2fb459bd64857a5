"""``python -m kimnet.models`` (``kimnet models``): the model zoo as a table.

Without ``--details`` the table comes from the metadata table alone: nothing is
built and TensorFlow is not imported, so it prints at once. ``--details`` builds
each model to measure multiply-adds and list its stages (``--size`` sets the input
side and implies ``--details``). ``--markdown`` prints the table of ``docs/models.md``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from kimnet.errors import InputError
from kimnet.models import listing, registry


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kimnet models",
        description="kimnet's models: family, sizes, normalisation, ImageNet weights, parameters.",
    )
    parser.add_argument("names", nargs="*", help="registered model names (default: all)")
    parser.add_argument(
        "--details",
        action="store_true",
        help="build each model to add multiply-adds and stages (slow)",
    )
    parser.add_argument(
        "--size",
        type=int,
        default=None,
        help="input side in pixels for --details (default: each model's own)",
    )
    parser.add_argument(
        "--markdown", action="store_true", help="print the Markdown table of docs/models.md"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Prints the table; returns the exit status (2 for an unknown name or bad size)."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        names = [registry.get(n).name for n in args.names] or None
        if args.markdown:
            print(listing.markdown(listing.rows(names)))
        elif args.details or args.size is not None:
            from kimnet.models import zoo  # imports Keras

            rows = [row for n in names or [None] for row in zoo.describe(n, args.size)]
            print(listing.format_table(rows))
        else:
            print(listing.format_table(listing.rows(names)))
    except InputError as error:
        parser.error(str(error))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
