"""What a kimnet program prints: its own concise lines, not the frameworks' start-up noise.

Importing :mod:`kimnet` calls :func:`quiet_frameworks` before TensorFlow can be
imported: TensorFlow's C++ log (CUDA probing on a machine without a GPU, oneDNN
notes) is set to errors-only through ``TF_CPP_MIN_LOG_LEVEL``, unless the user set
that variable, passed ``-v``/``--verbosity`` to a kimnet program, or set
``KIMNET_VERBOSE=1``. :func:`quiet_python_logs` does the same for the Python loggers
of TensorFlow, TFDS and absl once flags are parsed.
"""

from __future__ import annotations

import logging
import os
import sys

_VERBOSE_FLAGS = ("-v", "--verbosity", "-verbosity", "--v")


def verbose_requested(argv: list[str] | None = None) -> bool:
    """Whether the user asked for the frameworks' logs (``-v``, ``--verbosity``, env)."""
    if os.environ.get("KIMNET_VERBOSE", "") not in ("", "0"):
        return True
    args = sys.argv[1:] if argv is None else argv
    return any(arg.split("=", 1)[0] in _VERBOSE_FLAGS for arg in args)


def quiet_frameworks() -> None:
    """TensorFlow's C++ log to errors-only (level 3) unless asked otherwise; must run
    before TensorFlow is imported to take effect."""
    if not verbose_requested():
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def start_tensorflow() -> None:
    """Imports TensorFlow and probes its devices with the process's stderr muted.

    TensorFlow prints its CUDA probing on a machine without a GPU ("Could not find cuda
    drivers", "All log messages before absl::InitializeLog()") from C++ before any log
    level applies; a program calls this first, so those lines never reach the user.
    Python errors still surface: they are raised after stderr is restored.
    """
    if verbose_requested():
        return
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow as tf

        tf.config.list_physical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def quiet_python_logs() -> None:
    """TensorFlow's, TFDS's and absl's Python loggers to warnings and above (SavedModel
    'Assets written to', 'Load dataset info' and the like are INFO)."""
    if verbose_requested():
        return
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.WARNING)
    for name in ("tensorflow", "tensorflow_datasets", "absl", "h5py"):
        logging.getLogger(name).setLevel(logging.WARNING)


def progress_verbosity(setting: str) -> int:
    """Keras ``verbose`` for ``runtime.progress``: a live bar on a terminal, one line per
    epoch otherwise (logs, CI)."""
    if setting == "auto":
        return 1 if sys.stdout.isatty() else 2
    return {"bar": 1, "epoch": 2, "silent": 0}[setting]
