"""Training runs: configuration, optimisers, callbacks and the loop."""

from kimnet.training.config import TrainConfig
from kimnet.training.loop import RunResult, build_model, train

__all__ = ["RunResult", "TrainConfig", "build_model", "train"]
