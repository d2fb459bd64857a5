"""The settings of one training run, validated before anything is built."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from kimnet.data import augment
from kimnet.errors import InputError
from kimnet.models import registry

OPTIMIZERS = ("sgd", "adamw")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("default", "mirrored")
SMALL_INPUT = ("auto", "true", "false")
# Below this image size `small_input=auto` switches on a family's small-input stem.
SMALL_INPUT_BELOW = 96
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run (the pipeline's flags, resolved)."""

    model: str = "mobilenetv2"
    dataset: str = "fashion_mnist"
    data_dir: str | None = None
    image_size: int = 32
    epochs: int = 3
    batch_size: int = 128
    optimizer: str = "adamw"
    learning_rate: float = 2e-3
    momentum: float = 0.9
    warmup_epochs: float = 0.5
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    augment: str = "flip_h,crop"
    dropout: float = 0.0
    small_input: str = "auto"
    model_args: dict[str, Any] = dataclasses.field(default_factory=dict)
    precision: str = "float32"
    strategy: str = "default"
    seed: int = 0
    run_name: str | None = None
    workdir: str = "runs"
    export_dir: str = "savedmodels"
    export_version: int | None = None
    export: bool = True  # False: no SavedModel (studies that run many short trainings)
    overwrite: bool = False
    bn_recalibration_batches: int = 20
    # Shrinks the run for a quick local check: a few batches of each split.
    quick: bool = False
    steps_per_epoch: int | None = None

    def resolved_run_name(self) -> str:
        if self.run_name:
            return self.run_name
        short = {"fashion_mnist": "fmnist"}.get(self.dataset)
        if short is None:
            short = re.sub(r"[^A-Za-z0-9._-]+", "-", self.dataset.split("/")[-1]).strip("-")
        return f"{short}-{self.model}"

    def use_small_input(self) -> bool:
        if self.small_input == "auto":
            return self.image_size < SMALL_INPUT_BELOW
        return self.small_input == "true"

    def validate(self) -> None:
        """Raises ``InputError`` with the problem and the fix for the first bad setting."""
        spec = registry.get(self.model)  # unknown names list the known ones
        checks = [
            (self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}."),
            (self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}."),
            (
                8 <= self.image_size <= 1024,
                f"image_size must be between 8 and 1024 pixels, got {self.image_size}.",
            ),
            (self.learning_rate > 0, f"learning_rate must be positive, got {self.learning_rate}."),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}."),
            (
                0 <= self.label_smoothing < 1,
                f"label_smoothing must be in [0, 1), got {self.label_smoothing}.",
            ),
            (0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}."),
            (self.warmup_epochs >= 0, f"warmup_epochs must be >= 0, got {self.warmup_epochs}."),
            (
                self.optimizer in OPTIMIZERS,
                f"Unknown optimizer '{self.optimizer}'. Known: {', '.join(OPTIMIZERS)}.",
            ),
            (
                self.precision in PRECISIONS,
                f"Unknown precision '{self.precision}'. Known: {', '.join(PRECISIONS)}.",
            ),
            (
                self.strategy in STRATEGIES,
                f"Unknown strategy '{self.strategy}'. Known: {', '.join(STRATEGIES)}.",
            ),
            (
                self.small_input in SMALL_INPUT,
                f"small_input must be one of {', '.join(SMALL_INPUT)}, got '{self.small_input}'.",
            ),
            (
                _RUN_NAME.match(self.resolved_run_name()) is not None,
                f"Run name '{self.resolved_run_name()}' may hold only letters, digits, '.', '_' "
                f"and '-'; pass --run_name.",
            ),
            (
                self.export_version is None or self.export_version >= 1,
                f"export_version must be a positive integer, got {self.export_version}.",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise InputError(message)
        min_size = spec.min_size
        if self.image_size < min_size and not self.use_small_input():
            raise InputError(
                f"image_size {self.image_size} is below {self.model}'s minimum of {min_size}; "
                f"raise --image_size or pass --small_input=true."
            )
        augment.parse(self.augment)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "run_name": self.resolved_run_name()}
