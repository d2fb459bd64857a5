"""The transfer study: Fashion-MNIST classes 0-4 as the source task, 5-9 as the target.

The source task (T-shirt/top, trouser, pullover, dress, coat) and the target
task (sandal, shirt, sneaker, bag, ankle boot) share no class. A MobileNetV2
(alpha 0.35, 32 px) is pretrained on the source, then every method trains on
the first N target training images for the same number of epochs, for each N
in ``target_sizes``, and is tested on the target test images.

``get_config(quick=True)`` is the same experiment shrunk to a smoke test.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class TransferStudyConfig:
    name: str = "transfer-study"
    dataset: str = "fashion_mnist"
    model: str = "mobilenetv2"
    model_args: dict = dataclasses.field(default_factory=lambda: {"alpha": 0.35})
    image_size: int = 32
    augment: str = "flip_h,crop"
    seed: int = 0
    source_classes: tuple[int, ...] = (0, 1, 2, 3, 4)
    target_classes: tuple[int, ...] = (5, 6, 7, 8, 9)
    # Pretraining on the source task.
    pretrain_epochs: int = 2
    pretrain_steps_per_epoch: int = 50
    pretrain_batch_size: int = 64
    # Target task: training-set sizes and the epochs every method gets at each size.
    target_sizes: tuple[int, ...] = (100, 400)
    target_epochs: tuple[int, ...] = (6, 3)
    batch_size: int = 32
    learning_rate: float = 5e-3
    # Gradual unfreezing: (first trainable stage, share of the epochs) per phase.
    gradual: tuple[tuple[str, float], ...] = (("head", 1 / 3), ("stage4", 1 / 3), ("all", 1 / 3))
    unfreeze_lr_scale: float = 0.5
    # Frozen features cut after each of these stages (the last one is the frozen backbone).
    feature_stages: tuple[str, ...] = ("stage1", "stage2", "stage3", "stage4", "stage5")
    # Methods to run (subset of kimnet.transfer.study.METHODS).
    methods: tuple[str, ...] = ("scratch", "finetune", "gradual", "features")
    validation_examples: int = 64
    test_examples: int = 1000
    bn_recalibration_batches: int = 2


def get_config(quick: bool = False) -> TransferStudyConfig:
    config = TransferStudyConfig()
    if quick:
        config = dataclasses.replace(
            config,
            name="transfer-study-quick",
            pretrain_epochs=1,
            pretrain_steps_per_epoch=30,
            target_sizes=(100, 200),
            target_epochs=(2, 2),
            gradual=(("head", 0.5), ("all", 0.5)),
            feature_stages=("stage3", "stage5"),
            validation_examples=64,
            test_examples=300,
        )
    return config
