"""Transfer learning without long training: strategies per family, BN semantics, sources,
schedules, discriminative rates, subsets and the study's helpers."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import kimnet.models
from kimnet import experiment
from kimnet.data import DatasetInfo, Splits
from kimnet.models.stages import set_stages
from kimnet.studies import study, transfer_methods
from kimnet.training.optim import ScaledSGD
from kimnet.transfer import cut_after, freezing, pretrained, subsets, unfreezing
from kimnet.transfer.finetune import resolve, stage_lr_multipliers

ROOT = Path(__file__).resolve().parents[1]
# One model per family, small enough to build quickly.
FAMILY_MODELS = {
    "alexnet": ("alexnet", {}),
    "densenet": ("densenet121", {}),
    "googlenet": ("googlenet", {}),
    "mobilenet": ("mobilenetv2", {"alpha": 0.35}),
    "resnet": ("resnet18", {}),
    "senet": ("se_resnet50", {}),
    "vgg": ("vgg11_bn", {}),
}
_BUILT: dict[tuple, keras.Model] = {}


def build(name: str, classes: int = 10, **kwargs) -> keras.Model:
    key = (name, classes, tuple(sorted(kwargs.items())))
    if key not in _BUILT:
        _BUILT[key] = kimnet.models.get(name)(
            input_shape=(32, 32, 3), classes=classes, small_input=True, **kwargs
        )
    return _BUILT[key]


def _is_bn(layer) -> bool:
    return isinstance(layer, keras.layers.BatchNormalization)


def _params(weights) -> int:
    return int(sum(np.prod(w.shape) for w in weights))


@pytest.mark.parametrize("family", sorted(FAMILY_MODELS))
def test_each_strategy_trains_the_right_stages(family):
    name, kwargs = FAMILY_MODELS[family]
    model = build(name, **kwargs)
    grouped = kimnet.models.stages(model)
    backbone = list(grouped)[:-1]
    assert len(backbone) >= 3 and backbone[0] == "stem"

    freezing.apply(model, "none")
    assert all(layer.trainable for layer in model.layers)
    assert len(model.trainable_weights) == sum(
        len(layer.trainable_weights) for layer in model.layers
    )

    freezing.apply(model, "backbone")
    for stage, layers in grouped.items():
        assert all(layer.trainable == (stage == "head") for layer in layers), stage
    report = {row.stage: row for row in freezing.trainable_report(model)}
    assert all(report[s].trainable == 0 for s in backbone)
    head_params = _params([w for layer in grouped["head"] for w in layer.weights])
    assert report["head"].trainable == head_params > 0
    assert report["head"].frozen == 0

    freezing.apply(model, "stages:1")
    for stage, layers in grouped.items():
        assert all(layer.trainable == (stage not in ("stem", "stage1")) for layer in layers)
    report = {row.stage: row for row in freezing.trainable_report(model)}
    assert report["stem"].trainable == report["stage1"].trainable == 0
    assert report["stage2"].trainable > 0
    # stages:stageK means the same as stages:K.
    freezing.apply(model, "stages:stage2")
    assert {s for s, ls in grouped.items() if not any(layer.trainable for layer in ls)} >= {
        "stem",
        "stage1",
        "stage2",
    }

    freezing.apply(model, "bn")
    for layer in model.layers:
        assert layer.trainable == (not _is_bn(layer)), layer.name
    bn_params = sum(_params(layer.weights) for layer in model.layers if _is_bn(layer))
    total = sum(row.trainable + row.frozen for row in freezing.trainable_report(model))
    assert total == model.count_params()
    assert sum(row.frozen for row in freezing.trainable_report(model)) == bn_params

    last = backbone[-1]
    freezing.set_trainable_from(model, last)
    for stage, layers in grouped.items():
        assert all(layer.trainable == (stage in (last, "head")) for layer in layers)
    freezing.apply(model, "none")


@pytest.mark.parametrize("strategy", ["freeze_all", "stages:9", "stages:", "stages:head"])
def test_unknown_strategy_lists_the_valid_ones(strategy):
    model = build("mobilenetv2", alpha=0.35)
    with pytest.raises(
        ValueError, match=r"Valid strategies: none, backbone, bn, stages:K .*0\.\.5"
    ):
        freezing.frozen_stages(model, strategy)


def test_schedule_parses_and_rejects_bad_phases():
    names = ["stem", "stage1", "stage2", "stage3", "stage4", "head"]
    phases = unfreezing.parse("head:3, stage4:2,stage3:2@1e-4,all:4", names)
    assert [(p.first_trainable, p.epochs, p.learning_rate) for p in phases] == [
        ("head", 3, None),
        ("stage4", 2, None),
        ("stage3", 2, 1e-4),
        ("all", 4, None),
    ]
    assert unfreezing.total_epochs(phases) == 11
    for text, message in [
        ("head3", "does not parse"),
        ("head:x", "does not parse"),
        (
            "stage7:2",
            "names stage 'stage7'.*Valid: stem, stage1, stage2, stage3, stage4, head, all",
        ),
        ("head:0", "at least 1 epoch"),
        ("head:2@0", "positive"),
        ("", "Empty schedule"),
    ]:
        with pytest.raises(ValueError, match=message):
            unfreezing.parse(text, names)


def test_features_from_cuts_after_the_stage_and_keeps_the_stage_map():
    model = build("mobilenetv2", alpha=0.35)
    cut = cut_after(model, "stage3", 4, 0.0)
    assert kimnet.models.stage_names(cut) == ["stem", "stage1", "stage2", "stage3", "head"]
    assert cut.output.shape == (None, 4)
    assert cut.get_layer(kimnet.models.stages(model)["stage3"][-1].name) is not None
    with pytest.raises(ValueError, match="features_from='stage9'.*no such stage.*stem, stage1"):
        cut_after(model, "stage9", 4, 0.0)


def _toy_model() -> keras.Model:
    """conv-BN (stem) -> conv-BN (stage1) -> pooled dense head, with a stage map."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="c0")(inputs)
    x = keras.layers.BatchNormalization(name="bn0")(x)
    x = keras.layers.Conv2D(4, 3, padding="same", name="c1")(x)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="predictions")(x)
    model = keras.Model(inputs, outputs)
    return set_stages(model, [("stem", "bn0"), ("stage1", "bn1")])


