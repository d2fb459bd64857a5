"""Evaluation reports: the metric math, the pictures, and ``kimnet evaluate`` end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kimnet import data, evaluation, experiment
from kimnet.commands import evaluate as evaluate_command

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["cat", "dog", "owl"]
REPORT_FILES = {"report.md", "report.json", "confusion_matrix.png", "mistakes.png"}


def _one_hot_probabilities(predicted: list[int], confidence: float = 0.8) -> np.ndarray:
    rest = (1 - confidence) / (len(NAMES) - 1)
    probabilities = np.full((len(predicted), len(NAMES)), rest, np.float32)
    probabilities[np.arange(len(predicted)), predicted] = confidence
    return probabilities


# 10 images: true labels and what a model predicted for them.
TRUE = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
PREDICTED = [0, 0, 0, 1, 1, 1, 0, 2, 1, 1]


def _collect(keep: int = 4, batch: int = 4) -> evaluation.Evaluation:
    probabilities = _one_hot_probabilities(PREDICTED)
    images = np.arange(10, dtype=np.float32)[:, None, None, None] * np.ones((10, 2, 2, 1))
    batches = [(images[i : i + batch], np.array(TRUE[i : i + batch])) for i in range(0, 10, batch)]
    outputs = iter(probabilities[i : i + batch] for i in range(0, 10, batch))
    return evaluation.collect(batches, lambda _: next(outputs), NAMES, keep=keep)


def test_confusion_matrix_counts_true_rows_and_predicted_columns():
    result = _collect()
    assert result.confusion.tolist() == [[3, 1, 0], [1, 2, 0], [0, 2, 1]]
    assert result.count == 10
    assert result.top1 == pytest.approx(6 / 10)
    assert result.top5 == 1.0 and result.top_k == 3  # three classes: top-3
    assert result.loss == pytest.approx(-(6 * np.log(0.8) + 4 * np.log(0.1)) / 10, rel=1e-5)


def test_per_class_precision_recall_f1_and_support():
    scores = evaluation.per_class(_collect().confusion)
    assert scores["precision"] == pytest.approx([3 / 4, 2 / 5, 1 / 1])
    assert scores["recall"] == pytest.approx([3 / 4, 2 / 3, 1 / 3])
    f1_dog = 2 * (2 / 5) * (2 / 3) / (2 / 5 + 2 / 3)
    assert scores["f1"] == pytest.approx([3 / 4, f1_dog, 2 * (1 / 3) / (4 / 3)])
    assert scores["support"].tolist() == [4, 3, 3]


def test_a_class_never_predicted_has_zero_precision_not_nan():
    scores = evaluation.per_class(np.array([[2, 0], [1, 0]]))
    assert scores["precision"].tolist() == [2 / 3, 0.0]
    assert scores["f1"][1] == 0.0


def test_most_confused_pairs_largest_first_without_the_diagonal():
    pairs = evaluation.most_confused(_collect().confusion, NAMES)
    assert pairs[0] == {"true": "owl", "predicted": "dog", "count": 2}
    assert {(p["true"], p["predicted"], p["count"]) for p in pairs[1:]} == {
        ("cat", "dog", 1),
        ("dog", "cat", 1),
    }


def test_top5_counts_a_label_among_the_five_highest():
    probabilities = np.tile(np.linspace(0.3, 0.01, 7, dtype=np.float32), (2, 1))
    labels = np.array([4, 5])  # ranks 5 and 6
    result = evaluation.collect(
        [(np.zeros((2, 1, 1, 3)), labels)], lambda _: probabilities, [str(i) for i in range(7)]
    )
    assert result.top5 == 0.5


def test_only_the_highest_loss_images_are_kept_across_batches():
    result = _collect(keep=3)
    # Wrong with probability 0.1 for the true class: images 3, 6, 8 and 9 tie; the first
    # three seen stay, highest loss first, with their own pixels and labels.
    assert [m.loss for m in result.mistakes] == pytest.approx([-np.log(0.1)] * 3, rel=1e-5)
    kept = [int(m.image[0, 0, 0]) for m in result.mistakes]
    assert set(kept) <= {3, 6, 8, 9} and len(kept) == 3
    for m in result.mistakes:
        index = int(m.image[0, 0, 0])
        assert (m.true, m.predicted) == (TRUE[index], PREDICTED[index])
        assert m.image.shape == (2, 2, 3) and m.image.dtype == np.uint8
        assert m.probability == pytest.approx(0.8)


def test_labels_from_one_hot_and_multi_output_targets():
    one_hot = np.eye(3)[[2, 0, 1]]
    assert evaluation.as_labels(one_hot).tolist() == [2, 0, 1]
    assert evaluation.as_labels((one_hot, one_hot)).tolist() == [2, 0, 1]
    assert evaluation.as_labels(tf.constant([1, 2])).tolist() == [1, 2]


def test_the_first_output_of_a_multi_output_model_is_the_classifier():
    import keras

    inputs = keras.Input((4, 4, 3))
    flat = keras.layers.Flatten()(inputs)
    main = keras.layers.Dense(3, activation="softmax")(flat)
    aux = keras.layers.Dense(3, activation="softmax")(flat)
    model = keras.Model(inputs, [main, aux])
    images = np.random.default_rng(0).normal(size=(5, 4, 4, 3)).astype(np.float32)
    got = evaluation.model_predictor(model)(images)
    np.testing.assert_allclose(got, keras.Model(inputs, main)(images).numpy(), atol=1e-6)


@pytest.mark.parametrize("mode", ["tf", "torch", "caffe", "raw"])
def test_denormalize_undoes_normalize(mode):
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 4, 4, 3)).astype(np.float32)
    back = evaluation.denormalize(data.normalize(tf.constant(pixels), mode).numpy(), mode)
    np.testing.assert_allclose(back, pixels, atol=1e-3)


def _png_size(path: Path) -> tuple[int, int]:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        return image.size


def test_write_report_writes_four_files_that_agree(tmp_path):
    result = _collect()
    report = evaluation.write_report(result, tmp_path / "r", {"model": "m", "split": "test"})
    assert {p.name for p in (tmp_path / "r").iterdir()} == REPORT_FILES
    saved = json.loads((tmp_path / "r" / "report.json").read_text())
    assert saved == json.loads(json.dumps(report))
    assert saved["top1"] == 0.6 and saved["images"] == 10 and saved["model"] == "m"
    assert [c["support"] for c in saved["classes"]] == [4, 3, 3]
    text = (tmp_path / "r" / "report.md").read_text()
    assert "| owl | dog | 2 |" in text and "- Top-1: 0.6000" in text
    for name in ("confusion_matrix.png", "mistakes.png"):
        width, height = _png_size(tmp_path / "r" / name)
        assert 200 < width < 2500 and 200 < height < 2500, name


def test_confusion_matrix_of_100_classes_stays_a_sane_size(tmp_path):
    rng = np.random.default_rng(0)
    confusion = rng.integers(0, 50, (100, 100))
    names = [f"class_{i}" for i in range(100)]
    width, height = _png_size(
        evaluation.plot_confusion_matrix(confusion, names, tmp_path / "c.png")
    )
    assert 1000 < width < 3000 and 1000 < height < 3000


def test_plot_curves_from_a_csv_logger_file(tmp_path):
    history = tmp_path / "history.csv"
    history.write_text(
        "epoch,learning_rate,loss,top1,top5,val_loss,val_top1,val_top5\n"
        "0,0.002,1.2,0.6,0.9,1.0,0.65,0.95\n"
        "1,0.001,0.9,0.7,0.95,0.8,0.72,0.97\n"
    )
    width, height = _png_size(evaluation.plot_curves(history, tmp_path / "curves.png"))
    assert width > 400 and height > 200


def _tensorboard_tags(log_dir: Path) -> set[str]:
    tags = set()
    for events in log_dir.glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(events)):
            tags.update(value.tag for value in event.summary.value)
    return tags


def test_write_tensorboard_adds_the_pictures_and_test_scalars(tmp_path):
    evaluation.write_report(_collect(), tmp_path / "r")
    evaluation.write_tensorboard(tmp_path / "r", tmp_path / "tb", step=2)
    assert _tensorboard_tags(tmp_path / "tb") >= {
        "evaluation/confusion_matrix",
        "evaluation/mistakes",
        "epoch_top1",
        "epoch_top5",
        "evaluation/cross_entropy",
    }


# --- end to end on a tiny real run ------------------------------------------------------

TEST_IMAGES = 96


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A run trained for a few steps and exported, with a small test split."""
    from kimnet.training import train

    root = tmp_path_factory.mktemp("evaluate")
    config = {
        "model": {"name": "mobilenet", "args": "alpha=0.25"},
        "data": {"batch_size": 32, "test_examples": TEST_IMAGES, "validation_examples": 32},
        "schedule": {"epochs": 1, "steps_per_epoch": 2},
        "evaluate": {"bn_recalibration_batches": 1},
        "augment": {"ops": "none"},
        "export": {"dir": str(root / "savedmodels")},
        "runtime": {"workdir": str(root / "runs"), "run_name": "tiny", "seed": 3},
    }
    return train(experiment.validate(config))


