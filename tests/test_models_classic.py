"""The classic families: AlexNet, VGG (plain and batch norm) and GoogLeNet."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import kimnet.models.alexnet  # noqa: F401  (registers its builders)
import kimnet.models.googlenet  # noqa: F401
import kimnet.models.vgg  # noqa: F401
from kimnet.models import get, stage_names, stage_output, stages
from kimnet.models.alexnet import LocalResponseNormalization
from kimnet.models.weights import copy_by_name

VGG_NAMES = [f"vgg{d}{s}" for s in ("", "_bn") for d in (11, 13, 16, 19)]
ALL_NAMES = ["alexnet", *VGG_NAMES, "googlenet"]

# Trainable parameters of the convolutional part (include_top=False): input-size free.
VGG_CONV_PARAMS = {
    "vgg11": 9_220_480,
    "vgg13": 9_404_992,
    "vgg16": 14_714_688,
    "vgg19": 20_024_384,
    "vgg11_bn": 9_225_984,
    "vgg13_bn": 9_410_880,
    "vgg16_bn": 14_723_136,
    "vgg19_bn": 20_035_392,
}
# Full models at 224 px, 1000 classes (vgg16/19 = Keras Applications; all = torchvision):
# the metadata table's trainable counts.
VGG_FULL_PARAMS = {name: get(name).trainable_params for name in VGG_NAMES}


def count(model: keras.Model) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def images(size: int, batch: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (batch, size, size, 3)).astype("float32")


def run(model: keras.Model, x: np.ndarray):
    """Inference in eager mode (no graph tracing: faster than predict for a single batch)."""
    out = model(x, training=False)
    if isinstance(out, (list, tuple)):
        return [np.asarray(o) for o in out]
    return np.asarray(out)


def head_params(flat: int, classes: int) -> int:
    """fc1 + fc2 + predictions of the flatten head."""
    return flat * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * classes + classes


@pytest.fixture
def bfloat16_policy():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.fixture
def float16_policy():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


# ---------------------------------------------------------------- every registered name


def test_registry_metadata():
    for name in ALL_NAMES:
        spec = get(name)
        assert spec.name == name
        assert spec.imagenet == (name in ("vgg16", "vgg19")), name
    assert get("alexnet").normalization == "torch"
    assert (get("alexnet").default_size, get("alexnet").min_size) == (227, 67)
    assert get("googlenet").normalization == "torch"
    assert (get("googlenet").default_size, get("googlenet").min_size) == (224, 32)
    for name in VGG_NAMES:
        spec = get(name)
        assert (spec.family, spec.normalization, spec.default_size, spec.min_size) == (
            "vgg",
            "caffe",
            224,
            32,
        )
        assert spec.fixed_kwargs == {"depth": int(name[3:5]), "batch_norm": name.endswith("_bn")}


# GoogLeNet's round trip (with its three outputs) is test_googlenet_weights_round_trip_with_aux.
@pytest.mark.parametrize("name", ALL_NAMES[:-1])
def test_weights_round_trip_and_stage_map(name, tmp_path):
    kwargs = {"include_top": False, "pooling": "avg", "input_shape": (32, 32, 3)}
    kwargs["small_input"] = True
    model = get(name)(**kwargs)
    x = images(32)
    expected = run(model, x)
    path = str(tmp_path / f"{name}.weights.h5")
    model.save_weights(path)
    # A freshly initialised model predicts differently, so equality proves the load.
    loaded = get(name)(weights=path, **kwargs)
    np.testing.assert_allclose(run(loaded, x), expected, rtol=1e-5, atol=1e-6)

    # Stage map: stem, stage1..N, head; every layer in exactly one stage.
    names = stage_names(model)
    assert names[0] == "stem" and names[-1] == "head"
    assert names[1:-1] == [f"stage{i}" for i in range(1, len(names) - 1)]
    grouped = stages(model)
    assert sum(len(group) for group in grouped.values()) == len(model.layers)
    sides = [stage_output(model, stage).shape[1] for stage in names[:-1]]
    assert sides == sorted(sides, reverse=True)

    if name in VGG_CONV_PARAMS:
        # The convolutional part's count does not depend on the input size; the full
        # 224 px count adds the 7x7x512 flatten head (built for real in the slow tests).
        assert count(model) == VGG_CONV_PARAMS[name]
        assert VGG_CONV_PARAMS[name] + head_params(7 * 7 * 512, 1000) == VGG_FULL_PARAMS[name]
        convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
        norms = [x for x in model.layers if isinstance(x, keras.layers.BatchNormalization)]
        assert len(convs) == int(name[3:5]) - 3
        assert len(norms) == (len(convs) if name.endswith("_bn") else 0)


@pytest.mark.parametrize("name", [n for n in ALL_NAMES if n not in ("vgg16", "vgg19")])
def test_imagenet_weights_unavailable(name):
    with pytest.raises(ValueError, match="No ImageNet weights"):
        get(name)(weights="imagenet")


@pytest.mark.parametrize(
    ("name", "size", "small_input"),
    [
        ("alexnet", 66, False),
        ("alexnet", 14, True),
        ("vgg16", 31, False),
        ("vgg11_bn", 15, True),
        ("googlenet", 31, False),
        ("googlenet", 7, True),
    ],
)
def test_too_small_input_raises(name, size, small_input):
    with pytest.raises(ValueError, match="needs inputs of at least"):
        get(name)(input_shape=(size, size, 3), small_input=small_input)


def test_unknown_weights_path_raises(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        get("alexnet")(weights=str(tmp_path / "missing.weights.h5"))


# ---------------------------------------------------------------- AlexNet


def test_alexnet_parameter_count_and_layout():
    model = get("alexnet")()
    assert count(model) == get("alexnet").trainable_params
    assert model.input.shape[1:] == (227, 227, 3)
    assert model.get_layer("pool5").output.shape[1:] == (6, 6, 256)
    assert model.get_layer("fc1").kernel.shape == (9216, 4096)
    assert [model.get_layer(f"conv{i}").filters for i in range(1, 6)] == [96, 256, 384, 384, 256]
    assert model.output.shape[1:] == (1000,)
    assert stage_names(model) == ["stem", "stage1", "stage2", "head"]
    head = [layer.name for layer in stages(model)["head"]]
    assert head == ["flatten", "fc1", "fc1_dropout", "fc2", "fc2_dropout", "predictions"]
    assert model.get_layer("fc1_dropout").rate == 0.5


def test_alexnet_lrn_option_and_dropout():
    plain = get("alexnet")(input_shape=(32, 32, 3), small_input=True, classes=10, dropout_rate=0)
    with_lrn = get("alexnet")(input_shape=(32, 32, 3), small_input=True, classes=10, lrn=True)
    assert not any(isinstance(layer, LocalResponseNormalization) for layer in plain.layers)
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in plain.layers)
    assert isinstance(with_lrn.get_layer("conv1_lrn"), LocalResponseNormalization)
    assert isinstance(with_lrn.get_layer("conv2_lrn"), LocalResponseNormalization)
    assert count(plain) == count(with_lrn)
    # 32 px with the small stem: 32 -> 15 -> 7 -> 3, so fc1 sees 3x3x256.
    conv = 34_944 - 11 * 11 * 3 * 96 + 5 * 5 * 3 * 96 + 614_656 + 885_120 + 1_327_488 + 884_992
    assert count(plain) == conv + head_params(3 * 3 * 256, 10)


@pytest.mark.parametrize(("size", "side"), [(28, 2), (32, 3)])
def test_alexnet_small_input(size, side):
    model = get("alexnet")(input_shape=(size, size, 3), small_input=True, classes=10)
    assert model.get_layer("pool5").output.shape[1:] == (side, side, 256)
    assert model.get_layer("fc1").kernel.shape == (side * side * 256, 4096)
    assert run(model, images(size)).shape == (2, 10)


def test_alexnet_without_top():
    features = get("alexnet")(include_top=False, input_shape=(67, 67, 3))
    assert features.output.shape[1:] == (1, 1, 256)
    assert features.layers[-1].name == "pool5"
    for pooling in ("avg", "max"):
        pooled = get("alexnet")(include_top=False, pooling=pooling, input_shape=(None, None, 3))
        assert pooled.output.shape[1:] == (256,)
    with pytest.raises(ValueError, match="fixed input size"):
        get("alexnet")(input_shape=(None, None, 3))
    # 64 px with the small stem: 64 -> 31 -> 15 -> 7.
    small = get("alexnet")(include_top=False, input_shape=(64, 64, 3), small_input=True)
    assert small.output.shape[1:] == (7, 7, 256)


def test_local_response_normalization_matches_formula():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 30, (2, 3, 3, 7)).astype("float32")
    layer = LocalResponseNormalization(size=5, alpha=1e-3, beta=0.75, k=2.0)
    out = np.asarray(layer(x))
    expected = np.empty_like(x)
    for c in range(7):
        window = x[..., max(0, c - 2) : c + 3]
        expected[..., c] = x[..., c] / (2.0 + 1e-3 * (window**2).sum(-1)) ** 0.75
    np.testing.assert_allclose(out, expected, rtol=1e-5)
    clone = LocalResponseNormalization.from_config(layer.get_config())
    assert (clone.size, clone.alpha, clone.beta, clone.k) == (5, 1e-3, 0.75, 2.0)
    with pytest.raises(ValueError, match="odd"):
        LocalResponseNormalization(size=4)


def test_local_response_normalization_float16_does_not_overflow():
    # 300**2 overflows float16; the layer computes in float32 and casts back.
    layer = LocalResponseNormalization(dtype="mixed_float16")
    out = np.asarray(layer(np.full((1, 1, 1, 5), 300.0, "float32")))
    assert out.dtype == np.float16
    assert np.all(np.isfinite(out)) and np.all(out > 0)


def test_alexnet_mixed_bfloat16(bfloat16_policy):
    model = get("alexnet")(input_shape=(32, 32, 3), small_input=True, classes=10, lrn=True)
    assert model.get_layer("conv1").compute_dtype == "bfloat16"
    out = run(model, images(32))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-3)


# ---------------------------------------------------------------- VGG


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        # With the flatten head (logits, so the comparison is not of near-uniform softmax).
        ("vgg16", {"classes": 10, "classifier_activation": None}),
        # Without the top, globally pooled (block5_pool is 1x1 at 32 px).
        ("vgg19", {"include_top": False, "pooling": "max"}),
    ],
)
def test_vgg_equals_keras_applications_small(name, kwargs):
    application = {"vgg16": keras.applications.VGG16, "vgg19": keras.applications.VGG19}[name]
    reference = application(weights=None, input_shape=(32, 32, 3), **kwargs)
    model = get(name)(input_shape=(32, 32, 3), **kwargs)
    weighted = [layer.name for layer in reference.layers if layer.weights]
    assert [layer.name for layer in model.layers if layer.weights] == weighted
    assert count(model) == count(reference)
    assert copy_by_name(reference, model) == len(weighted)
    x = images(32) * 127
    expected = run(reference, x)
    assert expected.shape == run(model, x).shape
    np.testing.assert_allclose(
        run(model, x), expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max()
    )


def test_vgg_imagenet_goes_through_keras_applications(monkeypatch):
    calls = []
    original = keras.applications.VGG16

    def offline_vgg16(**kwargs):
        calls.append(dict(kwargs))
        kwargs["weights"] = None
        reference = original(**kwargs)
        calls.append(reference)
        return reference

    monkeypatch.setattr(keras.applications, "VGG16", offline_vgg16)
    model = get("vgg16")(
        weights="imagenet", include_top=False, input_shape=(28, 28, 3), small_input=True
    )
    assert calls[0]["weights"] == "imagenet"
    assert calls[0]["include_top"] is False
    assert calls[0]["input_shape"] == (None, None, 3)
    reference = calls[1]
    for layer in model.layers:
        if layer.weights:
            for got, want in zip(
                layer.get_weights(), reference.get_layer(layer.name).get_weights(), strict=True
            ):
                np.testing.assert_array_equal(got, want)


def test_vgg_imagenet_top_needs_224():
    with pytest.raises(ValueError, match="224x224"):
        get("vgg16")(weights="imagenet", input_shape=(32, 32, 3))
    with pytest.raises(ValueError, match="224x224"):
        get("vgg19")(weights="imagenet", small_input=True)
    with pytest.raises(ValueError, match="classes=1000"):
        get("vgg16")(weights="imagenet", classes=10)


@pytest.mark.parametrize(("size", "side"), [(28, 1), (32, 2), (64, 4)])
def test_vgg_small_input(size, side):
    model = get("vgg11")(input_shape=(size, size, 3), small_input=True, classes=10)
    names = [layer.name for layer in model.layers]
    assert "block5_pool" not in names and "block4_pool" in names
    assert model.get_layer("block5_conv2").output.shape[1:] == (side, side, 512)
    assert model.get_layer("fc1").kernel.shape == (side * side * 512, 4096)
    assert run(model, images(size)).shape == (2, 10)
    assert stages(model)["stage4"][-1].name == "block5_conv2"
    # Without small_input, 28 px would collapse: rejected with the fix in the message.
    with pytest.raises(ValueError, match="small_input"):
        get("vgg11")(input_shape=(28, 28, 3))


@pytest.mark.parametrize("name", ["vgg11", "vgg11_bn"])
def test_vgg_width_scales_every_layer(name):
    narrow = get(name)(input_shape=(32, 32, 3), classes=10, width=0.25)
    full = get(name)(input_shape=(32, 32, 3), classes=10)
    assert narrow.get_layer("block1_conv1").filters == 16
    assert narrow.get_layer("block5_conv2").filters == 128
    assert narrow.get_layer("fc1").units == narrow.get_layer("fc2").units == 1024
    assert [layer.name for layer in narrow.layers[1:]] == [layer.name for layer in full.layers[1:]]
    assert narrow.count_params() < full.count_params() / 10
    assert run(narrow, images(32)).shape == (2, 10)


@pytest.mark.parametrize("width", [0, -1, 0.01, 5])
def test_vgg_width_out_of_range(width):
    with pytest.raises(ValueError, match="width must be between"):
        get("vgg11")(input_shape=(32, 32, 3), width=width)


def test_vgg_imagenet_needs_full_width():
    with pytest.raises(ValueError, match="width=1.0"):
        get("vgg16")(weights="imagenet", include_top=False, width=0.5)


def test_vgg_dropout_stages_and_bn_layout():
    model = get("vgg11_bn")(input_shape=(32, 32, 3), classes=10, dropout_rate=0.5)
    assert model.get_layer("fc1_dropout").rate == 0.5
    assert model.get_layer("fc2_dropout").rate == 0.5
    assert not any(
        isinstance(layer, keras.layers.Dropout)
        for layer in get("vgg11")(input_shape=(32, 32, 3)).layers
    )
    assert model.get_layer("block1_conv1").activation is keras.activations.linear
    assert isinstance(model.get_layer("block1_conv1_bn"), keras.layers.BatchNormalization)
    assert isinstance(model.get_layer("block1_conv1_relu"), keras.layers.ReLU)
    assert stage_names(model) == ["stem", "stage1", "stage2", "stage3", "stage4", "head"]
    assert [stage_output(model, s).shape[1] for s in stage_names(model)[:-1]] == [16, 8, 4, 2, 1]
    assert stages(model)["stem"][-1].name == "block1_pool"
    assert [layer.name for layer in stages(model)["head"]][0] == "flatten"
    with pytest.raises(ValueError, match="fixed input size"):
        get("vgg16")(input_shape=(None, None, 3))


def test_vgg_mixed_bfloat16(bfloat16_policy):
    model = get("vgg11_bn")(input_shape=(32, 32, 3), small_input=True, classes=10)
    assert model.get_layer("block1_conv1").compute_dtype == "bfloat16"
    out = run(model, images(32))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-3)


# ---------------------------------------------------------------- GoogLeNet


@pytest.mark.parametrize(
    ("batch_norm", "aux_logits", "params"),
    [
        (True, False, get("googlenet").trainable_params),
        (True, True, 13_004_888),
        (False, False, 6_998_552),
        (False, True, 13_378_280),
    ],
)
def test_googlenet_parameter_counts(batch_norm, aux_logits, params):
    model = get("googlenet")(batch_norm=batch_norm, aux_logits=aux_logits)
    assert count(model) == params
    assert model.get_layer("inception3a_5x5").kernel.shape == (
        (3, 3, 16, 32) if batch_norm else (5, 5, 16, 32)
    )
    has_bn = any(isinstance(x, keras.layers.BatchNormalization) for x in model.layers)
    has_lrn = any(isinstance(x, LocalResponseNormalization) for x in model.layers)
    assert has_bn == batch_norm and has_lrn == (not batch_norm)
    assert (model.get_layer("conv1").bias is None) == batch_norm


def test_googlenet_layout_and_stages():
    model = get("googlenet")()
    shapes = {
        "pool2": (28, 28, 192),
        "inception3b_output": (28, 28, 480),
        "inception4a_output": (14, 14, 512),
        "inception4e_output": (14, 14, 832),
        "inception5b_output": (7, 7, 1024),
    }
    for layer, shape in shapes.items():
        assert model.get_layer(layer).output.shape[1:] == shape
    assert stage_names(model) == ["stem", "stage1", "stage2", "stage3", "head"]
    assert [stage_output(model, s).shape[1] for s in ("stem", "stage1", "stage2", "stage3")] == [
        28,
        28,
        14,
        7,
    ]
    assert [layer.name for layer in stages(model)["head"]] == [
        "avg_pool",
        "top_dropout",
        "predictions",
    ]
    assert model.get_layer("top_dropout").rate == 0.4
    features = get("googlenet")(include_top=False, input_shape=(None, None, 3))
    assert features.output.shape[1:] == (None, None, 1024)


@pytest.mark.filterwarnings("ignore:The structure of `inputs`")  # list-input inference model
def test_googlenet_aux_outputs():
    model = get("googlenet")(aux_logits=True, input_shape=(64, 64, 3), classes=7)
    assert [out._keras_history.operation.name for out in model.outputs] == [
        "predictions",
        "aux1_predictions",
        "aux2_predictions",
    ]
    assert model.get_layer("aux1_fc").units == 1024
    assert model.get_layer("aux1_dropout").rate == 0.7
    assert model.get_layer("aux2_conv").filters == 128
    # 64 px: inception 4a/4d are 4x4, the aux pooling (5x5/3 shrunk to 4x4) gives 1x1.
    assert model.get_layer("aux2_flatten").output.shape[1:] == (128,)
    stage_of = {layer.name: s for s, group in stages(model).items() for layer in group}
    assert all(
        stage_of[layer.name] in ("stage3", "head")
        for layer in model.layers
        if layer.name.startswith("aux")
    )
    x = images(64)
    main, aux1, aux2 = run(model, x)
    assert main.shape == aux1.shape == aux2.shape == (2, 7)
    inference = keras.Model(model.inputs, model.outputs[0])
    np.testing.assert_allclose(run(inference, x), main, rtol=1e-5, atol=1e-6)

    model.compile(
        optimizer="sgd",
        loss=["sparse_categorical_crossentropy"] * 3,
        loss_weights=[1.0, 0.3, 0.3],
        run_eagerly=True,  # One step: tracing the training graph would cost far more.
    )
    history = model.fit(x, (np.zeros(2), np.zeros(2), np.zeros(2)), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])

    with pytest.raises(ValueError, match="include_top"):
        get("googlenet")(aux_logits=True, include_top=False)
    with pytest.raises(ValueError, match="fixed input size"):
        get("googlenet")(aux_logits=True, input_shape=(None, None, 3))


@pytest.mark.parametrize(("size", "side"), [(28, 4), (64, 8)])
def test_googlenet_small_input(size, side):
    model = get("googlenet")(
        input_shape=(size, size, 3), small_input=True, classes=10, aux_logits=True
    )
    names = [layer.name for layer in model.layers]
    assert "pool1" not in names and "conv1_pad" not in names
    assert model.get_layer("conv1").kernel.shape == (7, 7, 3, 64)
    assert model.get_layer("inception5b_output").output.shape[1:] == (side, side, 1024)
    assert [out.shape for out in run(model, images(size))] == [(2, 10)] * 3


@pytest.mark.filterwarnings("ignore:Skipping nested container")  # from the mismatched load
def test_googlenet_weights_round_trip_with_aux(tmp_path):
    kwargs = {"aux_logits": True, "batch_norm": False, "input_shape": (32, 32, 3)}
    kwargs.update(small_input=True, classes=5, classifier_activation=None)
    model = get("googlenet")(**kwargs)
    x = images(32)
    expected = run(model, x)
    path = str(tmp_path / "googlenet.weights.h5")
    model.save_weights(path)
    loaded = get("googlenet")(weights=path, **kwargs)
    for got, want in zip(run(loaded, x), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="does not fit"):
        get("googlenet")(weights=path, input_shape=(32, 32, 3), small_input=True, classes=5)


def test_googlenet_mixed_bfloat16(bfloat16_policy):
    model = get("googlenet")(
        input_shape=(32, 32, 3), small_input=True, classes=10, aux_logits=True, batch_norm=False
    )
    assert model.get_layer("conv1").compute_dtype == "bfloat16"
    outputs = run(model, images(32))
    for out in outputs:
        assert out.dtype == np.float32
        np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-3)


def test_googlenet_mixed_float16(float16_policy):
    model = get("googlenet")(input_shape=(32, 32, 3), small_input=True, classes=10)
    out = run(model, images(32) * 100)
    assert out.dtype == np.float32 and np.all(np.isfinite(out))


# ---------------------------------------------------------------- full-size VGG


# Building at 224 px takes under a second (no forward pass), so every count runs in CI.
@pytest.mark.parametrize("name", VGG_NAMES)
def test_vgg_parameter_counts_full_size(name):
    assert count(get(name)()) == VGG_FULL_PARAMS[name]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vgg16", "vgg19"])
def test_vgg_equals_keras_applications_224(name):
    application = {"vgg16": keras.applications.VGG16, "vgg19": keras.applications.VGG19}[name]
    reference = application(weights=None)
    model = get(name)()
    assert model.name == reference.name == name
    assert [layer.name for layer in model.layers[1:]] == [
        layer.name for layer in reference.layers[1:]
    ]
    assert count(model) == count(reference) == VGG_FULL_PARAMS[name]
    copy_by_name(reference, model)
    x = np.random.default_rng(2).uniform(-120, 130, (2, 224, 224, 3)).astype("float32")
    logits = {"classifier_activation": None}
    expected = run(reference, x)
    np.testing.assert_allclose(run(model, x), expected, rtol=1e-5, atol=1e-6)
    # Compare logits too: random softmax outputs are nearly uniform and prove little.
    ref_logits = application(weights=None, **logits)
    model_logits = get(name)(**logits)
    copy_by_name(ref_logits, model_logits)
    expected = run(ref_logits, x)
    np.testing.assert_allclose(
        run(model_logits, x), expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max()
    )
