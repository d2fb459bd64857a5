"""TF Serving's own REST cases, ported: URL parsing (http_rest_api_util.cc and
http_rest_api_handler_test.cc), the row and columnar formats, b64, numeric
rendering and error wording (json_tensor.cc and json_tensor_test.cc).

Each case gives the body or URL, and the status and message TF Serving answers;
kimnet's deliberate differences are marked as such (docs/serving.md lists them).
These run kimnet's parser and writer directly, without TensorFlow; tests in
test_serving.py send the same kinds of request to a live server.
"""

from __future__ import annotations

import base64

import numpy as np
import pytest

from kimnet.serving import rest
from kimnet.serving.app import parse_route
from kimnet.serving.models import ServingError, TensorSpec

# Signatures as json_tensor_test.cc builds them, plus kimnet's own two.
SIGNATURES = {
    "serving_default": {"images": TensorSpec("images:0", "uint8", (None, None, None, None))},
    "serving_bytes": {"image_bytes": TensorSpec("image_bytes:0", "string", (None,))},
    "int": {"default": TensorSpec("x:0", "int32", None)},
    "float": {"default": TensorSpec("x:0", "float32", None)},
    "named": {
        "int_tensor": TensorSpec("a:0", "int32", None),
        "str_tensor": TensorSpec("b:0", "string", None),
    },
}


DEFAULT_LIMITS = rest.Limits()


def parse(body: str | bytes, limits: rest.Limits = DEFAULT_LIMITS) -> rest.Parsed:
    return rest.parse_request(body.encode() if isinstance(body, str) else body, SIGNATURES, limits)


def error_of(body: str | bytes, limits: rest.Limits = DEFAULT_LIMITS) -> str:
    with pytest.raises(ServingError) as caught:
        parse(body, limits)
    assert caught.value.status == 400
    return caught.value.message


# Requests: json_tensor_test.cc -------------------------------------------------------------------


def test_single_unnamed_tensor_row_and_columnar():
    parsed = parse('{"signature_name": "int", "instances": [[1,2],[3,4],[5,6]]}')
    assert parsed.row_format and parsed.rows == 3
    np.testing.assert_array_equal(parsed.inputs["default"], [[1, 2], [3, 4], [5, 6]])
    assert parsed.inputs["default"].dtype == np.int32
    parsed = parse('{"signature_name": "int", "inputs": [[1,2],[3,4],[5,6]]}')
    assert not parsed.row_format
    np.testing.assert_array_equal(parsed.inputs["default"], [[1, 2], [3, 4], [5, 6]])


def test_mixed_integers_and_floats_for_a_float_tensor():
    parsed = parse('{"signature_name": "float", "instances": [1, 2.0, 3.5, -4]}')
    np.testing.assert_array_equal(parsed.inputs["default"], np.float32([1, 2, 3.5, -4]))


def test_float_beyond_float32_becomes_infinity():  # FloatTensorThatExceedsMaxReturnsInf
    parsed = parse('{"signature_name": "float", "instances": [3.4e+39]}')
    assert np.isinf(parsed.inputs["default"][0])


def test_multiple_named_tensors_row_format():
    body = """{"signature_name": "named", "instances": [
        {"int_tensor": [[1,2],[3,4]], "str_tensor": ["foo", "bar"]},
        {"int_tensor": [[5,6],[7,8]], "str_tensor": ["baz", "bat"]}]}"""
    parsed = parse(body)
    assert parsed.inputs["int_tensor"].shape == (2, 2, 2)
    assert parsed.inputs["str_tensor"].tolist() == [[b"foo", b"bar"], [b"baz", b"bat"]]


def test_columnar_inputs_may_differ_in_their_0th_dimension():  # api_rest.md allows it
    body = '{"signature_name": "named", "inputs": {"int_tensor": [[1,2]], "str_tensor": '
    body += '["a","b","c"]}}'
    parsed = parse(body)
    assert parsed.inputs["int_tensor"].shape == (1, 2)
    assert parsed.inputs["str_tensor"].shape == (3,)


def test_b64_scalars_lists_and_unpadded():
    data = b"\x00\x01binary\xff!"
    padded = base64.b64encode(data).decode()
    body = f'{{"signature_name": "serving_bytes", "instances": [{{"b64": "{padded}"}}]}}'
    assert parse(body).inputs["image_bytes"].tolist() == [data]
    unpadded = padded.rstrip("=")
    assert unpadded != padded
    body = f'{{"signature_name": "serving_bytes", "inputs": [{{"b64": "{unpadded}"}}]}}'
    assert parse(body).inputs["image_bytes"].tolist() == [data]
    body = '{"signature_name": "serving_bytes", "instances": ["plain text"]}'
    assert parse(body).inputs["image_bytes"].tolist() == [b"plain text"]


