"""tf.distribute for a run: one device, the local GPUs, or several workers.

``runtime.strategy=multi_worker`` trains data-parallel across processes, on one
machine or many, with ``tf.distribute.MultiWorkerMirroredStrategy`` configured by the
``TF_CONFIG`` environment variable as TensorFlow documents it (``make
train-multiworker WORKERS=N`` starts N local workers: :mod:`kimnet.launch`). Every
worker runs the same steps in the same order, because each collective (the gradient
all-reduce, metric reductions, distributed evaluation) waits for all of them; only the
chief (task ``chief``, or worker 0 when the cluster has none) writes the run directory
and the export, the others write to temporary directories that are deleted at the end.
Checkpoints are read back by every worker, so the work directory must be one that all
workers see (one machine, or a shared filesystem).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import tensorflow as tf

from kimnet.errors import InputError
from kimnet.models import keras_internals
from kimnet.training import state


@dataclasses.dataclass(frozen=True)
class Worker:
    """This process's place in the cluster: ``index`` of ``count`` workers."""

    index: int = 0
    count: int = 1
    chief: bool = True

    def __str__(self) -> str:
        role = "chief" if self.chief else "worker"
        return f"{role} {self.index + 1} of {self.count}"


def tf_config() -> dict:
    """``TF_CONFIG``, checked for what MultiWorkerMirroredStrategy needs."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise InputError(
            "runtime.strategy=multi_worker needs TF_CONFIG (the cluster and this task, as "
            "TensorFlow's multi-worker guide describes); make train-multiworker WORKERS=N "
            "sets it for N workers on this machine."
        )
    try:
        config = json.loads(raw)
        task, cluster = config["task"], config["cluster"]
        tasks = cluster[task["type"]]
        if not 0 <= int(task["index"]) < len(tasks):
            raise IndexError(f"task index {task['index']} of {len(tasks)}")
    except (ValueError, KeyError, TypeError, IndexError) as error:
        raise InputError(f"TF_CONFIG is not a valid cluster description ({error}): {raw}") from None
    return config


def make_strategy(name: str) -> tf.distribute.Strategy:
    """``default``: one device; ``mirrored``: all local GPUs; ``multi_worker``: the
    workers of ``TF_CONFIG``. Create it before any other TensorFlow op: the multi-worker
    strategy configures the runtime's collectives, which must happen first."""
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        tf_config()
        keras_internals.fix_multi_worker_fit()
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def worker(strategy: tf.distribute.Strategy) -> Worker:
    """Where this process stands; a single-process strategy is its own chief."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return Worker()
    spec = resolver.cluster_spec().as_dict()
    count = sum(len(spec.get(kind, [])) for kind in ("chief", "worker"))
    index = resolver.task_id + (1 if resolver.task_type == "worker" and "chief" in spec else 0)
    return Worker(index=index, count=count, chief=bool(strategy.extended.should_checkpoint))


def agreement(strategy: tf.distribute.Strategy) -> Callable[[bool], bool]:
    """A function of a local flag that is true on every worker when it is true on any:
    a stop requested on one worker stops all of them at the same step (a worker that
    stopped alone would leave the others waiting in the next all-reduce)."""
    if worker(strategy).count == 1:
        return bool

    def any_worker(flag: bool) -> bool:
        return float(strategy.reduce("SUM", tf.constant(float(flag)), axis=None)) > 0

    return any_worker


def fingerprint(weights: list) -> float:
    """48 bits of a hash of every weight's bytes, as a float (exact in float64)."""
    digest = hashlib.sha256()
    for weight in weights:
        digest.update(weight.tobytes())
    return float(int.from_bytes(digest.digest()[:6], "big"))


def check_same_weights(strategy: tf.distribute.Strategy, weights: list) -> None:
    """Raises unless every worker holds exactly these ``weights`` (one all-gather).

    Synchronous data-parallel training keeps the copies identical; a difference means
    the workers went out of step, and the chief's export would not be what they trained.
    """
    if worker(strategy).count == 1:
        return
    mine = tf.constant([fingerprint(weights)], tf.float64)
    everyone = strategy.gather(mine, axis=0).numpy()
    if len(set(everyone.tolist())) != 1:
        raise RuntimeError(
            f"The workers' weights differ after training (fingerprints {everyone.tolist()}); "
            "nothing was exported."
        )


def shard_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Each worker keeps every n-th batch of the whole pipeline. Not by file: kimnet's
    pipelines assert the element counts of their sources, and with TFRecord shards of
    unequal size a worker's share of the files would not be its share of the images, so
    an epoch would no longer be one pass over the training set."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


@contextlib.contextmanager
def own_destinations(
    who: Worker, run_dir: Path, export_root: Path, *, fresh: bool
) -> Iterator[tuple[Path, Path]]:
    """The run directory and export root this process writes: the chief's own, or a
    temporary pair for any other worker, deleted when the run ends. A worker that
    resumes (not ``fresh``) starts from a copy of the chief's saved state."""
    if who.chief:
        yield run_dir, export_root
        return
    scratch = Path(tempfile.mkdtemp(prefix=f"kimnet-worker{who.index}-"))
    own_run_dir = scratch / "runs" / run_dir.name
    try:
        # Only a run with saved state: the chief deletes one killed before its first save.
        if not fresh and state.State.read(run_dir / "checkpoints") is not None:
            ignore = shutil.ignore_patterns("tensorboard", "report-*", "*.png")
            shutil.copytree(run_dir, own_run_dir, ignore=ignore)
        yield own_run_dir, scratch / "savedmodels" / export_root.name
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
