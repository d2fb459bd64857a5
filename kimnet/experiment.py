"""The experiment config: the one description of a run, declared once in :data:`SCHEMA`.

An experiment is an ``ml_collections.ConfigDict`` with the sections of
:data:`SCHEMA` (``data``, ``augment``, ``model``, ``optim``, ``schedule``,
``evaluate``, ``transfer``, ``export``, ``runtime``). Experiment files in
``configs/`` return one from ``get_config(arg)``; any field can be overridden on
the command line by its dotted path (``--config.optim.learning_rate=0.01``).
:func:`validate` refuses an unknown key or a bad value with one line that names
the dotted path, the value and what would be valid, before anything is built.

A run writes its resolved config to ``runs/<name>/config.json``; :func:`load`
reads that file back as the same experiment.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import json
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import ml_collections
from ml_collections import config_dict

from kimnet.errors import InputError

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("default", "mirrored", "multi_worker")
OPTIMIZERS = ("adamw", "sgd")
SMALL_INPUT = ("auto", "true", "false")
JIT_COMPILE = ("auto", "true", "false")
# Below this image size `model.small_input=auto` switches on a family's small-input stem.
SMALL_INPUT_BELOW = 96
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
CONFIG_FILE = "config.json"


@dataclasses.dataclass(frozen=True)
class Field:
    """One setting: its default, its type, what it means and which values are valid.

    ``check(value)`` returns ``None`` for a valid value, otherwise what a valid one
    looks like (e.g. ``"a positive number"``); ``None`` values are always valid for
    fields whose default is ``None`` (optional settings).
    """

    default: Any
    help: str
    type: type | None = None
    check: Callable[[Any], str | None] | None = None

    @property
    def value_type(self) -> type:
        return self.type or type(self.default)


def _between(low: float, high: float, *, high_open: bool = False) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        ok = low <= value < high if high_open else low <= value <= high
        return None if ok else f"a number in [{low:g}, {high:g}{')' if high_open else ']'}"

    return check


def _at_least(low: float) -> Callable[[Any], str | None]:
    return lambda value: None if value >= low else f"a number >= {low:g}"


def _positive(value: Any) -> str | None:
    return None if value > 0 else "a positive number"


def _one_of(*choices: str) -> Callable[[Any], str | None]:
    return lambda value: None if value in choices else f"one of {', '.join(choices)}"


# The profiler holds every event in memory until it stops (about 1.5 MB per MobileNetV2
# step written out): a few steps tell where time goes, a whole epoch could exhaust memory.
MAX_PROFILED_STEPS = 50


def _step_range(value: Any) -> str | None:
    first, _, last = value.partition(",")
    ok = first.isdigit() and last.isdigit() and 0 < int(first) <= int(last)
    ok = ok and int(last) - int(first) < MAX_PROFILED_STEPS
    return (
        None
        if ok
        else "two step numbers FIRST,LAST with 0 < FIRST <= LAST, "
        f"at most {MAX_PROFILED_STEPS} steps apart, e.g. 10,15"
    )


def _run_name(value: Any) -> str | None:
    ok = _RUN_NAME.match(value) is not None
    return None if ok else "letters, digits, '.', '_' and '-' only, not starting with '.'"


SCHEMA: dict[str, dict[str, Field]] = {
    "data": {
        "name": Field(
            "fashion_mnist",
            "TFDS dataset name, folder:/path (a sub-folder per class) or tfrecord:/path (shards).",
        ),
        "data_dir": Field(None, "TFDS data directory (default ~/tensorflow_datasets).", str),
        "image_size": Field(
            32, "Square input size the images are resized to.", None, _between(8, 1024)
        ),
        "batch_size": Field(128, "Global batch size over all replicas.", None, _at_least(1)),
        "classes": Field(None, "Keep only these class indices, e.g. 5-9 or 0,2,4.", str),
        "train_examples": Field(None, "Keep only the first N training images.", int, _at_least(1)),
        "validation_examples": Field(
            None, "Keep only the first N validation images.", int, _at_least(1)
        ),
        "test_examples": Field(None, "Keep only the first N test images.", int, _at_least(1)),
        "skip_bad_images": Field(
            False,
            "Train without the images of a folder that cannot be "
            "decoded (counted and listed) instead of stopping.",
        ),
    },
    "augment": {
        "ops": Field(
            "flip_h,crop",
            "Augmentation ops in order, e.g. flip_h,crop=4,randaugment=2:9,mixup=0.2; none.",
        ),
    },
    "model": {
        "name": Field("mobilenetv2", "Registered model (kimnet models lists them)."),
        "args": Field("", "Extra builder arguments, e.g. alpha=0.35 or alpha=0.5,se_ratio=0.25."),
        "dropout": Field(
            0.0, "Dropout rate before the classifier.", None, _between(0, 1, high_open=True)
        ),
        "small_input": Field(
            "auto", "The family's small-input stem; auto: below 96 px.", None, _one_of(*SMALL_INPUT)
        ),
    },
    "optim": {
        "name": Field("adamw", "adamw, or sgd with Nesterov momentum.", None, _one_of(*OPTIMIZERS)),
        "learning_rate": Field(2e-3, "Peak learning rate after warm-up.", None, _positive),
        "momentum": Field(0.9, "SGD momentum.", None, _between(0, 1, high_open=True)),
        "weight_decay": Field(
            5e-4, "Decoupled weight decay (not on batch norm or biases).", None, _at_least(0)
        ),
        "label_smoothing": Field(
            0.1, "Label smoothing of the loss.", None, _between(0, 1, high_open=True)
        ),
    },
    "schedule": {
        "epochs": Field(3, "Training epochs (a transfer schedule sets them).", None, _at_least(1)),
        "warmup_epochs": Field(0.5, "Linear warm-up, then cosine decay to 0.", None, _at_least(0)),
        "steps_per_epoch": Field(None, "Cap on training steps per epoch.", int, _at_least(1)),
    },
    "evaluate": {
        "bn_recalibration_batches": Field(
            20,
            "Batches that re-estimate batch-norm statistics before each evaluation (0: off).",
            None,
            _at_least(0),
        ),
        "max_batches": Field(
            None, "Evaluate on at most this many validation/test batches.", int, _at_least(1)
        ),
        "test_every_epoch": Field(
            False,
            "Also test after every epoch: test_top1, test_top5 and elapsed_seconds in "
            "history.csv and TensorBoard, accuracy against time (one test pass per epoch; "
            "checkpoints are still chosen on validation).",
        ),
    },
    "transfer": {
        "init_from": Field(None, "A kimnet run directory (runs/<name>) to start from.", str),
        "weights": Field(None, "Pretrained weights: imagenet or a .weights.h5 file.", str),
        "freeze": Field(None, "What does not train: none, backbone, stages:K or bn.", str),
        "schedule": Field(
            None, "Gradual unfreezing, e.g. head:3,stage4:2,all:4 (sets the epochs).", str
        ),
        "unfreeze_lr_scale": Field(
            0.1, "Learning-rate factor of phases that train backbone stages.", None, _positive
        ),
        "discriminative_lr": Field(
            1.0,
            "Each stage below the head learns this factor more slowly (1: off).",
            None,
            _between(0, 1),
        ),
        "features_from": Field(
            None, "Cut the backbone after this stage and train a head on it.", str
        ),
        "new_head": Field(False, "A new classifier even when the source's has the right size."),
    },
    "export": {
        "enabled": Field(True, "Export a SavedModel at the end."),
        "dir": Field("savedmodels", "SavedModels go to <dir>/<run name>/<version>/."),
        "version": Field(
            None, "SavedModel version (default: the next free one).", int, _at_least(1)
        ),
    },
    "runtime": {
        "precision": Field(
            "auto",
            "Keras dtype policy; auto: mixed_float16 on GPUs of compute capability 7.0+, "
            "mixed_bfloat16 on TPUs and AMX CPUs, float32 otherwise (the choice is logged).",
            None,
            _one_of(*PRECISIONS),
        ),
        "jit_compile": Field(
            "auto",
            "XLA for the train and evaluation steps; auto: Keras' choice (XLA on GPUs and "
            "TPUs without tf.distribute, not on CPUs). On 2 CPU cores XLA trained AlexNet, "
            "ResNet-18, SE-ResNeXt-50 and DenseNet-121 faster, the others slower "
            "(make bench-jit).",
            None,
            _one_of(*JIT_COMPILE),
        ),
        "strategy": Field(
            "default",
            "tf.distribute strategy; mirrored: all local GPUs; multi_worker: the workers of "
            "TF_CONFIG (make train-multiworker WORKERS=N).",
            None,
            _one_of(*STRATEGIES),
        ),
        "seed": Field(0, "Seed of weights, shuffling and augmentation."),
        "workdir": Field("runs", "Run directories go to <workdir>/<run name>/."),
        "run_name": Field(None, "Run name (default <dataset>-<model>).", str, _run_name),
        "overwrite": Field(False, "Replace an existing run directory (exports are kept)."),
        "progress": Field(
            "auto",
            "auto: a live bar on a terminal, one line per epoch otherwise; bar, epoch or silent.",
            None,
            _one_of("auto", "bar", "epoch", "silent"),
        ),
        "tensorboard_every": Field(
            0,
            "Also write TensorBoard scalars every N steps (0: per epoch only).",
            None,
            _at_least(0),
        ),
        "profile_steps": Field(
            None,
            "Profile training steps FIRST,LAST (counted from the start of training, of each "
            "transfer phase, or of a resume) into the TensorBoard logs, for TensorBoard's "
            "Profile tab (pip install tensorboard-plugin-profile).",
            str,
            _step_range,
        ),
    },
}


def fields() -> Iterator[tuple[str, Field]]:
    """``("section.name", Field)`` for every setting, in schema order."""
    for section, entries in SCHEMA.items():
        for name, field in entries.items():
            yield f"{section}.{name}", field


def base() -> ml_collections.ConfigDict:
    """The default experiment: every field of :data:`SCHEMA` at its default."""
    config = ml_collections.ConfigDict()
    for section, entries in SCHEMA.items():
        config[section] = ml_collections.ConfigDict(
            {
                name: config_dict.placeholder(field.value_type)
                if field.default is None
                else field.default
                for name, field in entries.items()
            }
        )
    return config


def _bad_key(path: str) -> InputError:
    known = [name for name, _ in fields()]
    near = difflib.get_close_matches(path, known, n=1, cutoff=0.6)
    hint = f" Did you mean '{near[0]}'?" if near else ""
    sections = ", ".join(SCHEMA)
    return InputError(f"Unknown config key '{path}'.{hint} Sections: {sections}.")


def check_key(path: str) -> None:
    """Raises ``InputError`` (with the nearest valid key) unless ``path`` is a setting."""
    if path not in dict(fields()):
        raise _bad_key(path)


def _typed(path: str, field: Field, value: Any) -> Any:
    """``value`` as the field's type (ints widen to floats), or an InputError."""
    want = field.value_type
    if value is None:
        if field.default is None:
            return None
    elif want is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    elif isinstance(value, want) and not (want is int and isinstance(value, bool)):
        return value
    raise InputError(f"config.{path}={value!r}: expected {want.__name__}, got {value!r}.")


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            yield from flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def validate(config: Mapping[str, Any]) -> ml_collections.ConfigDict:
    """A checked copy of ``config``: each field typed and in range, the fields consistent.

    Raises ``InputError`` naming the first bad dotted path, its value and the valid
    choices. Missing fields take their defaults.
    """
    values = dict(flatten(config.to_dict() if hasattr(config, "to_dict") else config))
    schema = dict(fields())
    for path in values:
        if path not in schema:
            raise _bad_key(path)
    checked = base()
    for path, field in schema.items():
        value = _typed(path, field, values.get(path, field.default))
        if value is not None and field.check is not None:
            problem = field.check(value)
            if problem:
                raise InputError(f"config.{path}={value!r} is not valid: expected {problem}.")
        section, name = path.split(".")
        checked[section][name] = value
    _check_together(checked)
    return checked


