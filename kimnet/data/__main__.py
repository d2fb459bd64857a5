"""``python -m kimnet.data prepare [NAME ...]``: prepare TFDS datasets (default fashion_mnist)."""

from __future__ import annotations

import sys

from kimnet.data.sources import prepare_tfds


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "prepare":
        print("usage: python -m kimnet.data prepare [NAME ...] [--data_dir DIR]", file=sys.stderr)
        return 2
    args = argv[1:]
    data_dir = None
    if "--data_dir" in args:
        index = args.index("--data_dir")
        data_dir = args[index + 1]
        del args[index : index + 2]
    for name in args or ["fashion_mnist"]:
        builder = prepare_tfds(name, data_dir)
        splits = {split: info.num_examples for split, info in builder.info.splits.items()}
        print(f"{name} {builder.version} is ready in {builder.data_dir}: {splits}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
