"""The optimiser of a phase: AdamW or Nesterov SGD, warm-up then cosine decay."""

from __future__ import annotations

from collections.abc import Mapping

import keras
import ml_collections

# Batch-norm scales/offsets and biases are not decayed (standard practice).
NOT_DECAYED = ("gamma", "beta", "bias")


def learning_rate_schedule(
    peak: float, epochs: int, warmup_epochs: float, steps_per_epoch: int
) -> keras.optimizers.schedules.LearningRateSchedule:
    """Linear warm-up from 0 over ``warmup_epochs``, then cosine decay to 0 at the end."""
    total = max(1, epochs * steps_per_epoch)
    warmup = min(int(warmup_epochs * steps_per_epoch), total - 1)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else peak,
        decay_steps=total - warmup,
        warmup_target=peak if warmup else None,
        warmup_steps=warmup,
    )


class _PerVariableRates:
    """Optimizer mixin: learning-rate multipliers per variable path (discriminative rates)."""

    def __init__(self, *args, lr_multipliers: Mapping[str, float] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lr_multipliers = dict(lr_multipliers or {})
        self._scales: dict[int, float] = {}

    def build(self, variables):
        super().build(variables)
        # update_step may receive the backend's variable (TensorFlow: the tf.Variable
        # behind the Keras one), so both objects are keyed.
        for variable in variables:
            scale = self.lr_multipliers.get(variable.path)
            if scale is not None:
                self._scales[id(variable)] = self._scales[id(variable.value)] = scale

    def update_step(self, gradient, variable, learning_rate):
        scale = self._scales.get(id(variable))
        if scale is not None:
            learning_rate = learning_rate * scale
        return super().update_step(gradient, variable, learning_rate)


class ScaledAdamW(_PerVariableRates, keras.optimizers.AdamW):
    pass


class ScaledSGD(_PerVariableRates, keras.optimizers.SGD):
    pass


def make_optimizer(
    optim: ml_collections.ConfigDict,
    schedule: keras.optimizers.schedules.LearningRateSchedule,
    lr_multipliers: Mapping[str, float] | None = None,
) -> keras.optimizers.Optimizer:
    """The ``optim`` section's optimiser with decoupled weight decay (not on BN or biases).

    ``lr_multipliers`` (variable path -> factor) scale the learning rate of single
    variables, e.g. earlier stages in fine-tuning.
    """
    if optim.name == "sgd":
        optimizer = ScaledSGD(
            schedule,
            momentum=optim.momentum,
            nesterov=True,
            weight_decay=optim.weight_decay,
            lr_multipliers=lr_multipliers,
        )
    else:
        optimizer = ScaledAdamW(
            schedule, weight_decay=optim.weight_decay, lr_multipliers=lr_multipliers
        )
    optimizer.exclude_from_weight_decay(var_names=list(NOT_DECAYED))
    return optimizer