# (body, TF Serving's message): every one a 400 (INVALID_ARGUMENT) from TF Serving.
REQUEST_ERRORS = [
    ("", "JSON Parse error: The document is empty"),
    ("[1, 2]", "JSON Value: [1,2] Is not object"),
    ('{"instances": [1, ', "JSON Parse error"),
    (
        '{"signature_name": 5, "instances": [[1,2]]}',
        "not formatted correctly. 'signature_name' key must be a string value.",
    ),
    (
        '{"signature_name": "nope", "instances": [1]}',
        'Serving signature name: "nope" not found in signature def',
    ),
    (
        '{"signature_name": "int", "instances": [[1,2]], "inputs": [[1,2]]}',
        "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist",
    ),
    ('{"signature_name": "int", "instances": 5}', "Expecting 'instances' to be an list/array"),
    ('{"signature_name": "int", "instances": []}', "No values in 'instances' array"),
    ('{"signature_name": "int"}', "Missing 'inputs' or 'instances' key"),
    (
        '{"signature_name": "int", "instances": [[1,2],[3,4],[5,6,7]]}',
        "Failed to process element: 2 of 'instances' list. Error: INVALID_ARGUMENT: "
        "Expecting tensor size: 2 but got: 3",
    ),
    (
        '{"signature_name": "int", "instances": [[1,2],[3,4],[[5,6]]]}',
        "Expecting shape [2] but got: [1,2]",
    ),
    ('{"signature_name": "int", "instances": [1, [1]]}', "Expecting shape"),
    (
        '{"signature_name": "int", "instances": [[1,2],["a", "b"]]}',
        'JSON Value: "a" Type: String is not of expected type: int32',
    ),
    (  # rapidjson's IsInt is false for true: a boolean is no integer
        '{"signature_name": "int", "instances": [[1, true]]}',
        "JSON Value: true Type: True is not of expected type: int32",
    ),
    (
        '{"signature_name": "int", "instances": [[1.5, 2]]}',
        "JSON Value: 1.5 Type: Number is not of expected type: int32",
    ),
    (
        '{"signature_name": "int", "instances": [2147483648]}',
        "JSON Value: 2147483648 Type: Number is not of expected type: int32",
    ),
    (
        '{"signature_name": "float", "instances": [false]}',
        "JSON Value: false Type: False is not of expected type: float",
    ),
    (
        '{"signature_name": "int", "inputs": [[1,2],[3]]}',
        "Encountered list at unexpected size: 1 at level: 1 expected size: 2",
    ),
    (
        '{"signature_name": "int", "inputs": [[1,2],3]}',
        "JSON Value: 3 found at incorrect level: 2 in the JSON DOM. Expected at level: 2",
    ),
    (
        '{"signature_name": "int", "inputs": [1,[2]]}',
        "Encountered list at unexpected level: 1 expected < 1",
    ),
    (
        '{"signature_name": "named", "instances": [{"int_tensor": [1], "str_tensor": ["a"]}, [1]]}',
        "Expecting object but got list at item 1 of input list",
    ),
    (
        '{"signature_name": "named", "instances": [["a"], {"str_tensor": ["b"]}]}',
        "instances is a plain list, but expecting list of objects as multiple input tensors "
        "required as per tensorinfo_map",
    ),
    (
        '{"signature_name": "serving_bytes", "instances": ["a", {"image_bytes": "b"}]}',
        "Expecting value/list but got object at item 1 of input list",
    ),
    (
        '{"signature_name": "named", "instances": [{"int_tensor": [1]}]}',
        "keys must be equal to: int_tensor,str_tensor",
    ),
    (
        '{"signature_name": "named", "instances": [{"int_tensor": [1], "str_tensor": ["a"], '
        '"x": 1}]}',
        "JSON object: does not have named input: x",
    ),
    (
        '{"signature_name": "named", "inputs": [1]}',
        "inputs is a plain value/list, but expecting an object as multiple input tensors "
        "required as per tensorinfo_map",
    ),
    (
        '{"signature_name": "named", "inputs": {"int_tensor": [1]}}',
        "Missing named input: str_tensor in 'inputs' object.",
    ),
    (
        '{"signature_name": "serving_bytes", "inputs": [{"b64": "@@@"}]}',
        "Unable to base64 decode",
    ),
    (
        '{"signature_name": "serving_bytes", "inputs": [{"b64": "aGk=", "x": 1}]}',
        "not formatted correctly for base64 data",
    ),
    (
        '{"instances": [{"b64": "AAAA"}]}',
        'JSON Value: {"b64":"AAAA"} Type: Object is not of expected type: uint8',
    ),
    # kimnet's own: TF Serving answers these too, differently (see docs/serving.md).
    ('{"instances": [[[[256]]]]}', "JSON Value: 256 is out of range for uint8"),
    ('{"signature_name": "int", "instances": [' + "9" * 5000 + "]}", "JSON Parse error"),
    ('{"instances": [[[1]]]}', "the signature expects [-1,-1,-1,-1]"),
]


