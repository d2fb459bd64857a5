"""Fine-tunes a pretrained model on a dataset: transfer learning in one command.

    python pipelines/finetune.py --model=mobilenetv2 --init_from=runs/fmnist-mobilenetv2 \\
        --dataset=folder:~/my_photos --freeze=backbone
    python pipelines/finetune.py --model=mobilenetv2 --weights=imagenet --image_size=96 \\
        --dataset=folder:~/my_photos --schedule=head:3,stage5:2,stage4:2,all:4

Takes every flag of pipelines/train.py, plus the source (--weights or
--init_from), what trains (--freeze, or --schedule for gradual unfreezing), and
--features_from to train a head on the features of one stage. The run is named
<dataset>-<model>-finetune unless --run_name says otherwise. Writes the same
run directory (plus trainable.json: trainable and frozen parameters per stage
and phase) and exports a SavedModel the same way.
"""

from __future__ import annotations

import dataclasses
import sys

from absl import app, flags

from kimnet import cli_flags
from kimnet.transfer import TransferConfig, finetune, subsets

FLAGS = flags.FLAGS
cli_flags.define_train_flags()
flags.DEFINE_string(
    "weights", None, "Pretrained weights: imagenet (Keras Applications) or a .weights.h5 path."
)
flags.DEFINE_string("init_from", None, "A kimnet run directory (runs/<name>) to start from.")
flags.DEFINE_string(
    "freeze",
    None,
    "What does not train: none, backbone (only the head trains), stages:K (the stem and "
    "stage1..K), bn (batch-norm layers). Default: none.",
)
flags.DEFINE_string(
    "schedule",
    None,
    "Gradual unfreezing, e.g. head:3,stage4:2,stage3:2,all:4 (<first trainable stage>:"
    "<epochs>[@lr]); replaces --epochs and --freeze.",
)
flags.DEFINE_float(
    "unfreeze_lr_scale",
    0.1,
    "Schedule phases that train backbone stages use learning_rate times this (unless @lr).",
)
flags.DEFINE_float(
    "discriminative_lr",
    1.0,
    "Each stage below the head learns this factor more slowly than the next (1: off).",
)
flags.DEFINE_string(
    "features_from", None, "Cut the backbone after this stage (e.g. stage3); train a head on it."
)
flags.DEFINE_boolean(
    "new_head", False, "Initialise the classifier afresh even when the source's has the right size."
)
flags.DEFINE_string("classes", None, "Keep only these class indices, e.g. 5-9 or 0,2,4.")
flags.DEFINE_integer("train_examples", None, "Keep only the first N training images.")


def transfer_config_from_flags(values: flags.FlagValues) -> TransferConfig:
    transfer = TransferConfig(
        weights=values.weights,
        init_from=values.init_from,
        freeze=values.freeze or None,
        schedule=values.schedule or None,
        unfreeze_lr_scale=values.unfreeze_lr_scale,
        discriminative_lr=values.discriminative_lr,
        features_from=values.features_from or None,
        new_head=values.new_head,
        classes=subsets.parse_classes(values.classes),
        train_examples=values.train_examples,
    )
    transfer.validate()
    return transfer


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    transfer = transfer_config_from_flags(FLAGS)
    config = cli_flags.train_config_from_flags(FLAGS)
    if not config.run_name:  # never the name of the run it starts from
        config = dataclasses.replace(config, run_name=f"{config.resolved_run_name()}-finetune")
    result = finetune(config, transfer)
    cli_flags.print_summary(result)


if __name__ == "__main__":
    sys.exit(cli_flags.run(main))
