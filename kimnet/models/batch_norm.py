"""Batch normalisation on TensorFlow's fused kernel (``FusedBatchNormV3``).

Keras 3's TensorFlow backend computes ``BatchNormalization`` as separate element-wise
ops (moments, then ``tf.nn.batch_normalization``); a profile of kimnet's MobileNetV2
training step put those ops at about 45% of the step (issue 15). This layer computes
the same function with one fused kernel, forward and backward, wherever it can, and
otherwise defers to Keras' own implementation.

Compatibility is by construction: the class is a subclass of
``keras.layers.BatchNormalization`` that only replaces ``call``, so it has the same
constructor, config, weights (``gamma, beta, moving_mean, moving_variance`` in that
order) and default layer names. Its class name is also ``BatchNormalization`` on
purpose: Keras 3 keys ``.weights.h5`` entries by the snake-cased *class* name, so any
other name would stop existing weight files from loading.

All TensorFlow-specific code in kimnet's models lives in this module, and TensorFlow is
imported only on the fused path, so the layer works unchanged on other backends.
"""

from __future__ import annotations

from typing import Any

import keras

# Input dtypes FusedBatchNormV3 has CPU and GPU kernels for (forward and gradient);
# scale, offset and the statistics are always float32. float64 inputs fall back.
FUSED_INPUT_DTYPES = frozenset({"float16", "bfloat16", "float32"})


def can_fuse(layer: keras.layers.BatchNormalization, inputs: Any, mask: Any = None) -> bool:
    """Whether ``layer`` can compute ``inputs`` with the fused kernel, same results.

    The fused op normalises the last axis of a 4-D NHWC tensor over all other axes,
    so it covers exactly the 4-D channels-last case. Masks, batch renormalisation and
    ``synchronized`` (cross-replica statistics) need Keras' own moments, so they fall
    back.
    """
    if keras.backend.backend() != "tensorflow":
        return False
    if mask is not None or layer.renorm or layer.synchronized:
        return False
    shape = getattr(inputs, "shape", None)
    if shape is None or len(shape) != 4 or layer.axis not in (-1, 3) or shape[-1] is None:
        return False
    return keras.backend.standardize_dtype(inputs.dtype) in FUSED_INPUT_DTYPES


@keras.saving.register_keras_serializable(package="kimnet")
class BatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` computed with ``FusedBatchNormV3`` on TensorFlow.

    Same arguments, weights, config and results as the Keras layer (within float
    rounding: see ``tests/test_batch_norm.py``). On the TensorFlow backend, for 4-D
    channels-last inputs in float32, float16 or bfloat16 without a mask, renorm or
    ``synchronized``, both training and inference use the fused kernel; every other
    case runs ``keras.layers.BatchNormalization.call`` unchanged.
    """

    def call(self, inputs: Any, training: bool | None = None, mask: Any = None) -> Any:
        if not can_fuse(self, inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        # Keras runs a frozen layer (trainable=False) in inference mode whatever
        # `training` says; keep that rule.
        return self._fused_call(inputs, training=bool(training and self.trainable))

    def _fused_call(self, inputs: Any, training: bool) -> Any:
        import tensorflow as tf

        channels = inputs.shape[-1]
        # The kernel takes float32 scale/offset/statistics whatever the input dtype,
        # and computes the statistics in float32 internally: the same upcast Keras
        # does for float16/bfloat16 inputs, without materialising a float32 copy.
        scale = tf.cast(self.gamma, "float32") if self.scale else tf.ones((channels,), "float32")
        offset = tf.cast(self.beta, "float32") if self.center else tf.zeros((channels,), "float32")
        moving_mean = tf.cast(self.moving_mean, "float32")
        moving_variance = tf.cast(self.moving_variance, "float32")

        if not training:
            outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
                inputs,
                scale,
                offset,
                mean=moving_mean,
                variance=moving_variance,
                epsilon=self.epsilon,
                data_format="NHWC",
                is_training=False,
            )
            return tf.cast(outputs, self.compute_dtype)

        outputs, batch_mean, batch_variance = tf.compat.v1.nn.fused_batch_norm(
            inputs,
            scale,
            offset,
            epsilon=self.epsilon,
            data_format="NHWC",
            is_training=True,
        )
        # The kernel normalises with the biased batch variance but returns it
        # Bessel-corrected (times n/(n-1), n = batch*height*width). Keras tracks the
        # biased variance, so undo the correction before the moving-average update.
        # For n == 1 the kernel applies no correction and the variance is 0, so the
        # factor 0 is still right.
        shape = tf.shape(inputs)
        count = tf.cast(shape[0] * shape[1] * shape[2], "float32")
        batch_variance = batch_variance * ((count - 1.0) / tf.maximum(count, 1.0))
        # Same expression and order as Keras, so the moving statistics match it.
        self.moving_mean.assign(moving_mean * self.momentum + batch_mean * (1.0 - self.momentum))
        self.moving_variance.assign(
            moving_variance * self.momentum + batch_variance * (1.0 - self.momentum)
        )
        return tf.cast(outputs, self.compute_dtype)