@pytest.mark.parametrize(("body", "message"), REQUEST_ERRORS)
def test_request_errors_have_tf_serving_wording(body, message):
    assert message in error_of(body)


# Limits ------------------------------------------------------------------------------------------


def test_images_per_request_limit_uses_the_batchers_wording():
    limits = rest.Limits(max_instances=4)
    body = '{"signature_name": "serving_bytes", "instances": ["a","b","c","d","e"]}'
    assert error_of(body, limits) == (
        "Task size 5 is larger than maximum input batch size 4 (--max_instances)"
    )
    body = '{"signature_name": "serving_bytes", "inputs": ["a","b","c","d","e"]}'
    assert "Task size 5" in error_of(body, limits)
    assert parse('{"signature_name": "serving_bytes", "inputs": ["a","b"]}', limits).rows == 2


def test_json_depth_limit_counts_brackets_outside_strings():
    limits = rest.Limits(max_json_depth=8)
    deep = '{"instances": ' + "[" * 9 + "1" + "]" * 9 + "}"
    assert error_of(deep, limits) == (
        "JSON Parse error: nesting deeper than 8 levels (--max_json_depth)"
    )
    quoted = '{"signature_name": "serving_bytes", "instances": ["' + "[{" * 50 + '\\"["]}'
    assert parse(quoted, limits).inputs["image_bytes"].tolist() == [b"[{" * 50 + b'"[']
    # Far deeper than Python's recursion limit: still a 400, never a RecursionError.
    assert "nesting deeper" in error_of("[" * 100_000 + "]" * 100_000)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG signature and IHDR chunk declaring width x height (no pixel data at all)."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
    )


def test_pixel_limit_is_read_from_the_image_header():
    limits = rest.Limits(max_image_pixels=100 * 100)
    bomb = base64.b64encode(_png_header_only(16000, 16000)).decode()
    body = f'{{"signature_name": "serving_bytes", "instances": [{{"b64": "{bomb}"}}]}}'
    assert error_of(body, limits) == (
        "Instance 0: Image of 16000x16000 pixels exceeds the limit of 10000 decoded pixels "
        "per image (--max_image_pixels)"
    )
    small = base64.b64encode(_png_header_only(100, 100)).decode()
    body = f'{{"signature_name": "serving_bytes", "instances": [{{"b64": "{small}"}}]}}'
    assert parse(body, limits).rows == 1
    # uint8 image tensors: [batch, height, width, channels].
    image = np.zeros((1, 101, 100, 1), np.uint8).tolist()
    assert "Image of 100x101 pixels exceeds the limit of 10000" in error_of(
        rest.orjson.dumps({"instances": image}), limits
    )


def test_pixel_limit_reads_jpeg_gif_and_bmp_headers():
    import io

    from PIL import Image

    limits = rest.Limits(max_image_pixels=63 * 64)
    for fmt in ("JPEG", "GIF", "BMP", "PNG"):
        buffer = io.BytesIO()
        Image.new("RGB", (64, 64)).save(buffer, fmt)
        encoded = base64.b64encode(buffer.getvalue()).decode()
        body = f'{{"signature_name": "serving_bytes", "instances": [{{"b64": "{encoded}"}}]}}'
        assert "Image of 64x64 pixels" in error_of(body, limits), fmt


# Responses: MakeJsonFromTensors -------------------------------------------------------------------


def test_float_rendering_six_digits_when_they_round_trip():  # SixDigitPrecision
    floats = np.float32([[9000000, 999999, 0.5], [0.0003, 0.00003, 555557.5]])
    assert rest.format_outputs({"float_tensor": floats}, True) == (
        b'{"predictions":[[9e+06,999999.0,0.5],[0.0003,3e-05,555557.5]]}'
    )
    # 2.05 as float32 is 2.049999952316284 as a double: TF Serving writes 2.05.
    assert rest.format_outputs({"x": np.float32([2.05, 0.1, 1 / 3])}, False) == (
        b'{"outputs":[2.05,0.1,0.333333343]}'
    )


def test_float_rendering_non_finite():  # FromJsonSingleFloatTensorNonFinite
    floats = np.float32([[np.nan, np.inf], [3, -np.inf]])
    assert rest.format_outputs({"float_tensor": floats}, True) == (
        b'{"predictions":[[NaN,Infinity],[3.0,-Infinity]]}'
    )