def _evaluate(*args: str) -> int:
    with pytest.raises(SystemExit) as exit_info:
        evaluate_command.main(["kimnet evaluate", *args])
    return exit_info.value.code or 0


def _check_report(folder: Path, images: int) -> dict:
    assert {p.name for p in folder.iterdir()} == REPORT_FILES
    report = json.loads((folder / "report.json").read_text())
    confusion = np.array(report["confusion_matrix"])
    assert confusion.sum() == report["images"] == images
    assert np.trace(confusion) / confusion.sum() == pytest.approx(report["top1"], abs=1e-4)
    for name in ("confusion_matrix.png", "mistakes.png"):
        _png_size(folder / name)
    return report


@pytest.mark.slow  # a real run first (module fixture), then kimnet evaluate
def test_evaluate_a_run_directory_on_its_own_test_split(tiny_run):
    assert _evaluate(str(tiny_run.run_dir)) == 0
    report = _check_report(tiny_run.run_dir / "report-test", TEST_IMAGES)
    # The last checkpoint holds the weights and statistics the run's own test used.
    assert report["top1"] == pytest.approx(tiny_run.metrics.test_top1, abs=1.5 / TEST_IMAGES)
    assert report["model"] == "mobilenet" and report["dataset"] == "fashion_mnist"


