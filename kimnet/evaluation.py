"""Evaluation reports: top-1/top-5, per-class precision/recall/F1, the most confused
pairs, a confusion matrix and the highest-loss images (timm's ``validate.py`` and
fastai's ``ClassificationInterpretation``).

One pass over a split (:func:`collect`) keeps a confusion matrix, the top-5 hits,
the summed loss and the ``keep`` highest-loss images, never all images or all
probabilities. :func:`write_report` turns that into a folder:

- ``report.md``: the numbers for people;
- ``report.json``: the same numbers for programs;
- ``confusion_matrix.png``: true classes down, predicted across, counts in cells;
- ``mistakes.png``: the highest-loss images with true and predicted names.

:func:`evaluate_model` does both for a trained ``keras.Model`` (the end of a
training run), :func:`write_tensorboard` adds the pictures and test scalars to a
TensorBoard log dir, and :func:`plot_curves` draws ``history.csv`` as ``curves.png``.
Plots are matplotlib figures drawn by Agg outside pyplot, imported only when drawing.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf

from kimnet import fileio

if TYPE_CHECKING:
    import keras
    from matplotlib.figure import Figure

REPORT_MD = "report.md"
REPORT_JSON = "report.json"
CONFUSION_PNG = "confusion_matrix.png"
MISTAKES_PNG = "mistakes.png"
MISTAKES_KEPT = 16
CONFUSED_PAIRS = 10
# Cells show their counts up to this many classes; beyond it only colours.
ANNOTATE_UP_TO = 30
_EPSILON = 1e-7

# The constants of keras.applications.imagenet_utils.preprocess_input, to undo it.
_TORCH_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_TORCH_STD = np.array([0.229, 0.224, 0.225], np.float32)
_CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)

Predict = Callable[[tf.Tensor], np.ndarray]
"""Images of one batch -> class probabilities ``[batch, classes]``."""


@dataclasses.dataclass
class Mistake:
    """One of the highest-loss images: pixels ``uint8 [H, W, 3]``, labels and probabilities."""

    image: np.ndarray
    true: int
    predicted: int
    probability: float  # of the predicted class
    true_probability: float
    loss: float


@dataclasses.dataclass
class Evaluation:
    """What one pass over a split leaves: enough for every number and picture of a report."""

    class_names: list[str]
    confusion: np.ndarray  # int64 [classes, classes]: rows true, columns predicted
    top5_hits: int
    loss_sum: float
    mistakes: list[Mistake]

    @property
    def count(self) -> int:
        return int(self.confusion.sum())

    @property
    def top1(self) -> float:
        return float(np.trace(self.confusion) / max(self.count, 1))

    @property
    def top5(self) -> float:
        return self.top5_hits / max(self.count, 1)

    @property
    def top_k(self) -> int:
        return min(5, len(self.class_names))

    @property
    def loss(self) -> float:
        return self.loss_sum / max(self.count, 1)


def as_labels(targets: Any) -> np.ndarray:
    """Integer labels ``[batch]`` from labels, one-hot targets, or a tuple of either
    (a multi-output model's targets: the first is the classifier's)."""
    if isinstance(targets, (tuple, list)):
        targets = targets[0]
    targets = np.asarray(targets)
    if targets.ndim == 2:
        targets = targets.argmax(axis=-1)
    return targets.astype(np.int64)


def denormalize(images: np.ndarray, normalization: str) -> np.ndarray:
    """The inverse of :func:`kimnet.data.normalize`: model inputs -> RGB pixels in [0, 255]."""
    x = np.asarray(images, np.float32)
    if normalization == "tf":
        x = (x + 1.0) * 127.5
    elif normalization == "torch":
        x = (x * _TORCH_STD + _TORCH_MEAN) * 255.0
    elif normalization == "caffe":
        x = (x + _CAFFE_MEAN_BGR)[..., ::-1]
    elif normalization != "raw":
        raise ValueError(f"Unknown normalization '{normalization}'.")
    return np.clip(x, 0.0, 255.0)


class _Worst:
    """The ``keep`` highest-loss images seen so far."""

    def __init__(self, keep: int, to_pixels: Callable[[np.ndarray], np.ndarray]):
        self.keep = keep
        self.to_pixels = to_pixels
        self.items: list[Mistake] = []

    def add(self, images: Any, labels: np.ndarray, probabilities: np.ndarray, losses) -> None:
        if self.keep <= 0:
            return
        floor = self.items[-1].loss if len(self.items) == self.keep else -np.inf
        candidates = np.argsort(-losses)[: self.keep]
        candidates = [i for i in candidates if losses[i] > floor]
        if not candidates:
            return
        pixels = self.to_pixels(np.asarray(images)[candidates])
        for pixel, i in zip(pixels, candidates, strict=True):
            predicted = int(probabilities[i].argmax())
            self.items.append(
                Mistake(
                    image=_rgb_uint8(pixel),
                    true=int(labels[i]),
                    predicted=predicted,
                    probability=float(probabilities[i, predicted]),
                    true_probability=float(probabilities[i, labels[i]]),
                    loss=float(losses[i]),
                )
            )
        self.items = sorted(self.items, key=lambda m: -m.loss)[: self.keep]


def _rgb_uint8(pixels: np.ndarray) -> np.ndarray:
    pixels = np.clip(np.round(pixels), 0, 255).astype(np.uint8)
    return np.repeat(pixels, 3, axis=-1) if pixels.shape[-1] == 1 else pixels[..., :3]


def collect(
    batches: Iterable,
    predict: Predict,
    class_names: list[str] | tuple[str, ...],
    *,
    to_pixels: Callable[[np.ndarray], np.ndarray] = np.asarray,
    keep: int = MISTAKES_KEPT,
) -> Evaluation:
    """One pass over ``(images, targets)`` batches: confusion matrix, top-5 hits, summed
    loss and the ``keep`` highest-loss images (``to_pixels`` turns model inputs back
    into displayable [0, 255] pixels; only the kept images are converted)."""
    classes = len(class_names)
    confusion = np.zeros((classes, classes), np.int64)
    top5_hits, loss_sum = 0, 0.0
    worst = _Worst(keep, to_pixels)
    k = min(5, classes)
    for images, targets in batches:
        labels = as_labels(targets)
        probabilities = np.asarray(predict(images), np.float32)
        if probabilities.shape != (len(labels), classes):
            raise ValueError(
                f"Predictions of shape {probabilities.shape} for {len(labels)} images of "
                f"{classes} classes."
            )
        np.add.at(confusion, (labels, probabilities.argmax(axis=-1)), 1)
        top = np.argpartition(-probabilities, k - 1, axis=-1)[:, :k]
        top5_hits += int((top == labels[:, None]).any(axis=-1).sum())
        losses = -np.log(np.clip(probabilities[np.arange(len(labels)), labels], _EPSILON, 1.0))
        loss_sum += float(losses.sum())
        worst.add(images, labels, probabilities, losses)
    return Evaluation(list(class_names), confusion, top5_hits, loss_sum, worst.items)


def model_predictor(model: keras.Model) -> Predict:
    """Probabilities from a ``keras.Model`` whose first output is the class probabilities.

    A model trained by several workers predicts on this worker alone: its
    ``predict_on_batch`` would gather every worker's copy of the same batch."""
    strategy = getattr(model, "distribute_strategy", None)
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        call = tf.function(lambda images: model(images, training=False))
    else:
        call = model.predict_on_batch

    def predict(images: tf.Tensor) -> np.ndarray:
        outputs = call(images)
        if isinstance(outputs, (list, tuple)):
            outputs = outputs[0]
        return np.asarray(outputs, np.float32)

    return predict