def test_multiple_outputs_row_and_columnar():
    outputs = {
        "int_tensor": np.int32([[1, 2], [3, 4]]),
        "str_tensor": np.array([["foo"], ["bar"]], dtype=object),
        "image_bytes": np.array([b"\x00\xff", b"ab"], dtype=object),
    }
    row = rest.format_outputs(outputs, True)
    assert row == (
        b'{"predictions":[{"image_bytes":{"b64":"AP8="},"int_tensor":[1,2],"str_tensor":["foo"]},'
        b'{"image_bytes":{"b64":"YWI="},"int_tensor":[3,4],"str_tensor":["bar"]}]}'
    )
    columnar = rest.format_outputs(outputs, False)
    assert columnar == (
        b'{"outputs":{"image_bytes":[{"b64":"AP8="},{"b64":"YWI="}],"int_tensor":[[1,2],[3,4]],'
        b'"str_tensor":[["foo"],["bar"]]}}'
    )
    assert rest.format_outputs({"x": np.int32([[5]])}, True) == b'{"predictions":[[5]]}'


def test_zero_batch_and_output_errors():
    assert rest.format_outputs({"x": np.zeros((0, 2), np.int32)}, True) == b'{"predictions":[]}'
    with pytest.raises(ServingError, match="inconsistent batch size: 1 expecting: 2"):
        rest.format_outputs({"a": np.zeros((2, 3)), "b": np.zeros((1, 3))}, True)
    with pytest.raises(ServingError, match="has no shape information"):
        rest.format_outputs({"tensor": np.int32(1)}, True)
    with pytest.raises(ServingError, match="empty tensor map"):
        rest.format_outputs({}, True)
    with pytest.raises(ServingError, match="tensor type: complex64"):
        rest.format_outputs({"tensor": np.complex64([1, 2])}, True)


# URLs: http_rest_api_util.cc's regular expressions --------------------------------------------

ROUTES = [
    ("POST", "/v1/models/m:predict", ("m", None, "predict")),
    ("POST", "/v1/models/m/versions/12:predict", ("m", 12, "predict")),
    ("POST", "/v1/models/m/versions/0012:predict", ("m", 12, "predict")),
    ("POST", "/V1/MODELS/m:predict", ("m", None, "predict")),  # (?i)
    ("POST", "/v1/models/my%20model:predict", ("my model", None, "predict")),
    ("POST", "/v1/models/m:classify", ("m", None, "classify")),
    ("GET", "/v1/models/m", ("m", None, "status")),
    ("GET", "/v1/models/m/versions/3", ("m", 3, "status")),
    ("GET", "/v1/models/m/metadata", ("m", None, "metadata")),
    ("GET", "/v1/models/m/versions/3/metadata", ("m", 3, "metadata")),
    ("GET", "/v1/models", ("", None, "status")),
]


@pytest.mark.parametrize(("method", "path", "expected"), ROUTES)
def test_urls_tf_serving_accepts(method, path, expected):
    route = parse_route(method, path)
    assert (route.name, route.version, route.verb) == expected


MALFORMED = [
    ("GET", "/v1/foo"),
    ("GET", "/v1/models/m:predict"),
    ("POST", "/v1/models/m/metadata"),
    ("POST", "/v1/models/m"),
    ("POST", "/v1/models/m:PREDICT"),  # matches the (?i) regex, but no lowercase verb
    ("PUT", "/v1/models/m"),
    ("DELETE", "/v1/models/m/versions/1"),
    ("POST", "/v1/models/m/versions/0_1:predict"),
    ("POST", "/v1/models/m/versions/%201%20:predict"),
    ("POST", "/v1/models/m/versions/\u0661:predict"),  # Arabic-Indic one: \d is ASCII in RE2
    ("GET", "/v1/models/m/versions/-1"),
    ("GET", "/v1/models/m/versions/1/metadata/x"),
]


@pytest.mark.parametrize(("method", "path"), MALFORMED)
def test_urls_tf_serving_calls_malformed(method, path):
    with pytest.raises(ServingError) as caught:
        parse_route(method, path)
    assert caught.value.status == 400
    assert caught.value.message == f"Malformed request: {method} {path}"


def test_version_overflowing_int64_is_400():
    big = str(2**63)
    with pytest.raises(ServingError) as caught:
        parse_route("GET", f"/v1/models/m/versions/{big}")
    assert caught.value.status == 400
    assert caught.value.message == f"Failed to convert version: {big} to numeric."
    assert parse_route("GET", f"/v1/models/m/versions/{2**63 - 1}").version == 2**63 - 1