def _check_together(config: ml_collections.ConfigDict) -> None:
    """Checks that involve several fields or other modules (models, augmentation)."""
    from kimnet.data import augment
    from kimnet.models import registry

    spec = _known(lambda: registry.get(config.model.name), "model.name", config.model.name)
    config.model.name = spec.name  # the registry's spelling, also in run names
    _known(lambda: augment.parse(config.augment.ops), "augment.ops", config.augment.ops)
    args = _known(lambda: model_args(config), "model.args", config.model.args)
    _check_builder_arguments(spec, args, config.model.args)
    t = config.transfer
    if t.weights and t.init_from:
        raise InputError(
            "config.transfer.weights and config.transfer.init_from are both set; a run starts "
            "from one source."
        )
    if t.freeze and t.schedule:
        raise InputError(
            "config.transfer.freeze and config.transfer.schedule are both set; a schedule says "
            "what trains in each of its phases."
        )
    size, minimum = config.data.image_size, spec.min_size
    if size < minimum and not uses_small_input(config):
        raise InputError(
            f"config.data.image_size={size} is below {spec.name}'s minimum of {minimum}; "
            f"raise it or set config.model.small_input=true."
        )
    problem = _run_name(run_name(config))
    if problem:
        raise InputError(
            f"Run name '{run_name(config)}' must use {problem}; set config.runtime.run_name."
        )


