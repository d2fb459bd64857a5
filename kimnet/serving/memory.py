"""Giving freed memory back to the operating system, and reading the process's RSS.

glibc keeps freed heap pages (large JSON bodies, decoded tensors, unloaded models)
in its arenas, so RSS stays at its peak after a big request unless
``malloc_trim`` hands them back. Elsewhere (musl, macOS) trimming is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os

_libc = None
try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    _malloc_trim = _libc.malloc_trim
except (OSError, AttributeError):
    _malloc_trim = None


def trim() -> None:
    """Returns free heap pages to the OS where glibc allows it (ctypes drops the GIL)."""
    if _malloc_trim is not None:
        _malloc_trim(0)


def release_memory() -> None:
    """Collects garbage (unloaded models hold reference cycles), then :func:`trim`."""
    gc.collect()
    trim()


def rss_bytes(pid: int | None = None) -> int:
    """Resident set size of ``pid`` (default: this process) in bytes; 0 when unknown."""
    try:
        with open(f"/proc/{pid or os.getpid()}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