def _snapshot(model):
    return {w.path: np.array(w.numpy()) for w in model.weights}


@pytest.mark.parametrize("strategy", ["bn", "stages:0"])
def test_frozen_batchnorm_statistics_do_not_change_in_training(strategy):
    keras.utils.set_random_seed(0)
    model = _toy_model()
    freezing.apply(model, strategy)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="categorical_crossentropy")
    before = _snapshot(model)
    images = np.random.default_rng(0).normal(3.0, 2.0, (16, 8, 8, 3)).astype("float32")
    labels = keras.utils.to_categorical(np.arange(16) % 2, 2)
    model.fit(images, labels, epochs=2, batch_size=8, verbose=0)
    after = _snapshot(model)
    frozen = {"bn0", "bn1"} if strategy == "bn" else {"c0", "bn0"}
    for path, value in before.items():
        layer = path.split("/")[0]
        if layer in frozen:
            np.testing.assert_array_equal(after[path], value, err_msg=path)
        else:
            assert not np.array_equal(after[path], value), f"{path} did not train"


def test_discriminative_rates_scale_each_stage_update():
    model = _toy_model()
    multipliers = stage_lr_multipliers(model, 0.5)
    by_layer = {path.split("/")[0]: factor for path, factor in multipliers.items()}
    assert by_layer == {"c0": 0.25, "bn0": 0.25, "c1": 0.5, "bn1": 0.5}  # the head: x1
    a, b = keras.Variable(np.zeros(3, "float32")), keras.Variable(np.zeros(3, "float32"))
    optimizer = ScaledSGD(learning_rate=1.0, momentum=0.0, lr_multipliers={b.path: 0.25})
    optimizer.apply([tf.ones(3), tf.ones(3)], [a, b])
    np.testing.assert_allclose(a.numpy(), -1.0)
    np.testing.assert_allclose(b.numpy(), -0.25)