def per_class(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support of every class (0 where undefined)."""
    confusion = np.asarray(confusion, np.float64)
    hits = np.diag(confusion)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    recall = np.divide(hits, support, out=np.zeros_like(hits), where=support > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(hits), where=both > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(int)}


def most_confused(
    confusion: np.ndarray, class_names: list[str], count: int = CONFUSED_PAIRS
) -> list[dict[str, Any]]:
    """The ``count`` largest off-diagonal cells, largest first: ``{true, predicted, count}``."""
    off = np.array(confusion, np.int64)
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None, kind="stable")[:count]
    rows, columns = np.unravel_index(order, off.shape)
    return [
        {"true": class_names[r], "predicted": class_names[c], "count": int(off[r, c])}
        for r, c in zip(rows, columns, strict=True)
        if off[r, c] > 0
    ]


def summary(evaluation: Evaluation, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every number of the report, as ``report.json`` holds it."""
    scores = per_class(evaluation.confusion)
    names = evaluation.class_names
    classes = [
        {
            "name": name,
            **{key: round(float(scores[key][i]), 4) for key in ("precision", "recall", "f1")},
            "support": int(scores["support"][i]),
        }
        for i, name in enumerate(names)
    ]
    return {
        **(metadata or {}),
        "images": evaluation.count,
        "top1": round(evaluation.top1, 4),
        "top5": round(evaluation.top5, 4),
        "top_k": evaluation.top_k,
        "cross_entropy": round(evaluation.loss, 4),
        "macro_f1": round(float(scores["f1"].mean()), 4),
        "classes": classes,
        "most_confused": most_confused(evaluation.confusion, names),
        "confusion_matrix": evaluation.confusion.tolist(),
        "mistakes": [
            {
                "true": names[m.true],
                "predicted": names[m.predicted],
                "probability": round(m.probability, 4),
                "true_probability": round(m.true_probability, 4),
                "loss": round(m.loss, 4),
            }
            for m in evaluation.mistakes
        ],
    }


def markdown(report: dict[str, Any]) -> str:
    """``report.md``: headline numbers, the per-class table and the most confused pairs."""
    what = ", ".join(
        f"{key} {report[key]}" for key in ("model", "dataset", "split") if key in report
    )
    lines = [
        "# Evaluation report",
        "",
        *([f"{what}.", ""] if what else []),
        f"- Images: {report['images']}",
        f"- Top-1: {report['top1']:.4f}",
        f"- Top-{report['top_k']}: {report['top5']:.4f}",
        f"- Cross-entropy: {report['cross_entropy']:.4f}",
        f"- Macro F1: {report['macro_f1']:.4f}",
        "",
        "## Per class",
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {c['name']} | {c['precision']:.4f} | {c['recall']:.4f} | {c['f1']:.4f} | "
            f"{c['support']} |"
            for c in report["classes"]
        ),
        "",
        "## Most confused (true → predicted)",
        "",
        "| true | predicted | count |",
        "|---|---|---:|",
        *(f"| {p['true']} | {p['predicted']} | {p['count']} |" for p in report["most_confused"]),
        "",
        f"![confusion matrix]({CONFUSION_PNG})",
        "",
        f"![highest-loss images]({MISTAKES_PNG})",
        "",
    ]
    return "\n".join(lines)


