"""The one place kimnet reads Keras internals, for what no public API offers.

Keras 3 has no public way to list every call of a layer in the graphs it was used in
(``layer.output`` refuses layers called more than once, e.g. a nested model used
twice). :func:`call_output_shapes` reads the private ``Layer._inbound_nodes`` for
that. :func:`fix_multi_worker_fit` mends two functions of Keras' TensorFlow trainer
that keep ``fit`` from running under ``MultiWorkerMirroredStrategy``
(keras-team/keras#20585). ``tests/test_keras_internals.py`` fails with a clear message
when a Keras upgrade removes or changes either.
"""

from __future__ import annotations

import keras

ATTRIBUTE = "_inbound_nodes"


class KerasInternalsError(RuntimeError):
    """A Keras upgrade changed an internal kimnet relies on (see this module)."""


def call_output_shapes(layer: keras.layers.Layer) -> list[tuple[int | None, ...]]:
    """Shape of the (first) output of each call of ``layer``; one entry if never traced."""
    nodes = getattr(layer, ATTRIBUTE, None)
    if nodes is None:
        raise KerasInternalsError(
            f"Keras {keras.__version__} layers have no '{ATTRIBUTE}'; update "
            f"kimnet.models.keras_internals.call_output_shapes for this Keras version."
        )
    try:
        shapes = [tuple(node.output_tensors[0].shape) for node in nodes]
    except (AttributeError, IndexError, TypeError) as error:
        raise KerasInternalsError(
            f"Keras {keras.__version__} changed the nodes in '{ATTRIBUTE}' ({error}); update "
            f"kimnet.models.keras_internals.call_output_shapes for this Keras version."
        ) from error
    return shapes or [tuple(layer.output.shape)]


def fix_multi_worker_fit() -> None:
    """Lets ``Model.fit`` (and evaluate) run under ``MultiWorkerMirroredStrategy``.

    Keras 3.15's TensorFlow trainer fails there in two places: before the first step
    it averages a distributed *data batch* across workers only to learn its shapes
    (``strategy.reduce`` refuses per-replica values there), and after each step it
    reduces the scalar logs with ``axis=0``, which a scalar does not have. Here the
    shapes come from this worker's own batch, and scalars are averaged across workers
    without an axis. Idempotent; the trainer is left unchanged otherwise.
    """
    from keras.src.backend.tensorflow import trainer

    _require(
        trainer, ("TensorFlowTrainer", "reduce_per_replica", "_collective_all_reduce_multi_worker")
    )
    _require(trainer.TensorFlowTrainer, ("_maybe_symbolic_build", "_symbolic_build"))
    if getattr(trainer.reduce_per_replica, "kimnet_fixed", False):
        return
    import tensorflow as tf

    keras_reduce = trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        multi_worker = trainer._collective_all_reduce_multi_worker(strategy)
        if not (multi_worker and reduction in ("auto", "mean")):
            return keras_reduce(values, strategy, reduction)

        def mean(value):
            axis = None if value.shape.rank == 0 else 0
            return strategy.reduce("MEAN", value, axis=axis)

        return keras.tree.map_structure(mean, values)

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self._distribute_strategy is None:
            return
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = keras.tree.map_structure(_local_part, next(batches))
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def _local_part(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return value.values[0]
        return value

    reduce_per_replica.kimnet_fixed = True
    trainer.reduce_per_replica = reduce_per_replica
    trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build


def _require(owner, names: tuple[str, ...]) -> None:
    missing = [name for name in names if not hasattr(owner, name)]
    if missing:
        raise KerasInternalsError(
            f"Keras {keras.__version__} has no {', '.join(missing)} in {owner.__name__}; "
            f"update kimnet.models.keras_internals.fix_multi_worker_fit for this Keras version."
        )
