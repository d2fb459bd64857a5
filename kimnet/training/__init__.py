"""Training runs: the loop, its optimisers and callbacks."""

from kimnet.training.loop import Metrics, RunResult, build_model, train

__all__ = ["Metrics", "RunResult", "build_model", "train"]
