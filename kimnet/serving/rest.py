"""TF Serving's REST predict format: JSON requests to numpy inputs, outputs back to JSON.

Row format: ``{"signature_name": ..., "instances": [instance, ...]}``; an instance is
the value of the signature's only input, or an object keyed by input name.
Columnar format: ``{"inputs": value}`` (the only input, batch included) or
``{"inputs": {name: value, ...}}``. Binary strings travel as ``{"b64": "..."}``.
Responses: ``{"predictions": [...]}`` (row; one object per instance when there are
several outputs) or ``{"outputs": value | {name: value}}`` (columnar).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import numpy as np

from kimnet.serving.models import ServingError, Signature, TensorSpec


def parse_json(body: bytes) -> dict:
    """The request object, or a 400 ``ServingError`` for malformed JSON."""
    try:
        request = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ServingError(f"JSON Parse error: {error}") from None
    except RecursionError:
        raise ServingError("JSON Parse error: nested too deeply") from None
    if not isinstance(request, dict):
        raise ServingError("JSON Value: request body must be a JSON object.")
    return request


def signature_name(request: dict) -> str:
    name = request.get("signature_name", "serving_default")
    if not isinstance(name, str):
        raise ServingError("'signature_name' must be a string.")
    return name or "serving_default"


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and "b64" in value


def _decode_b64(value: dict) -> bytes:
    data = value["b64"]
    if not isinstance(data, str):
        raise ServingError("'b64' value must be a string.")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ServingError("Unable to base64 decode a 'b64' value.") from None


def _string_tensor(value: Any, name: str) -> np.ndarray:
    """Nested lists of strings / ``{"b64": ...}`` -> a rectangular object array of bytes."""

    def shape_of(item: Any) -> tuple[int, ...]:
        if isinstance(item, list):
            if not item:
                return (0,)
            inner = {shape_of(x) for x in item}
            if len(inner) != 1:
                raise ServingError(
                    f"Input '{name}': ragged list, all elements must have one shape."
                )
            return (len(item), *inner.pop())
        if isinstance(item, str) or _is_b64(item):
            return ()
        raise ServingError(
            f"Input '{name}' is DT_STRING: expected strings or {{\"b64\": ...}} objects, "
            f"got {type(item).__name__}."
        )

    def convert(item: Any) -> Any:
        if isinstance(item, list):
            return [convert(x) for x in item]
        if isinstance(item, str):
            return item.encode("utf-8")
        return _decode_b64(item)

    shape = shape_of(value)
    array = np.array(convert(value), dtype=object)
    if array.shape != shape:  # cannot happen for checked input; guards numpy's inference
        raise ServingError(f"Input '{name}': could not build a {list(shape)} string tensor.")
    return array


def _numeric_tensor(value: Any, spec: TensorSpec, name: str) -> np.ndarray:
    dtype = spec.dtype.as_numpy_dtype
    if _contains_dict(value):
        raise ServingError(
            f"Input '{name}' is {_dt(spec)}: {{\"b64\": ...}} values are only accepted for "
            f"DT_STRING inputs."
        )
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):
        raise ServingError(
            f"Input '{name}': ragged list, all elements must have one shape."
        ) from None
    if array.dtype == object:
        raise ServingError(f"Input '{name}': ragged list or mixed value types.")
    kind = np.dtype(dtype).kind
    if array.size == 0:
        return array.astype(dtype)
    if array.dtype.kind in "US":
        raise ServingError(f"Input '{name}' is {_dt(spec)}: got strings.")
    if kind in "iu":
        if array.dtype.kind not in "iu":
            raise ServingError(
                f"Input '{name}' is {_dt(spec)}: expected integers, got "
                f"{'booleans' if array.dtype.kind == 'b' else 'non-integer numbers'}."
            )
        info = np.iinfo(dtype)
        if array.min() < info.min or array.max() > info.max:
            raise ServingError(
                f"Input '{name}' is {_dt(spec)}: values must lie in [{info.min}, {info.max}]."
            )
    elif kind in "fc":
        if array.dtype.kind not in "iuf":
            raise ServingError(f"Input '{name}' is {_dt(spec)}: expected numbers.")
    elif kind == "b" and array.dtype.kind != "b":
        raise ServingError(f"Input '{name}' is DT_BOOL: expected true/false.")
    return array.astype(dtype)


def _contains_dict(value: Any) -> bool:
    if isinstance(value, dict):
        return True
    if isinstance(value, list) and value:
        return _contains_dict(value[0]) or any(isinstance(x, dict) for x in value)
    return False


def _dt(spec: TensorSpec) -> str:
    return "DT_" + spec.dtype.name.upper()


def _tensor(value: Any, spec: TensorSpec, name: str) -> np.ndarray:
    if spec.dtype.name == "string":
        array = _string_tensor(value, name)
    else:
        array = _numeric_tensor(value, spec, name)
    if spec.shape is not None:
        expected = "[" + ",".join("-1" if d is None else str(d) for d in spec.shape) + "]"
        if array.ndim != len(spec.shape):
            raise ServingError(
                f"Input '{name}' has rank {array.ndim} (shape {list(array.shape)}), the signature "
                f"expects rank {len(spec.shape)} {expected} (batch dimension included)."
            )
        for got, want in zip(array.shape, spec.shape, strict=True):
            if want is not None and got != want:
                raise ServingError(
                    f"Input '{name}' has shape {list(array.shape)}, the signature expects "
                    f"{expected}."
                )
    return array


def parse_inputs(request: dict, signature: Signature) -> tuple[dict[str, np.ndarray], int, bool]:
    """Converts a predict request to ``(inputs, batch size, row format?)``."""
    has_rows, has_columns = "instances" in request, "inputs" in request
    if has_rows == has_columns:
        raise ServingError(
            "Missing 'instances' or 'inputs' key"
            if not has_rows
            else "Only one of 'instances' or 'inputs' may be present in the request."
        )
    names = sorted(signature.inputs)
    if has_rows:
        instances = request["instances"]
        if not isinstance(instances, list) or not instances:
            raise ServingError("'instances' must be a non-empty list.")
        columns: dict[str, list] = {key: [] for key in names}
        for index, instance in enumerate(instances):
            named = isinstance(instance, dict) and not _is_b64(instance)
            if len(names) == 1 and not named:
                columns[names[0]].append(instance)
                continue
            if not named:
                raise ServingError(
                    f"Instance {index} must be an object with the inputs {names} (the signature "
                    f"has {len(names)} inputs)."
                )
            if set(instance) != set(names):
                raise ServingError(
                    f"Instance {index} has the inputs {sorted(instance)}, the signature expects "
                    f"{names}."
                )
            for key in names:
                columns[key].append(instance[key])
        inputs = {key: _tensor(columns[key], signature.inputs[key], key) for key in names}
    else:
        value = request["inputs"]
        if isinstance(value, dict) and not _is_b64(value):
            if set(value) != set(names):
                raise ServingError(
                    f"'inputs' has the inputs {sorted(value)}, the signature expects {names}."
                )
            inputs = {key: _tensor(value[key], signature.inputs[key], key) for key in names}
        elif len(names) == 1:
            inputs = {names[0]: _tensor(value, signature.inputs[names[0]], names[0])}
        else:
            raise ServingError(f"'inputs' must be an object with the inputs {names}.")
    batch_sizes = {array.shape[0] if array.ndim else None for array in inputs.values()}
    if None in batch_sizes or len(batch_sizes) != 1:
        raise ServingError("All inputs must have the same batch (first) dimension.")
    batch = batch_sizes.pop()
    if batch == 0:
        raise ServingError("The request holds no examples (batch size 0).")
    return inputs, batch, has_rows


def _json_value(array: np.ndarray, name: str) -> Any:
    if array.dtype.kind not in "OSU":
        return array.tolist()
    as_b64 = name.endswith("_bytes")

    def convert(item: Any) -> Any:
        if isinstance(item, list):
            return [convert(x) for x in item]
        if isinstance(item, bytes):
            if not as_b64:
                try:
                    return item.decode("utf-8")
                except UnicodeDecodeError:
                    pass
            return {"b64": base64.b64encode(item).decode("ascii")}
        return item

    return convert(array.tolist())


def format_outputs(outputs: dict[str, np.ndarray], row_format: bool) -> dict:
    """Signature outputs -> ``{"predictions": ...}`` (row) or ``{"outputs": ...}`` (columnar)."""
    names = sorted(outputs)
    if not row_format:
        if len(names) == 1:
            return {"outputs": _json_value(outputs[names[0]], names[0])}
        return {"outputs": {key: _json_value(outputs[key], key) for key in names}}
    batches = {outputs[key].shape[0] if outputs[key].ndim else None for key in names}
    if len(batches) != 1 or None in batches:
        raise ServingError(
            "The signature's outputs don't share a batch dimension; use the columnar format "
            "('inputs') for this signature."
        )
    if len(names) == 1:
        return {"predictions": _json_value(outputs[names[0]], names[0])}
    columns = {key: _json_value(outputs[key], key) for key in names}
    return {
        "predictions": [{key: columns[key][row] for key in names} for row in range(batches.pop())]
    }
