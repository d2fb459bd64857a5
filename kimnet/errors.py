"""The exceptions kimnet raises for problems the user can fix.

:class:`InputError` marks a problem with what the user gave (a flag, a config, a
file, a request), never a bug. Its message names the problem and the fix, and the
pipeline scripts print it as one line and exit with status 2; any other exception
keeps its traceback, so a bug is never mistaken for bad input. It subclasses
``ValueError``, so code that catches ``ValueError`` keeps working.

:class:`DiskFullError` marks a write that ran out of space (``ENOSPC``). Its message
names what could not be written and about how much space it needed. It subclasses
``OSError`` (with ``errno == ENOSPC``), so code that catches ``OSError`` keeps
working. Command-line layers print any of :data:`ONE_LINE_ERRORS` as one line
(``error: <message>``) and exit with :func:`exit_code`.
"""

from __future__ import annotations

import errno


class InputError(ValueError):
    """Bad input from the user; the message says what is wrong and how to fix it."""


class DiskFullError(OSError):
    """A write failed for lack of space; the message says what and how much was needed.

    Attributes:
        path: What could not be written.
        needed_bytes: Estimate of the space the write needed in all, or ``None``.
        free_bytes: Space left on that filesystem when it failed, or ``None``.
    """

    def __init__(
        self, path: object, needed_bytes: int | None = None, free_bytes: int | None = None
    ):
        self.path = str(path)
        self.needed_bytes = needed_bytes
        self.free_bytes = free_bytes
        need = f"; it needs about {format_bytes(needed_bytes)}" if needed_bytes else ""
        free = f", {format_bytes(free_bytes)} free" if free_bytes is not None else ""
        message = (
            f"No space left to write '{self.path}'{need}{free}. Free some space or write elsewhere."
        )
        super().__init__(errno.ENOSPC, message, self.path)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):  # pickles (multiprocessing) with its own arguments, not OSError's
        return type(self), (self.path, self.needed_bytes, self.free_bytes)


class RunEnded(Exception):  # noqa: N818 - not an error: a run that stopped as asked
    """A training run ended early on purpose; the message says why and what to do next.

    ``exit_status``: 1 when training diverged (:class:`TrainingDiverged`), 128 + the
    signal number when a signal stopped it (:class:`TrainingStopped`).
    """

    exit_status = 1


class TrainingDiverged(RunEnded):
    """The loss became NaN or infinite; nothing was exported, the last good checkpoint stays."""


class TrainingStopped(RunEnded):
    """SIGINT or SIGTERM stopped training at a step boundary after saving its state."""

    def __init__(self, message: str, signal_number: int):
        super().__init__(message)
        self.exit_status = 128 + signal_number


ONE_LINE_ERRORS = (InputError, DiskFullError, RunEnded)
"""Errors a command line prints as one line, without a traceback."""


def exit_code(error: BaseException) -> int:
    """The exit status for one of :data:`ONE_LINE_ERRORS`: 2 for bad input, 1 for disk full,
    a run's own status for a run that ended early."""
    if isinstance(error, RunEnded):
        return error.exit_status
    return 2 if isinstance(error, InputError) else 1


def format_bytes(size: int | float) -> str:
    """``1536`` -> ``'1.5 KiB'``: a human size for messages."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
