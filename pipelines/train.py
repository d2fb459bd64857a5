"""Trains a model as an experiment config describes; logs to TensorBoard, exports a SavedModel.

    python pipelines/train.py                                      # configs/train.py
    python pipelines/train.py --config=configs/train.py:quick      # the same, shrunk
    python pipelines/train.py --config.model.name=resnet18 --config.data.name=folder:~/photos
    python pipelines/train.py --config.transfer.init_from=runs/fmnist-mobilenetv2 \\
        --config.transfer.freeze=backbone --config.data.name=folder:~/photos
    python pipelines/train.py --config=runs/fmnist-mobilenetv2     # rerun a finished run
    python pipelines/train.py --help                               # every field

The same program is `kimnet train` (and `kimnet finetune`).
"""

import sys

from kimnet.commands import train

if __name__ == "__main__":
    sys.exit(train.main())