def test_loading_a_weights_file_replaces_only_a_head_of_another_size(tmp_path):
    source = build("mobilenetv2", classes=5, alpha=0.35)
    path = tmp_path / "source.weights.h5"
    source.save_weights(str(path))
    target = kimnet.models.get("mobilenetv2")(
        input_shape=(32, 32, 3), classes=3, small_input=True, alpha=0.35
    )
    fresh_head = target.get_layer("predictions").get_weights()
    report = pretrained.load_file(target, path)
    assert report.initialised_layers == ["predictions"]
    assert report.initialised_parameters == 1280 * 3 + 3
    assert report.loaded_layers == sum(1 for layer in target.layers if layer.weights) - 1
    for layer in target.layers:
        if layer.weights and layer.name != "predictions":
            want_all = source.get_layer(layer.name).get_weights()
            for got, want in zip(layer.get_weights(), want_all, strict=True):
                np.testing.assert_array_equal(got, want)
    for got, want in zip(target.get_layer("predictions").get_weights(), fresh_head, strict=True):
        np.testing.assert_array_equal(got, want)
    assert "Loaded 104 layers" in report.summary() and "predictions" in report.summary()

    same_size = kimnet.models.get("mobilenetv2")(
        input_shape=(32, 32, 3), classes=5, small_input=True, alpha=0.35
    )
    assert pretrained.load_file(same_size, path).initialised_layers == []
    assert pretrained.load_file(same_size, path, new_head=True).initialised_layers == [
        "predictions"
    ]

    with pytest.raises(ValueError, match="does not fit resnet18.*backbone layers"):
        pretrained.load_file(build("resnet18"), path)
    with pytest.raises(ValueError, match="does not fit.*other model arguments"):
        pretrained.load_file(build("mobilenetv2", alpha=0.5), path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        pretrained.load_file(target, tmp_path / "missing.weights.h5")


def _fake_run(root: Path, model: str = "mobilenetv2", weights: Path | None = None) -> Path:
    run = root / f"run-{model}"
    (run / "checkpoints").mkdir(parents=True)
    args = "alpha=0.35" if model == "mobilenetv2" else ""
    config = experiment.validate({"model": {"name": model, "args": args}})
    (run / "config.json").write_text(experiment.to_json(config))
    target = run / "checkpoints" / "last.weights.h5"
    if weights is not None:
        target.write_bytes(weights.read_bytes())
    else:
        target.write_bytes(b"")
    return run


def test_init_from_a_run_loads_it_and_bad_runs_are_refused(tmp_path):
    source = build("mobilenetv2", classes=5, alpha=0.35)
    path = tmp_path / "w.weights.h5"
    source.save_weights(str(path))
    run = _fake_run(tmp_path, weights=path)

    def resolved(**transfer):
        return resolve(experiment.validate({"transfer": transfer}))

    config = resolved(init_from=str(run))
    assert config.model.args == "alpha=0.35"  # the run's model and arguments
    target = build("mobilenetv2", classes=7, alpha=0.35)
    report = pretrained.load_run(target, run)
    assert report.initialised_layers == ["predictions"] and "run '" in report.source

    with pytest.raises(ValueError, match="is not a kimnet run directory"):
        resolved(init_from=str(tmp_path / "nope"))
    other = _fake_run(tmp_path, model="resnet18")
    assert resolved(init_from=str(other)).model.name == "resnet18"
    with pytest.raises(ValueError, match="trained resnet18; leave the model unset"):
        resolve(
            experiment.validate({"model": {"name": "vgg11"}, "transfer": {"init_from": str(other)}})
        )
    with pytest.raises(ValueError, match="does not parse"):
        resolved(schedule="head=1")
    assert resolved(schedule="head:1,all:2").schedule.epochs == 3


def test_class_and_size_subsets():
    assert subsets.parse_classes("5-9") == [5, 6, 7, 8, 9]
    assert subsets.parse_classes("0,2, 4") == [0, 2, 4]
    assert subsets.parse_classes(None) is None
    for bad in ("a-b", "4-2", "1,1"):
        with pytest.raises(ValueError):
            subsets.parse_classes(bad)
    images = np.zeros((30, 4, 4, 1), np.uint8)
    labels = np.arange(30, dtype=np.int64) % 3
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    info = DatasetInfo(
        "toy", ("a", "b", "c"), {"train": 30, "validation": 30, "test": 30}, (4, 4, 1)
    )
    splits = Splits(train=ds, validation=ds, test=ds, info=info)
    out = subsets.subset(splits, classes=[2, 0], train_examples=5)
    assert out.info.class_names == ("c", "a")
    assert out.info.num_examples == {"train": 5, "validation": 20, "test": 20}
    got = [int(y) for _, y in out.train.as_numpy_iterator()]
    assert got == [1, 0, 1, 0, 1]  # label 2 -> 0 and label 0 -> 1, in the original order
    with pytest.raises(ValueError, match="at least two of the 3 classes"):
        subsets.subset(splits, classes=[7, 0])


def test_transfer_study_rows_and_report_helpers(tmp_path):
    path = ROOT / "configs" / "transfer_study.py"
    full, quick = study.load(str(path)), study.load(f"{path}:quick")
    assert full.source["data.classes"] == "0-4" and full.base.data.name == "fashion_mnist"
    assert {row.overrides["data.classes"] for row in full.rows} == {"5-9"}
    assert len({row.group for row in full.rows}) >= 2 and len(quick.rows) < len(full.rows)
    assert full.seeds == (0, 1, 2) and quick.seeds == (0, 1)
    steps = "schedule.steps_per_epoch"
    assert quick.source[steps] * quick.source["schedule.epochs"] < (
        full.source[steps] * full.source["schedule.epochs"]
    )
    shares = (("head", 1 / 3), ("stage4", 1 / 3), ("all", 1 / 3))
    assert transfer_methods.phase_epochs(shares, 12) == "head:4,stage4:4,all:4"
    assert transfer_methods.phase_epochs(shares, 5) == "head:2,stage4:2,all:1"
    assert transfer_methods.phase_epochs((("head", 0.25), ("all", 0.75)), 3) == "head:1,all:2"
    with pytest.raises(ValueError, match="cannot hold 3 phases"):
        transfer_methods.phase_epochs(shares, 2)
    labels = [row.label for row in full.rows if row.group == full.rows[0].group]
    assert labels[:3] == ["from scratch", "full fine-tuning", "gradual unfreezing"]
    assert labels[-1] == "frozen features from stage5 (frozen backbone)"
    results = [
        {"label": "from scratch", "train_examples": n, "test_top1": a, "test_top5": 1.0}
        for n, a in ((100, 0.5), (1000, 0.75))
    ] + [{"label": "full fine-tuning", "train_examples": 100, "test_top1": 0.8, "test_top5": 1.0}]
    table = transfer_methods.markdown_table(results, [100, 1000], top5=False)
    assert table.splitlines()[0] == "| method | N=100 top-1 | N=1000 top-1 |"
    assert "| from scratch | 50.0 | 75.0 |" in table and "| full fine-tuning | 80.0 | - |" in table
    assert "top-5" in transfer_methods.markdown_table(results, [100, 1000], top5=True)
    transfer_methods.plot(results, [100, 1000], tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="does not exist"):
        study.load(str(tmp_path / "none.py"))


def test_imagenet_source_errors_are_clear():
    model = build("resnet18")
    with pytest.raises(ValueError, match="No ImageNet weights .* for resnet18.*mobilenet"):
        pretrained.load_imagenet(model, kimnet.models.get("resnet18"), lambda: model)

    def offline():
        raise OSError("URL fetch failure")

    with pytest.raises(ValueError, match="Could not get the ImageNet weights of mobilenetv2"):
        pretrained.load_imagenet(
            build("mobilenetv2", alpha=0.35), kimnet.models.get("mobilenetv2"), offline
        )
    # Copying by name from a reference that has the weights: everything but the head loads.
    reference = build("mobilenetv2", classes=5, alpha=0.35)
    target = kimnet.models.get("mobilenetv2")(
        input_shape=(32, 32, 3), classes=5, small_input=True, alpha=0.35
    )
    report = pretrained.load_imagenet(target, kimnet.models.get("mobilenetv2"), lambda: reference)
    assert report.initialised_layers == ["predictions"]
    np.testing.assert_array_equal(
        target.get_layer("Conv1").get_weights()[0], reference.get_layer("Conv1").get_weights()[0]
    )


def test_in_memory_splits_hold_the_same_examples():
    images = np.arange(12 * 2 * 2, dtype=np.uint8).reshape(12, 2, 2, 1)
    labels = np.arange(12, dtype=np.int64) % 2
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    counts = {"train": 12, "validation": 12, "test": 12}
    splits = Splits(ds, ds, ds, DatasetInfo("toy", ("a", "b"), counts, (2, 2, 1)))
    memory = subsets.in_memory(splits)
    got = list(memory.test.as_numpy_iterator())
    assert len(got) == 12 and all(np.array_equal(x, images[i]) for i, (x, _) in enumerate(got))
    assert [int(y) for _, y in got] == labels.tolist()