@pytest.mark.slow  # a real run first (module fixture), then kimnet evaluate
def test_evaluate_the_exported_savedmodel(tiny_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model_dir = tiny_run.export_dir.parent  # the model folder: its newest version is used
    assert _evaluate(str(model_dir), "--batch_size=32", f"--max_batches={TEST_IMAGES // 32}") == 0
    report = _check_report(tmp_path / "reports" / "tiny-1-test", TEST_IMAGES)
    assert report["source"] == str(model_dir)


@pytest.mark.slow  # a real run first (module fixture), then kimnet evaluate
def test_evaluate_a_weights_file_with_its_model_on_another_split(tiny_run, tmp_path):
    weights = tiny_run.run_dir / "checkpoints" / "last.weights.h5"
    out = tmp_path / "weights-report"
    args = ["--model=mobilenet", "--model_args=alpha=0.25", "--split=validation"]
    assert _evaluate(str(weights), *args, "--batch_size=32", "--max_batches=1", f"--out={out}") == 0
    assert _check_report(out, 32)["split"] == "validation"


@pytest.mark.slow  # a real run first (module fixture), then kimnet evaluate
def test_the_training_loop_call_writes_the_report_and_tensorboard(tiny_run, fmnist, tmp_path):
    splits = fmnist
    test = data.make(splits, image_size=32, batch_size=32, normalization="tf")["test"].take(1)
    one_hot = test.map(lambda x, y: (x, tf.one_hot(y, 10)))  # as the loop's batches are
    report = evaluation.evaluate_model(
        tiny_run.model,
        one_hot,
        class_names=splits.info.class_names,
        normalization="tf",
        out_dir=tmp_path / "report-test",
        log_dir=tmp_path / "tensorboard" / "test",
        step=0,
    )
    assert _check_report(tmp_path / "report-test", 32) == json.loads(json.dumps(report))
    assert "evaluation/mistakes" in _tensorboard_tags(tmp_path / "tensorboard" / "test")


def _spawn(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, "-m", "kimnet.cli", "evaluate", *args]
    return subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.slow  # a real run first (module fixture), then kimnet evaluate
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tiny_run, tmp_path, image_folder):
    weights = tiny_run.run_dir / "checkpoints" / "last.weights.h5"
    cases = {
        "missing": ([str(tmp_path / "nowhere")], "does not exist"),
        "split": ([str(tiny_run.run_dir), "--split=tset"], "--split='tset'"),
        "no model": ([str(weights)], "--model=NAME"),
        "wrong model": ([str(weights), "--model=mobilenet"], "does not fit mobilenet"),
        "classes": ([str(tiny_run.run_dir), f"--dataset=folder:{image_folder}"], "10 classes"),
    }
    work = {name: tmp_path / name.replace(" ", "_") for name in cases}
    for folder in work.values():
        folder.mkdir()
    running = {
        name: _spawn([*args, f"--out={work[name] / 'out'}"], work[name])
        for name, (args, _) in cases.items()
    }
    for name, process in running.items():
        stdout, stderr = process.communicate(timeout=300)
        lines = [line for line in stderr.splitlines() if line.startswith("error:")]
        assert process.returncode == 2, (name, stderr)
        assert len(lines) == 1 and cases[name][1] in lines[0], (name, stderr)
        assert list(work[name].iterdir()) == [], name
    assert not (tiny_run.run_dir / "report-tset").exists()
