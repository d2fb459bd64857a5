"""Transfer learning: pretrained sources, freezing strategies, gradual unfreezing,
multi-level features, and class/size subsets for transfer experiments."""

from kimnet.transfer import freezing, schedule, sources, subsets
from kimnet.transfer.finetune import TransferConfig, cut_after, finetune

__all__ = [
    "TransferConfig",
    "cut_after",
    "finetune",
    "freezing",
    "schedule",
    "sources",
    "subsets",
]
