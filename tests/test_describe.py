"""kimnet.models.zoo: the multiply-add counter, the zoo table and its command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import keras
import pytest
from keras import layers

import kimnet.models.mobilenet  # noqa: F401  (registers "mobilenet")
from kimnet.models import listing, registry
from kimnet.models import zoo as describe_lib
from kimnet.models.__main__ import main
from kimnet.models.zoo import count_macs, describe, format_table


def test_count_macs_of_a_hand_built_model():
    inputs = keras.Input((8, 8, 3))
    # 8x8 outputs x (3x3 window x 3 inputs) x 4 filters = 64 * 108
    x = layers.Conv2D(4, 3, padding="same")(inputs)
    # Grouped: 4x4 outputs x (3x3 x 4/2 inputs) x 8 filters = 16 * 144
    x = layers.Conv2D(8, 3, strides=2, padding="same", groups=2)(x)
    # Depthwise, 2 per channel: 4x4 outputs x 3x3 x 8 channels x 2 = 16 * 144
    x = layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same")(x)
    # Separable, 'valid' -> 2x2 outputs x (3x3 x 16 depthwise + 16 x 6 pointwise)
    x = layers.SeparableConv2D(6, 3)(x)
    # Not counted: batch norm, activation, pooling.
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.GlobalAveragePooling2D()(x)
    # 6 inputs x 5 outputs
    outputs = layers.Dense(5)(x)
    model = keras.Model(inputs, outputs)
    expected = 64 * 108 + 16 * 144 + 16 * 144 + 4 * (144 + 96) + 6 * 5
    assert expected == 12_510
    assert count_macs(model) == expected


def test_count_macs_per_call_and_per_position():
    # Dense on a sequence: once per position (7 x 4 x 3).
    sequence = keras.Input((7, 4))
    assert count_macs(keras.Model(sequence, layers.Dense(3)(sequence))) == 84

    # A shared layer and a nested model count once per call: 4x4 x 2 x 2 = 64 each.
    image = keras.Input((4, 4, 2))
    shared = layers.Conv2D(2, 1)
    inner_input = keras.Input((4, 4, 2))
    inner = keras.Model(inner_input, layers.Conv2D(2, 1)(inner_input))
    x = shared(shared(image))
    x = inner(inner(x))
    assert count_macs(keras.Model(image, x)) == 4 * 64


def test_count_macs_needs_a_fixed_input_size():
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, layers.Conv2D(2, 3)(inputs))
    with pytest.raises(ValueError, match="fixed input_shape"):
        count_macs(model)


def test_mobilenetv2_matches_published_multiply_adds():
    # MobileNetV2 1.0 at 224: 300M multiply-adds (Sandler et al., Table 4).
    (row,) = describe("mobilenetv2")
    assert 297e6 < row["macs"] < 303e6
    assert row["input_size"] == 224


@pytest.mark.slow
def test_resnet50_matches_published_multiply_adds():
    # ResNet50 as Keras Applications builds it (v1: stride 2 in the first 1x1 conv of
    # a stage): 3.8G (He et al., Table 1). The often-quoted 4.1G is the "v1.5"
    # variant (stride 2 in the 3x3 conv), which keeps more positions in those convs.
    resnet = keras.applications.ResNet50(weights=None)
    assert 3.8e9 < count_macs(resnet) < 3.9e9


def test_describe_one_model():
    (row,) = describe("mobilenet")
    assert row["name"] == "mobilenet"
    assert row["family"] == "mobilenet"
    assert row["params"] == 4_253_864
    assert row["trainable_params"] == 4_231_976  # BN moving statistics are not trainable
    assert 565e6 < row["macs"] < 572e6  # 569M in Howard et al., Table 8
    assert row["stages"] == ["stem", "stage1", "stage2", "stage3", "stage4", "stage5", "head"]
    assert (row["input_size"], row["default_size"], row["min_size"]) == (224, 224, 32)
    assert row["normalization"] == "tf"
    assert row["imagenet"] is True
    assert row["error"] is None

    # Every convolution scales with the number of output positions: 64 px ends at
    # 2x2 where 224 px ends at 7x7. The 1x1 classifier conv works on one position.
    (small,) = describe("mobilenet", input_size=64)
    head = 1024 * 1000
    assert small["input_size"] == 64
    assert small["params"] == row["params"]
    assert (row["macs"] - head) * 4 == (small["macs"] - head) * 49


def test_describe_errors():
    with pytest.raises(ValueError, match="Did you mean 'mobilenetv2'"):
        describe("mobilenet_v2")
    with pytest.raises(ValueError, match="at least 32"):
        describe("mobilenet", input_size=16)
    with pytest.raises(ValueError, match="positive"):
        describe("mobilenet", input_size=0)


def test_describe_all_builds_each_model_once_and_frees_it(monkeypatch):
    monkeypatch.setattr(registry, "names", lambda: ["mobilenet", "mobilenetv2"])
    cleared = []
    real_clear = keras.backend.clear_session
    monkeypatch.setattr(keras.backend, "clear_session", lambda: cleared.append(real_clear()))

    rows = describe(input_size=32)
    assert [r["name"] for r in rows] == ["mobilenet", "mobilenetv2"]
    assert len(cleared) == 2
    assert all(r["input_size"] == 32 and r["macs"] > 0 and r["error"] is None for r in rows)

    # Below a model's minimum, the listing reports it instead of failing.
    rows = describe(input_size=16)
    assert len(cleared) == 2  # nothing built
    assert all(r["macs"] is None and "at least 32" in r["error"] for r in rows)
    assert "at least 32" in format_table(rows)


def test_format_table():
    base = {
        "family": "demo",
        "trainable_params": 10,
        "input_size": 32,
        "default_size": 224,
        "min_size": 32,
        "normalization": "tf",
        "imagenet": False,
        "error": None,
    }
    rows = [
        {**base, "name": "big", "params": 1_234_567, "macs": 1_500_000_000,
         "stages": ["stem", "stage1", "stage2", "stage3", "head"]},
        {**base, "name": "tiny", "params": 12, "macs": 999, "stages": ["a", "b", "head"]},
        {**base, "name": "broken", "params": None, "macs": None, "stages": [],
         "error": "needs 64 px"},
    ]  # fmt: skip
    lines = format_table(rows).splitlines()
    assert len(lines) == 2 + len(rows)
    assert lines[0].split()[:5] == ["model", "family", "params", "trainable", "MACs"]
    assert set(lines[1]) <= {"-", " "}
    big, tiny, broken = lines[2:]
    assert "1,234,567" in big and "1.50G" in big and "stem,stage1-stage3,head" in big
    assert " 999 " in tiny and "a,b,head" in tiny and " no " in tiny
    assert "needs 64 px" in broken and " - " in broken
    # Numbers are right-aligned: the params column ends at the same place on every row.
    end = lines[0].index("params") + len("params")
    assert big[end - 9 : end] == "1,234,567" and tiny[end - 2 : end] == "12"


def test_main_prints_the_table(capsys):
    assert main(["--size", "32", "mobilenet"]) == 0
    out = capsys.readouterr().out
    row = out.splitlines()[2].split()
    assert row[:3] == ["mobilenet", "mobilenet", "4,253,864"]
    assert row[5:7] == ["32", "224"]
    with pytest.raises(SystemExit) as raised:
        main(["mobilenett"])
    assert raised.value.code == 2
    assert "Did you mean 'mobilenet'" in capsys.readouterr().err


def test_listing_reads_the_table_without_keras():
    # A fresh interpreter: the plain listing imports neither Keras nor TensorFlow, so it
    # cannot build a model, and prints every registered name with its table count.
    code = (
        "import sys; from kimnet.models.__main__ import main; main([]); "
        "assert 'keras' not in sys.modules and 'tensorflow' not in sys.modules, 'imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "model", "family", "params", "trainable", "default", "px", "min", "px", "norm", "imagenet"
    ]  # fmt: skip
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert sorted(rows) == registry.names()
    for name, row in rows.items():
        spec = registry.get(name)
        assert row[1:4] == [spec.family, f"{spec.params:,}", f"{spec.trainable_params:,}"]
        assert row[4:] == [
            str(spec.default_size),
            str(spec.min_size),
            spec.normalization,
            "yes" if spec.imagenet else "no",
        ]


def test_main_lists_chosen_names_and_markdown(capsys):
    assert main(["resnet50", "AlexNet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[2:]] == ["resnet50", "alexnet"]
    assert main(["--markdown", "vgg16"]) == 0
    row = capsys.readouterr().out.splitlines()[2]
    assert row.startswith("| `vgg16` | vgg | 224 | 32 | caffe | yes | 138,357,544 |")
    assert "keras.applications.VGG16" in row


@pytest.mark.slow
def test_module_runs_from_the_command_line():
    # mobilenetv2 is registered by kimnet.models itself, so a fresh interpreter finds it.
    result = subprocess.run(
        [sys.executable, "-m", "kimnet.models", "--size", "64", "mobilenetv2"],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = result.stdout.splitlines()
    assert lines[0].split()[0] == "model"
    assert lines[2].split()[0] == "mobilenetv2"
    assert describe_lib.__name__ == "kimnet.models.zoo"


def test_docs_models_table_is_the_generated_one():
    doc = (Path(__file__).parents[1] / "docs" / "models.md").read_text()
    table = listing.markdown(listing.rows())
    assert table in doc, "docs/models.md is stale: paste `python -m kimnet.models --markdown`."
