"""absl flags shared by the pipeline scripts, and their translation into configs.

A bad flag value ends the script with one line on stderr that names the problem
and the fix, and exit status 2, before anything is written.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable
from typing import Any

from absl import app, flags

from kimnet.errors import InputError
from kimnet.training.config import OPTIMIZERS, PRECISIONS, SMALL_INPUT, STRATEGIES, TrainConfig

FLAG_ERROR_EXIT = 2
_DEFAULTS = TrainConfig()


def define_train_flags() -> None:
    """Defines the flags of a training run; defaults are :class:`TrainConfig`'s."""
    d = _DEFAULTS
    flags.DEFINE_string("model", d.model, "Registered model name (`make models` lists them).")
    flags.DEFINE_string(
        "dataset",
        d.dataset,
        "TFDS dataset name, folder:/path (a sub-folder per class) or tfrecord:/path (shards).",
    )
    flags.DEFINE_string("data_dir", None, "TFDS data directory (default: ~/tensorflow_datasets).")
    flags.DEFINE_integer("image_size", d.image_size, "Square input size the images are resized to.")
    flags.DEFINE_integer("epochs", d.epochs, "Training epochs.")
    flags.DEFINE_integer("batch_size", d.batch_size, "Global batch size (over all replicas).")
    flags.DEFINE_enum("optimizer", d.optimizer, OPTIMIZERS, "sgd (Nesterov momentum) or adamw.")
    flags.DEFINE_float("learning_rate", d.learning_rate, "Peak learning rate after warm-up.")
    flags.DEFINE_float("momentum", d.momentum, "SGD momentum.")
    flags.DEFINE_float("warmup_epochs", d.warmup_epochs, "Linear warm-up, then cosine decay to 0.")
    flags.DEFINE_float("weight_decay", d.weight_decay, "Decoupled weight decay (not on BN/bias).")
    flags.DEFINE_float("label_smoothing", d.label_smoothing, "Label smoothing of the loss.")
    flags.DEFINE_string(
        "augment",
        d.augment,
        "Comma-separated augmentation ops, e.g. flip_h,crop=4,rotate=15; none.",
    )
    flags.DEFINE_float("dropout", d.dropout, "Dropout rate before the classifier.")
    flags.DEFINE_enum(
        "small_input",
        d.small_input,
        SMALL_INPUT,
        "Use the family's small-input stem; auto: when image_size < 96.",
    )
    flags.DEFINE_multi_string(
        "model_arg", [], "Extra builder argument as key=value (repeatable), e.g. alpha=0.5."
    )
    flags.DEFINE_enum("precision", d.precision, PRECISIONS, "Keras dtype policy.")
    flags.DEFINE_enum("strategy", d.strategy, STRATEGIES, "tf.distribute strategy.")
    flags.DEFINE_integer("seed", d.seed, "Random seed (weights, shuffling, augmentation).")
    flags.DEFINE_string("run_name", None, "Run name (default: <dataset>-<model>).")
    flags.DEFINE_string("workdir", d.workdir, "Where run directories go.")
    flags.DEFINE_string("export_dir", d.export_dir, "Where SavedModels go (<dir>/<run>/<version>).")
    flags.DEFINE_integer("export_version", None, "SavedModel version (default: next free one).")
    flags.DEFINE_boolean("overwrite", d.overwrite, "Replace an existing run directory.")
    flags.DEFINE_integer(
        "bn_recalibration_batches",
        d.bn_recalibration_batches,
        "Batches used to re-estimate batch-norm statistics before each evaluation (0: off).",
    )
    flags.DEFINE_boolean("quick", d.quick, "Shrink the run to a few batches (smoke test).")
    flags.DEFINE_integer("steps_per_epoch", None, "Cap on training steps per epoch.")


def parse_model_args(items: list[str]) -> dict[str, Any]:
    """``["alpha=0.5", "small_input=true"]`` -> ``{"alpha": 0.5, "small_input": True}``."""
    parsed = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"--model_arg '{item}' must look like key=value, e.g. alpha=0.5.")
        lowered = value.lower()
        if lowered in ("true", "false"):
            parsed[key] = lowered == "true"
            continue
        try:
            parsed[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parsed[key] = value
    return parsed


def train_config_from_flags(values: flags.FlagValues) -> TrainConfig:
    """A validated :class:`TrainConfig` from parsed flags."""
    config = TrainConfig(
        **{
            name: values[name].value
            for name in TrainConfig.__dataclass_fields__
            if name != "model_args" and name in values
        },
        model_args=parse_model_args(values.model_arg),
    )
    config.validate()
    return config


def print_summary(result) -> None:
    m = result.metrics
    steady = m.get("steady_images_per_second")
    throughput = f", {steady:.0f} after the first step" if steady else ""
    print(
        f"\nDone: {m['model']} on {m['dataset']}: test top-1 {m['test_top1']:.4f}, "
        f"top-5 {m['test_top5']:.4f} after {m['epochs']} epochs in {m['wall_time_seconds']:.0f} s "
        f"({m['train_images_per_second']:.0f} training images/s{throughput}).\n"
        f"Run directory: {result.run_dir}  (tensorboard --logdir {result.run_dir.parent})\n"
        f"SavedModel:    {result.export_dir}"
    )


def _parse_flags_or_exit(argv: list[str]) -> list[str]:
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        print(f"error: {error}. See --helpfull for the flags.", file=sys.stderr)
        sys.exit(FLAG_ERROR_EXIT)


def run(main: Callable[[list[str]], None]) -> int:
    """``app.run(main)`` where bad input exits with one line on stderr and status 2.

    Bad input is an :class:`~kimnet.errors.InputError`, or a missing or already existing
    file; every other exception is a bug and keeps its traceback (status 1).
    """

    def guarded(argv: list[str]) -> None:
        try:
            main(argv)
        except (InputError, FileExistsError, FileNotFoundError) as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(FLAG_ERROR_EXIT)

    app.run(guarded, flags_parser=_parse_flags_or_exit)
    return 0
