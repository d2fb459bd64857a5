"""The Keras internals kimnet relies on (kimnet.models.keras_internals) still work.

If this fails after a Keras upgrade, the message says which internal changed; fix
``kimnet/models/keras_internals.py``, the only module that reads it.
"""

from __future__ import annotations

import keras
import pytest

from kimnet.models import keras_internals
from kimnet.models.zoo import count_macs


def test_call_output_shapes_lists_every_call_of_a_shared_layer():
    shared = keras.layers.Dense(4, name="shared")
    a, b = keras.Input((3,)), keras.Input((3,))
    keras.Model([a, b], [shared(a), shared(b)])
    assert keras_internals.call_output_shapes(shared) == [(None, 4), (None, 4)]


def test_call_output_shapes_of_a_nested_model_used_twice():
    inner_input = keras.Input((8, 8, 3))
    inner = keras.Model(inner_input, keras.layers.Conv2D(2, 3, name="conv")(inner_input))
    outer_input = keras.Input((8, 8, 3))
    outer = keras.Model(outer_input, [inner(outer_input), inner(outer_input)])
    assert len(keras_internals.call_output_shapes(inner)) == 2
    # 8x8 'valid' 3x3 -> 6x6 positions x 27 x 2 channels, once per call.
    assert count_macs(outer) == 2 * 6 * 6 * 27 * 2


def test_the_multi_worker_fix_finds_what_it_mends_and_applies_once():
    from keras.src.backend.tensorflow import trainer

    keras_internals.fix_multi_worker_fit()
    fixed = trainer.reduce_per_replica
    keras_internals.fix_multi_worker_fit()
    assert trainer.reduce_per_replica is fixed and fixed.kimnet_fixed
    assert trainer.TensorFlowTrainer._maybe_symbolic_build.__module__ == keras_internals.__name__
    # Without several workers the trainer's own reduction runs, unchanged.
    import tensorflow as tf

    value = tf.constant([1.0, 3.0])
    assert fixed(value, tf.distribute.get_strategy(), "auto") is value


def test_a_missing_internal_is_named():
    class Trainer:
        pass

    with pytest.raises(keras_internals.KerasInternalsError, match="_maybe_symbolic_build"):
        keras_internals._require(Trainer, ("_maybe_symbolic_build",))
