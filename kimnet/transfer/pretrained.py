"""Pretrained sources: ImageNet (Keras Applications), a weights file, or a kimnet run.

Weights are matched to the target model by layer name and shape, one layer at a
time, so a source trained with another class count still provides the whole
backbone and only the classifier is initialised afresh. Every backbone layer
(every stage but the head) must find its weights; otherwise the source does not
fit the architecture and loading fails before any training, with the reason.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from pathlib import Path

import h5py
import keras
import numpy as np

from kimnet.errors import InputError
from kimnet.models import registry
from kimnet.models import weights as weights_lib
from kimnet.models.common import count_params
from kimnet.models.stages import HEAD
from kimnet.models.stages import stages as stage_map

RUN_WEIGHTS = Path("checkpoints") / "last.weights.h5"


@dataclasses.dataclass
class LoadReport:
    """What a source provided: loaded layers and parameters, and what was initialised."""

    source: str
    loaded_layers: int = 0
    loaded_parameters: int = 0
    initialised_layers: list[str] = dataclasses.field(default_factory=list)
    initialised_parameters: int = 0

    def summary(self) -> str:
        fresh = ", ".join(self.initialised_layers) or "none"
        return (
            f"Loaded {self.loaded_layers} layers ({self.loaded_parameters:,} parameters) from "
            f"{self.source}; initialised {len(self.initialised_layers)} layers "
            f"({self.initialised_parameters:,} parameters): {fresh}."
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _is_float(variable: keras.Variable) -> bool:
    return np.issubdtype(np.dtype(keras.backend.standardize_dtype(variable.dtype)), np.floating)


def _file_values(path: Path, model: keras.Model) -> Callable[[str], list[np.ndarray] | None]:
    """Reads a ``.weights.h5`` file into a clone of ``model`` through Keras' own loading.

    Keras matches a file's weights to layers by its own rules, so the clone is filled
    with NaN first and loaded with ``skip_mismatch=True``: a layer still holding NaN
    afterwards had no weights of its shapes in the file.
    """
    try:
        with h5py.File(path, "r") as handle:
            if "layers" not in handle:
                raise InputError(f"'{path}' is not a Keras 3 .weights.h5 file (no 'layers' group).")
    except OSError as error:
        raise InputError(f"'{path}' is not a Keras .weights.h5 file ({error}).") from error
    reader = keras.models.clone_model(model)
    for variable in reader.weights:
        if _is_float(variable):
            variable.assign(np.full(variable.shape, np.nan, dtype="float32"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one warning per skipped layer
        reader.load_weights(str(path), skip_mismatch=True)
    loaded = {
        layer.name: layer.get_weights()
        for layer in reader.layers
        if layer.weights and not any(np.isnan(v).any() for v in layer.get_weights())
    }
    return loaded.get


def _copy(
    model: keras.Model, values_of: Callable, source: str, new_head: bool = False
) -> LoadReport:
    """Copies every layer's weights found by ``values_of(layer name)`` with matching shapes.

    ``new_head``: the head keeps its fresh initialisation even where the source fits it.
    """
    head = {layer.name for layer in stage_map(model)[HEAD]}
    result = weights_lib.copy_matching(values_of, model, skip=head if new_head else ())
    report = LoadReport(source=source)
    sizes = {layer.name: count_params(layer)[0] for layer in model.layers}
    report.loaded_layers = len(result.copied)
    report.loaded_parameters = sum(sizes[name] for name in result.copied)
    report.initialised_layers = list(result.missing)
    report.initialised_parameters = sum(sizes[name] for name in result.missing)
    missing = [f"'{name}' ({why})" for name, why in result.missing.items() if name not in head]
    if missing:
        raise InputError(
            f"{source} does not fit {model.name}: {len(missing)} backbone layers have no "
            f"matching weights, e.g. {'; '.join(missing[:3])}. It was saved from another "
            f"architecture or other model arguments (--model, --model_arg)."
        )
    if report.loaded_layers == 0:
        raise InputError(f"{source} provided no weights for {model.name}.")
    return report


def load_file(
    model: keras.Model, path: str | Path, source: str | None = None, *, new_head: bool = False
) -> LoadReport:
    """Loads a ``.weights.h5`` file; the head is initialised if it differs (or ``new_head``)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"Weights file '{path}' does not exist.")
    return _copy(model, _file_values(path, model), source or f"'{path}'", new_head)


def load_run(model: keras.Model, run_dir: str | Path, *, new_head: bool = False) -> LoadReport:
    """Loads the final weights of the kimnet run ``run_dir`` (checked by
    :func:`kimnet.transfer.finetune.source_run`)."""
    return load_file(
        model, Path(run_dir).expanduser() / RUN_WEIGHTS, f"run '{run_dir}'", new_head=new_head
    )


def load_imagenet(
    model: keras.Model, spec: registry.ModelSpec, build_reference: Callable[[], keras.Model]
) -> LoadReport:
    """Copies Keras Applications' ImageNet weights (through ``build_reference``) by name."""
    if not spec.imagenet:
        with_weights = [n for n in registry.names() if registry.get(n).imagenet]
        raise InputError(
            f"No ImageNet weights are published for {spec.name}. Models that have them: "
            f"{', '.join(with_weights)}."
        )
    try:
        reference = build_reference()
    except ValueError:
        raise
    except Exception as error:  # download or cache failures, of many kinds
        raise InputError(
            f"Could not get the ImageNet weights of {spec.name} ({error}). They are downloaded "
            f"by Keras Applications into ~/.keras/models on first use."
        ) from error
    values_of = weights_lib.values_by_name(reference)
    return _copy(model, values_of, f"ImageNet weights of {spec.name}", new_head=True)
