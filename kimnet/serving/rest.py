"""TF Serving's REST predict format: JSON requests to numpy inputs, outputs back to JSON.

A port of tensorflow_serving/util/json_tensor.cc, with its error wording.
Row format: ``{"signature_name": ..., "instances": [instance, ...]}``; an instance is
the value of the signature's only input, or an object keyed by input name.
Columnar format: ``{"inputs": value}`` (the only input, batch included) or
``{"inputs": {name: value, ...}}``. Binary strings travel as ``{"b64": "..."}``.
Responses: ``{"predictions": [...]}`` (row; one object per instance when there are
several outputs) or ``{"outputs": value | {name: value}}`` (columnar). Floats are
written as TF Serving writes them: six significant digits when those round-trip,
else nine (float32) or seventeen (float64).

On top of TF Serving, :class:`Limits` bounds what one request may cost: images per
request, decoded pixels per image (read from the image header, before any decoding)
and JSON nesting depth. Parsing never needs TensorFlow, so it can run in another
process (see :mod:`kimnet.serving.app`).
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from kimnet.serving.models import ServingError, TensorSpec

# TF's DataTypeString names, as TF Serving's type errors print them.
_TF_TYPE_NAMES = {"float32": "float", "float64": "double", "float16": "half"}
# The integer range each dtype accepts from JSON (rapidjson's IsInt / IsInt64 / IsUint ...).
_INT_RANGES = {
    "int8": (-(2**31), 2**31 - 1),
    "int16": (-(2**31), 2**31 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint8": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint32": (0, 2**32 - 1),
    "uint64": (0, 2**64 - 1),
}
_DEBUG_BYTES = 256  # TF Serving's kMaxJsonDebugStringBytes


@dataclass(frozen=True)
class Limits:
    """What one predict request may ask of the server (each a ``kimnet serve`` flag).

    Args:
        max_instances: Most examples per request (``--max_instances``).
        max_image_pixels: Most pixels (height x width) per image, for encoded images
            (from their header) and for uint8 image tensors (``--max_image_pixels``).
        max_json_depth: Deepest nesting of JSON arrays and objects (``--max_json_depth``).
    """

    max_instances: int = 256
    max_image_pixels: int = 4096 * 4096
    max_json_depth: int = 32


@dataclass
class Parsed:
    """A predict request as tensors: ``(signature, inputs, batch size, row format?)``."""

    signature_name: str
    inputs: dict[str, np.ndarray]
    rows: int
    row_format: bool


def _debug(value: Any) -> str:
    """A JSON value as TF Serving quotes it in errors (at most 256 bytes)."""
    try:
        text = orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError:
        text = repr(value).encode()
    return text[:_DEBUG_BYTES].decode("utf-8", "replace")


def _json_type(value: Any) -> str:
    if value is None:
        return "Null"
    if value is True or value is False:
        return str(value)
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    return "String" if isinstance(value, str) else "Number"


def _type_name(dtype: str) -> str:
    return _TF_TYPE_NAMES.get(dtype, dtype)


# Parsing ---------------------------------------------------------------------------------------


def check_depth(body: bytes, max_depth: int) -> None:
    """Refuses bodies nested deeper than ``max_depth``, counted on the raw bytes before
    parsing (brackets inside strings don't count), in 4 MiB chunks to bound memory."""
    if body.count(b"[") + body.count(b"{") <= max_depth:
        return
    # Escaped backslashes, then escaped quotes, can't open or close a string.
    text = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    parity, depth, chunk = 0, 0, 4 * 2**20
    for start in range(0, len(text), chunk):
        a = np.frombuffer(text, np.uint8, count=min(chunk, len(text) - start), offset=start)
        in_string = ((np.cumsum(a == 34, dtype=np.uint8) + parity) & 1).astype(bool)
        step = np.zeros(len(a), np.int8)
        step[(a == 91) | (a == 123)] = 1
        step[(a == 93) | (a == 125)] = -1
        step[in_string | (a == 34)] = 0
        levels = np.cumsum(step, dtype=np.int64) + depth
        if len(levels) and levels.max() > max_depth:
            raise ServingError(
                f"JSON Parse error: nesting deeper than {max_depth} levels (--max_json_depth)"
            )
        parity = (parity + int(np.count_nonzero(a == 34))) & 1
        depth = int(levels[-1]) if len(levels) else depth


def parse_json(body: bytes, limits: Limits = Limits()) -> dict:
    """The request object, or a 400 ``ServingError`` with TF Serving's wording."""
    if not body.strip():
        raise ServingError("JSON Parse error: The document is empty")
    check_depth(body, limits.max_json_depth)
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise ServingError(f"JSON Parse error: {error}") from None
    if not isinstance(request, dict):
        raise ServingError(f"JSON Value: {_debug(request)} Is not object")
    return request


def signature_name(request: dict) -> str:
    name = request.get("signature_name", "")
    if not isinstance(name, str):
        raise ServingError(
            f"JSON Value: {_debug(request)} not formatted correctly. 'signature_name' key "
            f"must be a string value."
        )
    return name or "serving_default"


def parse_request(
    body: bytes, signatures: Mapping[str, Mapping[str, TensorSpec]], limits: Limits = Limits()
) -> Parsed:
    """A predict body -> tensors for one of ``signatures`` (``{name: {input: spec}}``)."""
    request = parse_json(body, limits)
    name = signature_name(request)
    if name not in signatures:  # TF Serving's GetInfoMap
        raise ServingError(f'Serving signature name: "{name}" not found in signature def')
    specs = signatures[name]
    if not specs:
        raise ServingError(f"Failed to get input map for signature: {name}")
    inputs, row_format = parse_inputs(request, specs, limits)
    return Parsed(name, inputs, _batch_size(inputs), row_format)


def parse_inputs(
    request: dict, specs: Mapping[str, TensorSpec], limits: Limits = Limits()
) -> tuple[dict[str, np.ndarray], bool]:
    """``instances`` or ``inputs`` -> ``({input: array}, row format?)`` (FillPredictRequest)."""
    if "instances" in request and "inputs" in request:
        raise ServingError(
            f"JSON Value: {_debug(request)} Not formatted correctly expecting only one of "
            f"'inputs' or 'instances' keys to exist "
        )
    if "instances" in request:
        instances = request["instances"]
        if not isinstance(instances, list):
            raise ServingError(
                f"JSON Value: {_debug(request)} Expecting 'instances' to be an list/array"
            )
        if not instances:
            raise ServingError(f"JSON Value: {_debug(request)} No values in 'instances' array")
        _check_count(len(instances), limits)
        columns = _instances_to_columns(instances, specs)
        inputs = {key: _column_tensor(values, specs[key], limits) for key, values in columns}
        return inputs, True
    if "inputs" in request:
        return _columnar_inputs(request["inputs"], specs, limits), False
    raise ServingError("Missing 'inputs' or 'instances' key")


def _check_count(count: int, limits: Limits) -> None:
    if count > limits.max_instances:  # TF Serving's batcher wording
        raise ServingError(
            f"Task size {count} is larger than maximum input batch size "
            f"{limits.max_instances} (--max_instances)"
        )


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _is_named(value: Any) -> bool:
    return isinstance(value, dict) and not _is_b64(value)


def _instances_to_columns(
    instances: list, specs: Mapping[str, TensorSpec]
) -> list[tuple[str, list]]:
    """Splits ``instances`` into one list per input (FillTensorMapFromInstancesList)."""
    names = sorted(specs)
    if not isinstance(instances[0], dict) and len(names) > 1:
        raise ServingError(
            "instances is a plain list, but expecting list of objects as multiple input tensors "
            "required as per tensorinfo_map"
        )
    if not _is_named(instances[0]):
        for index, item in enumerate(instances):
            if _is_named(item):
                raise ServingError(
                    f"Expecting value/list but got object at item {index} of input list"
                )
        return [(names[0], instances)]
    columns: dict[str, list] = {key: [] for key in names}
    for index, item in enumerate(instances):
        if not _is_named(item):
            raise ServingError(f"Expecting object but got list at item {index} of input list")
        for key in item:
            if key not in specs:
                raise ServingError(
                    f"Failed to process element: {index} key: {key} of 'instances' list. "
                    f"Error: INVALID_ARGUMENT: JSON object: does not have named input: {key}"
                )
        if set(item) != set(names):
            raise ServingError(
                f"Failed to process element: {index} of 'instances' list. JSON object: "
                f"{_debug(item)} keys must be equal to: {','.join(names)}"
            )
        for key in names:
            columns[key].append(item[key])
    return list(columns.items())


def _column_tensor(values: list, spec: TensorSpec, limits: Limits) -> np.ndarray:
    """One input's instances -> ``[len(values), ...]``; every instance has the first's shape."""
    shapes = [_dense_shape(value, limits) for value in values]
    first = shapes[0]
    for index, shape in enumerate(shapes):
        if shape != first:
            size, expected = math.prod(shape), math.prod(first)
            detail = (
                f"Expecting tensor size: {expected} but got: {size}"
                if size != expected
                else f"Expecting shape {_shape_text(first)} but got: {_shape_text(shape)}"
            )
            raise _element_error(index, detail)
    _check_pixels((len(values), *first), spec, limits)
    try:
        array = _values(values, (len(values), *first), spec)
    except ServingError as error:
        for index, value in enumerate(values):  # name the first bad instance, as TF Serving
            try:
                _values(value, first, spec)
            except ServingError as item_error:
                raise _element_error(index, item_error.message) from None
        raise error from None
    _check_shape(array, spec)
    _check_headers(array, spec, limits)
    return array


def _element_error(index: int, detail: str) -> ServingError:
    return ServingError(
        f"Failed to process element: {index} of 'instances' list. Error: INVALID_ARGUMENT: {detail}"
    )


def _columnar_inputs(
    value: Any, specs: Mapping[str, TensorSpec], limits: Limits
) -> dict[str, np.ndarray]:
    """``inputs`` -> tensors (FillTensorMapFromInputsMap); batch sizes may differ."""
    if not _is_named(value):
        if len(specs) > 1:
            raise ServingError(
                "inputs is a plain value/list, but expecting an object as multiple input "
                "tensors required as per tensorinfo_map"
            )
        named = {next(iter(specs)): value}
    else:
        named = {}
        for key in sorted(specs):
            if key not in value:
                raise ServingError(f"Missing named input: {key} in 'inputs' object.")
            named[key] = value[key]
    inputs = {}
    for key, item in named.items():
        shape = _dense_shape(item, limits)
        if shape:
            _check_count(shape[0], limits)
        inputs[key] = _tensor(item, shape, specs[key], limits)
    return inputs


def _dense_shape(value: Any, limits: Limits) -> tuple[int, ...]:
    """The shape implied by first elements (GetDenseTensorShape), without recursion."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if len(shape) > limits.max_json_depth:
            raise ServingError(
                f"JSON Parse error: nesting deeper than {limits.max_json_depth} levels "
                f"(--max_json_depth)"
            )
        if not value:
            break
        value = value[0]
    return tuple(shape)


def _shape_text(shape: tuple[int, ...]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


# Tensors ---------------------------------------------------------------------------------------


def _tensor(value: Any, shape: tuple[int, ...], spec: TensorSpec, limits: Limits) -> np.ndarray:
    """A JSON value of ``shape`` -> an array of ``spec``'s dtype, checked against limits."""
    _check_pixels(shape, spec, limits)
    array = _values(value, shape, spec)
    _check_shape(array, spec)
    _check_headers(array, spec, limits)
    return array


def _values(value: Any, shape: tuple[int, ...], spec: TensorSpec) -> np.ndarray:
    array = _fast_numeric(value, shape, spec) if spec.dtype != "string" else None
    if array is None:
        flat: list = []
        _fill(value, 0, shape, spec.dtype, flat)
        array = _flat_to_array(flat, shape, spec)
    return array


def _check_pixels(shape: tuple[int, ...], spec: TensorSpec, limits: Limits) -> None:
    """A ``[batch, height, width, channels]`` numeric input is a batch of images."""
    if spec.dtype != "string" and len(shape) == 4 and shape[1] * shape[2] > limits.max_image_pixels:
        raise ServingError(_pixels_error(f"{shape[2]}x{shape[1]}", limits))


def _check_shape(array: np.ndarray, spec: TensorSpec) -> None:
    """The signature's rank and fixed sizes (TensorFlow would refuse the feed anyway, with a
    message naming graph internals)."""
    if spec.shape is None:
        return
    expected = "[" + ",".join("-1" if d is None else str(d) for d in spec.shape) + "]"
    fits = array.ndim == len(spec.shape) and all(
        want is None or got == want for got, want in zip(array.shape, spec.shape, strict=False)
    )
    if not fits:
        raise ServingError(
            f"Input '{spec.name.split(':')[0]}' has shape {_shape_text(array.shape)}; the "
            f"signature expects {expected} (batch dimension included)."
        )


def _check_headers(array: np.ndarray, spec: TensorSpec, limits: Limits) -> None:
    if spec.dtype == "string":
        for index, data in enumerate(array.reshape(-1)):
            _check_image_header(data, index, limits)


def _fast_numeric(value: Any, shape: tuple[int, ...], spec: TensorSpec) -> np.ndarray | None:
    """numpy's conversion when it is provably what TF Serving would accept, else None (the
    exact walk then finds the error). numpy turns booleans into numbers, so any refuses."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError, OverflowError):
        return None
    if array.shape != shape:
        return None
    if array.size == 0:
        return array.astype(_numpy_dtype(spec.dtype))
    kind = array.dtype.kind
    if spec.dtype == "bool":
        return array if kind == "b" else None
    if kind not in "iuf" or _holds_bools(value):
        return None
    if spec.dtype in _INT_RANGES:
        if kind == "f":
            return None
        low, high = _INT_RANGES[spec.dtype]
        if array.min() < low or array.max() > high:
            return None
        return _cast_integers(array, spec.dtype)
    with np.errstate(over="ignore"):  # beyond float32: infinity, as rapidjson's GetFloat
        return array.astype(_numpy_dtype(spec.dtype))


def _holds_bools(value: Any) -> bool:
    """Whether a nest of numbers and booleans holds a boolean (serialising is C-fast; the
    leaves are numbers or booleans here, so the words can't come from strings)."""
    text = orjson.dumps(value)
    return b"true" in text or b"false" in text


def _numpy_dtype(dtype: str) -> np.dtype:
    try:
        return np.dtype(dtype)
    except TypeError:  # bfloat16 and friends: TensorFlow casts from float32
        return np.dtype("float32")


def _cast_integers(array: np.ndarray, dtype: str) -> np.ndarray:
    """Integers into a narrower dtype; out-of-range ones are refused (TF Serving would wrap
    them around, turning 256 into 0 for uint8 - a silent error kimnet doesn't copy)."""
    info = np.iinfo(_numpy_dtype(dtype))
    if array.size and (array.min() < info.min or array.max() > info.max):
        bad = array.reshape(-1)[(array.reshape(-1) < info.min) | (array.reshape(-1) > info.max)]
        raise ServingError(
            f"JSON Value: {bad[0]} is out of range for {dtype}: values must lie in "
            f"[{info.min}, {info.max}]"
        )
    return array.astype(info.dtype)


def _fill(value: Any, level: int, shape: tuple[int, ...], dtype: str, out: list) -> None:
    """Validates ``value`` against ``shape`` and ``dtype`` element by element
    (FillTensorProto), appending its leaves to ``out``."""
    rank = len(shape)
    if not isinstance(value, list):
        if level != rank:
            raise ServingError(
                f"JSON Value: {_debug(value)} found at incorrect level: {level + 1} in the JSON "
                f"DOM. Expected at level: {rank}"
            )
        out.append(_leaf(value, dtype))
        return
    if level >= rank:
        raise ServingError(f"Encountered list at unexpected level: {level} expected < {rank}")
    if len(value) != shape[level]:
        raise ServingError(
            f"Encountered list at unexpected size: {len(value)} at level: {level} expected "
            f"size: {shape[level]}"
        )
    for item in value:
        _fill(item, level + 1, shape, dtype, out)


def _leaf(value: Any, dtype: str) -> Any:
    """One scalar, checked as rapidjson's IsInt/IsNumber/IsString... (AddValueToTensor)."""
    if isinstance(value, dict):
        if dtype != "string":
            raise _type_error(value, dtype)
        if not _is_b64(value):
            raise ServingError(
                f"JSON Value: {_debug(value)} not formatted correctly for base64 data"
            )
        return _decode_b64(value["b64"])
    is_bool = isinstance(value, bool)
    if dtype == "string":
        if not isinstance(value, str):
            raise _type_error(value, dtype)
        return value.encode("utf-8")
    if dtype == "bool":
        if not is_bool:
            raise _type_error(value, dtype)
        return value
    if is_bool or not isinstance(value, int | float):
        raise _type_error(value, dtype)
    if dtype in _INT_RANGES:
        low, high = _INT_RANGES[dtype]
        if not isinstance(value, int) or not low <= value <= high:
            raise _type_error(value, dtype)
    return value


def _type_error(value: Any, dtype: str) -> ServingError:
    return ServingError(
        f"JSON Value: {_debug(value)} Type: {_json_type(value)} is not of expected type: "
        f"{_type_name(dtype)}"
    )


def _flat_to_array(flat: list, shape: tuple[int, ...], spec: TensorSpec) -> np.ndarray:
    if spec.dtype == "string":
        array = np.empty(len(flat), dtype=object)
        array[:] = flat
        return array.reshape(shape)
    if spec.dtype in _INT_RANGES:
        array = np.array(flat) if flat else np.zeros(0, np.int64)
        return _cast_integers(array.reshape(shape), spec.dtype)
    return np.array(flat, dtype=_numpy_dtype(spec.dtype)).reshape(shape)


def _decode_b64(text: str) -> bytes:
    """Standard base64, ``=`` padding optional (as absl::Base64Unescape)."""
    cleaned = text.rstrip("=")
    if len(cleaned) % 4 == 1:
        raise ServingError("Unable to base64 decode")
    try:
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ServingError("Unable to base64 decode") from None


def _pixels_error(size: str, limits: Limits) -> str:
    return (
        f"Image of {size} pixels exceeds the limit of {limits.max_image_pixels} decoded pixels "
        f"per image (--max_image_pixels)"
    )


def _check_image_header(data: bytes, index: int, limits: Limits) -> None:
    """Refuses an encoded image whose header declares more pixels than allowed, before
    anything decodes it (a 1 MB PNG can declare 16000x16000, and decoders allocate the
    whole image first). Bytes that aren't an image are left to the model to refuse."""
    size = image_size(data)
    if size is not None and size[0] * size[1] > limits.max_image_pixels:
        raise ServingError(f"Instance {index}: " + _pixels_error(f"{size[0]}x{size[1]}", limits))


def image_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from a PNG, GIF, BMP or JPEG header (other formats: PIL's
    header reader); None when the bytes aren't an image whose size can be read."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if data[:2] == b"BM" and len(data) >= 26:
        if struct.unpack("<I", data[14:18])[0] == 12:  # OS/2 BITMAPCOREHEADER
            return struct.unpack("<HH", data[18:22])
        width, height = struct.unpack("<ii", data[18:26])
        return abs(width), abs(height)
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    return _pil_size(data)


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Walks the JPEG markers to the first start-of-frame, which holds the size."""
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
            continue
        i += 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
    return None


def _pil_size(data: bytes) -> tuple[int, int] | None:
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:  # reads the header only
                return image.size
    except Image.DecompressionBombError:  # over twice PIL's own limit
        return (2**31 - 1, 1)
    except Exception:  # noqa: BLE001 - any failure to read a header: not an image we know
        return None


def _batch_size(inputs: dict[str, np.ndarray]) -> int:
    """Examples in the request: the row count, or the largest 0-th dimension (columnar inputs
    may differ there, as TF Serving allows)."""
    sizes = [array.shape[0] for array in inputs.values() if array.ndim]
    return max(sizes, default=1)


# Responses -------------------------------------------------------------------------------------


def format_float(value: float, digits: int = 9) -> str:
    """A float as TF Serving writes it (WriteDecimal): ``%g`` when it round-trips, else
    ``digits`` significant digits; ``.0`` on whole numbers; NaN and +-Infinity as words."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    text = f"{value:g}"
    same = np.float32(text) == np.float32(value) if digits == 9 else float(text) == value
    if not same:
        text = f"{value:.{digits}g}"
    if "." not in text and "e" not in text:
        text += ".0"
    return text


def _write(array: np.ndarray, as_b64: bool) -> str:
    """An array (any rank) as JSON text, TF Serving's way for each dtype."""
    if array.ndim == 0:
        return _scalar(array[()], array.dtype, as_b64)
    if array.ndim == 1:
        return "[" + ",".join(_scalar(v, array.dtype, as_b64) for v in array.tolist()) + "]"
    return "[" + ",".join(_write(item, as_b64) for item in array) + "]"


def _scalar(value: Any, dtype: np.dtype, as_b64: bool) -> str:
    kind = dtype.kind
    if kind == "f":
        return format_float(float(value), 9 if dtype.itemsize <= 4 else 17)
    if kind == "b":
        return "true" if value else "false"
    if kind in "iu":
        return str(int(value))
    if kind not in "OSU":
        raise ServingError(f"Failed to write JSON value for tensor type: {dtype.name}")
    if isinstance(value, str):
        value = value.encode("utf-8")
    if not as_b64:
        try:
            return orjson.dumps(value.decode("utf-8")).decode()
        except UnicodeDecodeError:
            pass  # TF Serving would write invalid JSON here; kimnet sends b64 instead
    return '{"b64":"' + base64.b64encode(value).decode("ascii") + '"}'


def format_outputs(outputs: dict[str, np.ndarray], row_format: bool) -> bytes:
    """Signature outputs -> ``{"predictions": ...}`` (row) or ``{"outputs": ...}`` (columnar),
    as MakeJsonFromTensors writes them."""
    if not outputs:
        raise ServingError("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    is_bytes = {key: key.endswith("_bytes") for key in names}  # IsNamedTensorBytes
    if not row_format:
        if len(names) == 1:
            body = _write(outputs[names[0]], is_bytes[names[0]])
        else:
            body = "{" + ",".join(f'"{k}":{_write(outputs[k], is_bytes[k])}' for k in names) + "}"
        return ('{"outputs":' + body + "}").encode()
    batch = -1
    for key in names:
        if outputs[key].ndim == 0:
            raise ServingError(f"Tensor name: {key} has no shape information ")
        if batch >= 0 and outputs[key].shape[0] != batch:
            raise ServingError(
                f"Tensor name: {key} has inconsistent batch size: {outputs[key].shape[0]} "
                f"expecting: {batch}"
            )
        batch = outputs[key].shape[0]
    rows = []
    for row in range(batch):
        if len(names) == 1:
            rows.append(_write(outputs[names[0]][row, ...], is_bytes[names[0]]))
        else:
            items = (f'"{k}":{_write(outputs[k][row, ...], is_bytes[k])}' for k in names)
            rows.append("{" + ",".join(items) + "}")
    return ('{"predictions":[' + ",".join(rows) + "]}").encode()