# Builder arguments a run sets itself (from other fields), so model.args may not.
_SET_BY_THE_RUN = (
    "include_top",
    "weights",
    "input_tensor",
    "input_shape",
    "pooling",
    "classes",
    "classifier_activation",
    "dropout_rate",
    "name",
)


def _check_builder_arguments(spec: Any, args: dict[str, Any], text: str) -> None:
    """Refuses ``model.args`` the model's builder does not take, listing those it does."""
    import inspect

    takes = [
        name
        for name in inspect.signature(spec.build_function()).parameters
        if name not in _SET_BY_THE_RUN and name not in spec.fixed_kwargs
    ]
    for key in args:
        if key not in takes:
            raise InputError(
                f"config.model.args={text!r}: {spec.name} takes no argument '{key}' here. "
                f"Its arguments: {', '.join(takes)}."
            )


def _known(call: Callable[[], Any], path: str, value: Any) -> Any:
    """``call()``, with an InputError from it prefixed by the dotted path it concerns."""
    try:
        return call()
    except InputError as error:
        raise InputError(f"config.{path}={value!r}: {error}") from None


def model_args(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """``model.args`` ``"alpha=0.5,small_input=true"`` -> ``{"alpha": 0.5, ...}``."""
    import ast

    parsed: dict[str, Any] = {}
    # Split on commas outside brackets, so list values such as k=[1,2] stay whole.
    for item in re.split(r",(?![^\[(]*[\])])", config.model.args or ""):
        if not item.strip():
            continue
        key, sep, value = item.strip().partition("=")
        if not sep or not key.isidentifier():
            raise InputError(f"'{item}' must look like key=value, e.g. alpha=0.5.")
        if value.lower() in ("true", "false"):
            parsed[key] = value.lower() == "true"
            continue
        try:
            parsed[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parsed[key] = value
    return parsed


def uses_small_input(config: ml_collections.ConfigDict) -> bool:
    if config.model.small_input == "auto":
        return config.data.image_size < SMALL_INPUT_BELOW
    return config.model.small_input == "true"


def run_name(config: ml_collections.ConfigDict) -> str:
    """``runtime.run_name``, or ``<dataset>-<model>`` (``-finetune`` with a source)."""
    if config.runtime.run_name:
        return config.runtime.run_name
    dataset = config.data.name
    short = {"fashion_mnist": "fmnist"}.get(dataset)
    if short is None:
        short = re.sub(r"[^A-Za-z0-9._-]+", "-", dataset.rstrip("/").split("/")[-1]).strip("-.")
    name = f"{short}-{config.model.name}"
    if config.transfer.init_from or config.transfer.weights:
        name += "-finetune"
    return name


def override(config: ml_collections.ConfigDict, changes: Mapping[str, Any]) -> None:
    """Sets ``{"section.name": value}`` changes on ``config``, refusing unknown keys."""
    for path, value in changes.items():
        check_key(path)
        section, name = path.split(".")
        config[section][name] = value


def with_overrides(
    config: ml_collections.ConfigDict, changes: Mapping[str, Any]
) -> ml_collections.ConfigDict:
    """A validated copy of ``config`` with ``changes`` (dotted path -> value) applied."""
    copy = ml_collections.ConfigDict(config.to_dict())
    override(copy, changes)
    return validate(copy)


def to_json(config: ml_collections.ConfigDict) -> str:
    return json.dumps(config.to_dict(), indent=2) + "\n"


def load(spec: str) -> ml_collections.ConfigDict:
    """An experiment from ``file.py`` / ``file.py:arg`` (``get_config(arg)``), a
    ``config.json`` a run wrote, or a run directory holding one; validated."""
    path_text, _, arg = spec.partition(":")
    path = Path(path_text).expanduser()
    if path.is_dir() and (path / CONFIG_FILE).is_file():
        path = path / CONFIG_FILE
    if not path.is_file():
        raise missing_config(path_text)
    if path.suffix == ".json":
        try:
            values = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise InputError(f"Config file '{path}' is not valid JSON: {error}.") from None
        return validate(values)
    return validate(_call_get_config(path, arg or None))


def missing_config(path_text: str) -> InputError:
    """The error for a config file that does not exist, naming the config files next to
    it (``make train RECIPE=typo`` then lists the recipes)."""
    folder = Path(path_text).expanduser().parent
    known = sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))
    hint = f" Known in {folder}/: {', '.join(known)}." if known else ""
    return InputError(f"Config file '{path_text}' does not exist.{hint}")


