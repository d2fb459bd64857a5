"""Trains a registered model on a dataset, logs to TensorBoard, exports a SavedModel.

    python pipelines/train.py --model=mobilenetv2 --dataset=fashion_mnist --epochs=5
    python pipelines/train.py --model=resnet18 --dataset=folder:~/photos --image_size=96

Every flag has a default that trains a good Fashion-MNIST classifier on a CPU;
`--quick` shrinks the same run to a few batches for a smoke test.
"""

from __future__ import annotations

import sys

from absl import app, flags

from kimnet import cli_flags
from kimnet.training import train

FLAGS = flags.FLAGS
cli_flags.define_train_flags()


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    config = cli_flags.train_config_from_flags(FLAGS)
    result = train(config)
    cli_flags.print_summary(result)


if __name__ == "__main__":
    sys.exit(cli_flags.run(main))
