"""``kimnet evaluate MODEL [--dataset=NAME] [--split=test] [--out=DIR]``: a report folder.

MODEL is a SavedModel version folder (or a model folder: its newest version), a run
directory (``runs/<name>``: its ``config.json`` and ``checkpoints/last.weights.h5``),
or a ``.weights.h5`` file with ``--model=NAME`` (``--model_args``, ``--image_size``).
The dataset is any :func:`kimnet.data.load` source; a run directory defaults to its
own (with its class subset), the others to Fashion-MNIST. The report folder
(:mod:`kimnet.evaluation`) defaults to ``<run>/report-<split>`` or
``reports/<model>-<version>-<split>``. Bad input is one line and exit status 2,
before anything is written.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ml_collections
from absl import flags

from kimnet import cli_flags, experiment
from kimnet.errors import InputError

if TYPE_CHECKING:
    import numpy as np
    import tensorflow as tf

    from kimnet.data import DatasetInfo, Splits
    from kimnet.evaluation import Predict

    # What a model needs to be evaluated: its predictor, its batches, the function that
    # turns a batch's images back into pixels, and the model's name.
    Inputs = tuple[Predict, tf.data.Dataset, Callable[[np.ndarray], np.ndarray], str]

SPLITS = ("test", "validation", "train")
REPORTS = Path("reports")
WEIGHTS_SUFFIX = ".weights.h5"

_DATASET = flags.DEFINE_string(
    "dataset", None, "TFDS name, folder:/path or tfrecord:/path (default: the run's own)."
)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory.")
_SPLIT = flags.DEFINE_string("split", "test", f"One of {', '.join(SPLITS)}.")
_OUT = flags.DEFINE_string("out", None, "Report folder (default: see the module help).")
_MODEL = flags.DEFINE_string("model", None, "Registered model name, for a .weights.h5 file.")
_MODEL_ARGS = flags.DEFINE_string("model_args", "", "Builder arguments of a .weights.h5 file.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", None, "Input size of a .weights.h5 file.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 128, "Images per batch.", lower_bound=1)
_MAX_BATCHES = flags.DEFINE_integer(
    "max_batches", None, "Evaluate at most this many batches.", lower_bound=1
)
_KEEP = flags.DEFINE_integer("mistakes", 16, "Highest-loss images shown.", lower_bound=0)


@dataclasses.dataclass
class Source:
    """What to evaluate: ``kind`` is ``savedmodel``, ``run`` or ``weights``."""

    kind: str
    path: Path
    label: str  # names the default report folder
    config: ml_collections.ConfigDict | None = None  # run and weights: the model's experiment


def find_source(text: str) -> Source:
    """The SavedModel, run directory or weights file ``text`` names, or an InputError."""
    path = Path(text).expanduser()
    if not path.exists():
        raise InputError(
            f"'{text}' does not exist; give a SavedModel, a run directory or a "
            f"{WEIGHTS_SUFFIX} file."
        )
    if path.is_dir() and (path / experiment.CONFIG_FILE).is_file():
        return _run_source(path)
    if path.is_dir() and not (path / "saved_model.pb").is_file():
        path = _newest_version(path)
    if path.is_dir() and (path / "saved_model.pb").is_file():
        return Source("savedmodel", path, f"{path.parent.name}-{path.name}")
    if path.is_file() and path.name.endswith(WEIGHTS_SUFFIX):
        return _weights_source(path)
    raise InputError(
        f"'{text}' is neither a SavedModel (no saved_model.pb), a run directory (no "
        f"{experiment.CONFIG_FILE}) nor a {WEIGHTS_SUFFIX} file."
    )


def _newest_version(model_dir: Path) -> Path:
    """A model folder's newest integer version folder, or ``model_dir`` itself."""
    numbers = [int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()]
    return model_dir / str(max(numbers)) if numbers else model_dir


def _run_source(run_dir: Path) -> Source:
    from kimnet.transfer.pretrained import RUN_WEIGHTS

    if not (run_dir / RUN_WEIGHTS).is_file():
        raise InputError(f"Run '{run_dir}' has no {RUN_WEIGHTS}; it did not finish training.")
    config = experiment.load(str(run_dir))
    # The trained weights replace whatever the run started from: load no source again.
    config = experiment.with_overrides(
        config, {"transfer.init_from": None, "transfer.weights": None}
    )
    if _DATASET.value:
        config = experiment.with_overrides(
            config, {"data.name": _DATASET.value, "data.data_dir": _DATA_DIR.value}
        )
    return Source("run", run_dir, run_dir.name, config)


def _weights_source(path: Path) -> Source:
    if not _MODEL.value:
        raise InputError(
            f"'{path}' holds weights only; say which model they belong to with --model=NAME "
            f"(kimnet models lists them)."
        )
    data = {"name": _DATASET.value or experiment.SCHEMA["data"]["name"].default}
    if _DATA_DIR.value:
        data["data_dir"] = _DATA_DIR.value
    if _IMAGE_SIZE.value:
        data["image_size"] = _IMAGE_SIZE.value
    config = experiment.validate(
        {"data": data, "model": {"name": _MODEL.value, "args": _MODEL_ARGS.value}}
    )
    return Source("weights", path, path.name.removesuffix(WEIGHTS_SUFFIX), config)