def _figure(**kwargs: Any) -> Figure:
    """A matplotlib figure outside pyplot: drawn by Agg, no global state, no display."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def _save(figure: Figure, path: str | os.PathLike, dpi: int = 100) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    path = Path(path)
    fileio.write_bytes_atomic(path, buffer.getvalue())
    return path


def plot_confusion_matrix(
    confusion: np.ndarray, class_names: list[str], out_png: str | os.PathLike
) -> Path:
    """Counts with true classes down and predicted across; cells show counts up to
    :data:`ANNOTATE_UP_TO` classes, beyond that the colours carry them."""
    from matplotlib.colors import PowerNorm

    classes = len(class_names)
    side = min(4.0 + 0.4 * classes, 24.0)
    font = max(4.0, min(10.0, 300.0 / max(classes, 1)))
    figure = _figure(figsize=(side + 1.5, side))
    axes = figure.subplots()
    # Square-root colours: a few confusions stay visible beside a full diagonal.
    norm = PowerNorm(0.5, vmin=0, vmax=max(int(np.max(confusion)), 1))
    shown = axes.imshow(confusion, cmap="Blues", norm=norm, interpolation="nearest")
    figure.colorbar(shown, ax=axes, fraction=0.046, pad=0.04)
    ticks = np.arange(classes)
    axes.set_xticks(ticks, labels=class_names, rotation=90, fontsize=font)
    axes.set_yticks(ticks, labels=class_names, fontsize=font)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(f"Confusion matrix ({int(np.sum(confusion))} images)")
    if classes <= ANNOTATE_UP_TO:
        for (row, column), value in np.ndenumerate(confusion):
            if value:
                color = "white" if norm(value) > 0.6 else "black"
                axes.text(
                    column, row, str(value), ha="center", va="center", fontsize=font, color=color
                )
    return _save(figure, out_png)


def plot_mistakes(
    mistakes: list[Mistake], class_names: list[str], out_png: str | os.PathLike
) -> Path:
    """A grid of the highest-loss images, each titled with its true and predicted class and
    the probability the model gave each."""
    columns = max(1, min(4, len(mistakes)))
    rows = max(1, -(-len(mistakes) // columns))
    figure = _figure(figsize=(2.4 * columns, 2.6 * rows))
    axes = figure.subplots(rows, columns, squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, mistake in zip(axes.flat, mistakes, strict=False):
        axis.imshow(mistake.image, interpolation="nearest")
        axis.set_title(
            f"true {class_names[mistake.true]} ({mistake.true_probability:.2f})\n"
            f"pred {class_names[mistake.predicted]} ({mistake.probability:.2f})",
            fontsize=9,
        )
    if not mistakes:
        axes.flat[0].text(0.5, 0.5, "no images", ha="center", va="center")
    figure.suptitle("Highest-loss images: true and predicted class (probability)")
    figure.tight_layout()
    return _save(figure, out_png, dpi=80)


def write_report(
    evaluation: Evaluation, out_dir: str | os.PathLike, metadata: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Writes ``report.md``, ``report.json``, ``confusion_matrix.png`` and ``mistakes.png``
    to ``out_dir`` (created; earlier reports there are replaced); returns the summary."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = summary(evaluation, metadata)
    plot_confusion_matrix(evaluation.confusion, evaluation.class_names, out / CONFUSION_PNG)
    plot_mistakes(evaluation.mistakes, evaluation.class_names, out / MISTAKES_PNG)
    fileio.write_json_atomic(out / REPORT_JSON, report)
    fileio.write_text_atomic(out / REPORT_MD, markdown(report))
    return report


def write_tensorboard(
    report_dir: str | os.PathLike, log_dir: str | os.PathLike, step: int = 0
) -> None:
    """Adds a written report to TensorBoard: its two pictures (Images tab) and the test
    ``epoch_top1`` / ``epoch_top5`` / ``cross_entropy`` scalars at ``step``, in ``log_dir``
    (e.g. ``runs/<name>/tensorboard/test``, beside Keras' ``train`` and ``validation``)."""
    report_dir = Path(report_dir)
    report = json.loads((report_dir / REPORT_JSON).read_text())
    with tf.summary.create_file_writer(str(log_dir)).as_default():
        for name in (CONFUSION_PNG, MISTAKES_PNG):
            image = tf.io.decode_png((report_dir / name).read_bytes(), channels=3)
            tf.summary.image(f"evaluation/{Path(name).stem}", image[None], step=step)
        tf.summary.scalar("epoch_top1", report["top1"], step=step)
        tf.summary.scalar("epoch_top5", report["top5"], step=step)
        tf.summary.scalar("evaluation/cross_entropy", report["cross_entropy"], step=step)
        tf.summary.flush()


def evaluate_model(
    model: keras.Model,
    batches: tf.data.Dataset,
    *,
    class_names: list[str] | tuple[str, ...],
    normalization: str,
    out_dir: str | os.PathLike,
    log_dir: str | os.PathLike | None = None,
    step: int = 0,
    metadata: dict[str, Any] | None = None,
    keep: int = MISTAKES_KEPT,
) -> dict[str, Any]:
    """The report of a trained ``keras.Model`` on one split, in one pass; returns its summary.

    Args:
        model: A classifier whose first output is the class probabilities.
        batches: ``(images, targets)`` as the model takes them: images normalised with
            ``normalization`` (``kimnet.data.make``'s output); targets integer labels,
            one-hot, or a tuple of those (GoogLeNet's).
        class_names: Names in label order.
        normalization: The model family's normalisation, undone for ``mistakes.png``.
        out_dir: The report folder (:func:`write_report`).
        log_dir: When given, :func:`write_tensorboard` adds the report there at ``step``.
        metadata: Extra facts for the report's head (``model``, ``dataset``, ``split``).
    """
    evaluation = collect(
        batches,
        model_predictor(model),
        class_names,
        to_pixels=lambda images: denormalize(images, normalization),
        keep=keep,
    )
    report = write_report(evaluation, out_dir, metadata)
    if log_dir is not None:
        write_tensorboard(out_dir, log_dir, step)
    return report


def _column(rows: list[dict[str, str]], *names: str) -> np.ndarray | None:
    """The first of ``names`` present in the CSV (also with a multi-output ``predictions_``)."""
    for name in names:
        for key in (name, name.replace("val_", "val_predictions_"), f"predictions_{name}"):
            if rows and key in rows[0]:
                return np.array([float(row[key] or "nan") for row in rows])
    return None


def plot_curves(history_csv_path: str | os.PathLike, out_png: str | os.PathLike) -> Path:
    """``curves.png``: loss and top-1 per epoch, training and validation, from a Keras
    ``CSVLogger`` file (``epoch, loss, top1, ..., val_loss, val_top1``); with a per-epoch
    test curve (``test_top1``, ``elapsed_seconds``), also test top-1 per epoch and a third
    panel of test top-1 against training time."""
    with open(history_csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise ValueError(f"'{history_csv_path}' holds no epochs.")
    epochs = np.array([int(row["epoch"]) for row in rows]) + 1
    test, elapsed = _column(rows, "test_top1"), _column(rows, "elapsed_seconds")
    timed = test is not None and elapsed is not None
    figure = _figure(figsize=(15 if timed else 10, 4))
    axes = figure.subplots(1, 3 if timed else 2)
    for axis, metric, label in ((axes[0], "loss", "loss"), (axes[1], "top1", "top-1")):
        for prefix, split in (("", "train"), ("val_", "validation"), ("test_", "test")):
            values = _column(rows, prefix + metric)
            if values is not None:
                axis.plot(epochs, values, marker="o", label=split)
        axis.set_xlabel("epoch")
        axis.set_title(label)
        axis.grid(alpha=0.3)
        axis.legend()
    if timed:
        axes[2].plot(elapsed / 60, test, marker="o", color="C2")
        axes[2].set_xlabel("training time (min)")
        axes[2].set_title("test top-1 against time")
        axes[2].grid(alpha=0.3)
    return _save(figure, out_png)
