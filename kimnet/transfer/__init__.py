"""Transfer learning: pretrained sources, freezing strategies, gradual unfreezing,
multi-level features, and class/size subsets for transfer experiments."""

from kimnet.transfer import freezing, pretrained, subsets, unfreezing
from kimnet.transfer.finetune import cut_after

__all__ = ["cut_after", "freezing", "pretrained", "subsets", "unfreezing"]