def load_data(source: Source) -> Splits:
    """The dataset's raw splits: a run's own subset of classes and sizes, or all of it."""
    from kimnet import data
    from kimnet.training import loop

    if source.kind == "run":
        return loop.load_data(source.config, None)
    if source.config is not None:  # a weights file: --dataset or the default
        return data.load(source.config.data.name, data_dir=source.config.data.data_dir)
    name = _DATASET.value or experiment.SCHEMA["data"]["name"].default
    return data.load(name, data_dir=_DATA_DIR.value)


def check_classes(expected: list[str] | None, info: DatasetInfo, what: str) -> None:
    """Refuses a dataset whose class count differs from the model's; notes other names."""
    if expected is None:
        return
    if len(expected) != info.num_classes:
        raise InputError(
            f"{what} classifies {len(expected)} classes, but dataset '{info.name}' has "
            f"{info.num_classes}; evaluate it on a dataset with its classes."
        )
    if list(expected) != list(info.class_names):
        print(
            f"Note: {what} was trained on classes named {', '.join(expected[:3])}, ...; the "
            f"report uses the dataset's names ({', '.join(info.class_names[:3])}, ...).",
            flush=True,
        )


def _run_class_names(run_dir: Path) -> list[str] | None:
    metrics = run_dir / "metrics.json"
    if not metrics.is_file():
        return None
    return json.loads(metrics.read_text()).get("class_names")


def keras_inputs(source: Source, splits: Splits, split: str) -> Inputs:
    """A run's or weights file's model with its weights, and its normalised batches."""
    from kimnet import evaluation, models
    from kimnet.training import loop
    from kimnet.transfer.pretrained import RUN_WEIGHTS

    config, info = source.config, splits.info
    if source.kind == "run":
        check_classes(_run_class_names(source.path), info, f"Run '{source.path}'")
    model, _ = loop.build_model(config, info)
    weights = source.path / RUN_WEIGHTS if source.kind == "run" else source.path
    _load_weights(model, weights, config, info.num_classes)
    normalization = models.get(config.model.name).normalization
    batches = _pipeline(splits, split, config.data.image_size, normalization)
    to_pixels = lambda images: evaluation.denormalize(images, normalization)  # noqa: E731
    return evaluation.model_predictor(model), batches, to_pixels, config.model.name


def _load_weights(model, weights: Path, config: ml_collections.ConfigDict, classes: int) -> None:
    """``model.load_weights``, with weights that do not fit as one InputError."""
    try:
        with warnings.catch_warnings():  # Keras warns once per layer before it raises
            warnings.simplefilter("ignore")
            model.load_weights(str(weights))
    except ValueError:
        raise InputError(
            f"'{weights}' does not fit {config.model.name} (model args "
            f"'{config.model.args}') for {classes} classes at {config.data.image_size} px; "
            f"check --model, --model_args and --image_size."
        ) from None


def savedmodel_inputs(source: Source, splits: Splits, split: str) -> Inputs:
    """A SavedModel's predictor and [0, 255] batches at its input size."""
    import numpy as np

    from kimnet import export

    classifier = export.load(source.path)
    check_classes(classifier.class_names, splits.info, f"SavedModel '{source.path}'")
    size = int(classifier.metadata.get("image_size", 224))

    def predict(images) -> np.ndarray:
        pixels = np.clip(np.round(np.asarray(images)), 0, 255).astype(np.uint8)
        return classifier.predict(pixels)["probabilities"]

    model = classifier.metadata.get("model", source.path.parent.name)
    return predict, _pipeline(splits, split, size, "raw"), np.asarray, model


def _pipeline(splits: Splits, split: str, image_size: int, normalization: str) -> tf.data.Dataset:
    from kimnet import data

    pipelines = data.make(
        splits, image_size=image_size, batch_size=_BATCH_SIZE.value, normalization=normalization
    )
    batches = pipelines["train_plain" if split == "train" else split]
    return batches.take(_MAX_BATCHES.value) if _MAX_BATCHES.value else batches


def default_out(source: Source, split: str) -> Path:
    if source.kind == "run":
        return source.path / f"report-{split}"
    return REPORTS / f"{source.label}-{split}"


def evaluate(path: str, split: str) -> dict[str, Any]:
    """Checks everything, evaluates ``path`` on ``split`` and writes the report folder."""
    from kimnet import evaluation

    if split not in SPLITS:
        raise InputError(f"--split={split!r}: expected one of {', '.join(SPLITS)}.")
    source = find_source(path)
    splits = load_data(source)
    inputs = savedmodel_inputs if source.kind == "savedmodel" else keras_inputs
    predict, batches, to_pixels, model_name = inputs(source, splits, split)
    result = evaluation.collect(
        batches, predict, splits.info.class_names, to_pixels=to_pixels, keep=_KEEP.value
    )
    out = Path(_OUT.value) if _OUT.value else default_out(source, split)
    metadata = {"model": model_name, "dataset": splits.info.name, "split": split, "source": path}
    report = evaluation.write_report(result, out, metadata)
    print(
        f"{model_name} on {splits.info.name} ({split}, {report['images']} images): top-1 "
        f"{report['top1']:.4f}, top-{report['top_k']} {report['top5']:.4f}.\n"
        f"Report: {out / evaluation.REPORT_MD}"
    )
    return report


def _main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise InputError(
            "Give one model to evaluate: kimnet evaluate (SAVEDMODEL | runs/NAME | "
            f"FILE{WEIGHTS_SUFFIX} --model=NAME) [--dataset=NAME] [--split=test]."
        )
    evaluate(argv[1], _SPLIT.value)


def main(argv: list[str] | None = None) -> int:
    flags.FLAGS.unparse_flags()  # a second call in one process starts from the defaults
    return cli_flags.run(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