def _call_get_config(path: Path, arg: str | None) -> Any:
    module_spec = importlib.util.spec_from_file_location(f"kimnet_config_{path.stem}", path)
    if module_spec is None or path.suffix != ".py":
        raise InputError(f"Config file '{path}' must be a .py file or a run's config.json.")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise InputError(f"Config file '{path}' does not define get_config(arg=None).")
    return module.get_config(arg) if arg is not None else module.get_config()


# The `:quick` variant of every experiment: the same run, shrunk to a smoke test.
QUICK = {"schedule.steps_per_epoch": 20, "evaluate.max_batches": 5}
VARIANTS = ("quick",)


def variant(config: ml_collections.ConfigDict, arg: str | None) -> ml_collections.ConfigDict:
    """``config`` as it is (no ``arg``), or shrunk by the ``quick`` variant."""
    if not arg:
        return config
    if arg != "quick":
        raise InputError(f"Unknown config variant ':{arg}'. Known: {', '.join(VARIANTS)}.")
    shrunk = {path: value for path, value in QUICK.items()}
    steps = config.schedule.steps_per_epoch
    if steps:  # never lengthen an experiment that is already short
        shrunk["schedule.steps_per_epoch"] = min(steps, QUICK["schedule.steps_per_epoch"])
    override(config, shrunk)
    return config


def markdown_reference() -> str:
    """docs/config.md: each field, its default and meaning (``python -m kimnet.experiment``)."""
    lines = [
        "# Experiment config reference",
        "",
        "Every field of an experiment, by section. Override any of them on the command line by",
        "its dotted path (`--config.optim.learning_rate=0.01`); `-` means unset. Generated from",
        "`kimnet.experiment.SCHEMA` by `python -m kimnet.experiment > docs/config.md`.",
    ]
    for section, entries in SCHEMA.items():
        lines += ["", f"## {section}", "", "| field | default | meaning |", "| --- | --- | --- |"]
        for name, field in entries.items():
            default = "-" if field.default is None else f"`{field.default!r}`"
            lines.append(f"| `{section}.{name}` | {default} | {field.help} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown_reference(), end="")
