"""A run's saved state: atomic checkpoints, resume, the NaN guard, clean stops, one writer.

``checkpoints/last.weights.h5`` holds the weights and the optimizer (its step, so the
learning-rate schedule continues) after the last completed epoch, or at the step
where a signal stopped training; ``checkpoints/state.json`` says which epoch and
step that is. Both are written under a temporary name and renamed, so a kill at any
instant leaves the previous pair readable. ``best.weights.h5`` follows the best
validation top-1. A rerun of an interrupted run loads them and goes on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import math
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import keras

from kimnet import fileio
from kimnet.errors import InputError

LAST = "last.weights.h5"
BEST = "best.weights.h5"
STATE = "state.json"


@dataclasses.dataclass(frozen=True)
class State:
    """Training progress at the last save: ``epoch`` epochs done, plus ``step`` steps
    of the next one (non-zero only when a signal stopped training mid-epoch)."""

    epoch: int = 0
    step: int = 0
    best: float | None = None

    @classmethod
    def read(cls, checkpoints: Path) -> State | None:
        path = checkpoints / STATE
        if not (path.is_file() and (checkpoints / LAST).is_file()):
            return None
        return cls(**json.loads(path.read_text()))


def save(model: keras.Model, checkpoints: Path, state: State) -> None:
    """Weights and optimizer, then the state that describes them, each atomically."""
    with fileio.atomic_path(checkpoints / LAST) as tmp:
        model.save_weights(str(tmp))
    fileio.write_json_atomic(checkpoints / STATE, dataclasses.asdict(state))


def restore(model: keras.Model, checkpoints: Path) -> None:
    """Loads the last checkpoint, optimizer included, into the compiled ``model``."""
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    model.load_weights(str(checkpoints / LAST))


class StopRequest:
    """Set by SIGINT/SIGTERM; the first asks for a stop at the next step boundary, a
    second stops at once (KeyboardInterrupt)."""

    def __init__(self) -> None:
        self.signal_number: int | None = None

    def __call__(self, signal_number: int, frame) -> None:
        if self.signal_number is not None:
            raise KeyboardInterrupt
        self.signal_number = signal_number
        print(
            f"\n{signal.Signals(signal_number).name}: saving the state at the next step "
            "(press Ctrl-C again to stop at once).",
            file=sys.stderr,
            flush=True,
        )


@contextlib.contextmanager
def stop_requests() -> Iterator[StopRequest]:
    """Routes SIGINT and SIGTERM to a :class:`StopRequest` while training (main thread)."""
    request = StopRequest()
    previous = {}
    if threading.current_thread() is threading.main_thread():  # only there can it handle them
        previous = {s: signal.signal(s, request) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield request
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


class Checkpointer(keras.callbacks.Callback):
    """Saves the state after every epoch (and at a requested stop), stops on a NaN loss.

    A NaN or infinite loss stops training before the epoch's checkpoint, so the last
    good one stays; ``diverged`` then says where it happened.
    """

    def __init__(
        self,
        checkpoints: Path,
        monitor: str,
        stop: StopRequest,
        state: State,
        agree: Callable[[bool], bool] = bool,
    ):
        """``agree``: whether any worker asks to stop, given this one's answer (once a step
        on every worker: :func:`kimnet.training.distribute.agreement`)."""
        super().__init__()
        self.agree = agree
        self.checkpoints = checkpoints
        self.monitor = monitor
        self.stop = stop
        self.best = state.best
        self.first_step = state.step  # steps of the first epoch already done before a resume
        self.epoch = state.epoch
        self.step = state.step
        self.diverged: str | None = None
        self.stopped = False

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self.step = self.first_step + batch + 1
        stop_asked = self.agree(self.stop.signal_number is not None)
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.diverged = (
                f"the loss became {float(loss)} at epoch {self.epoch + 1}, step {self.step}"
            )
            self.model.stop_training = True
        elif stop_asked and not self.stopped:
            save(self.model, self.checkpoints, State(self.epoch, self.step, self.best))
            self.stopped = True
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        self.first_step = 0
        # The last step's update can break the weights after its own loss was finite:
        # the validation loss tells before they are saved.
        for key in ("loss", "val_loss"):
            value = (logs or {}).get(key)
            if not self.diverged and value is not None and not math.isfinite(float(value)):
                where = "validation loss" if key == "val_loss" else "loss"
                self.diverged = f"the {where} became {float(value)} after epoch {epoch + 1}"
                self.model.stop_training = True
        if self.diverged or self.stopped:
            return
        value = (logs or {}).get(self.monitor)
        if value is not None and (self.best is None or value > self.best):
            self.best = float(value)
            with fileio.atomic_path(self.checkpoints / BEST) as tmp:
                self.model.save_weights(str(tmp))
        save(self.model, self.checkpoints, State(epoch + 1, 0, self.best))


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Holds ``<workdir>/.<run name>.lock`` so two runs never share a run directory."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    path = run_dir.parent / f".{run_dir.name}.lock"
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            raise InputError(
                f"Run directory '{run_dir}' is in use by a run that is still going (pid "
                f"{owner}); wait for it, or set another config.runtime.run_name."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
