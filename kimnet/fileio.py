"""Atomic file writes and staging folders that a kill or a full disk cannot damage.

Every write goes to a hidden temporary name in the target's own folder (same
filesystem, so the final ``os.replace`` is atomic), is flushed and fsynced, and only
then replaces the target. A failure or kill at any instant leaves the previous file
as it was; a failure removes the temporary file. ``ENOSPC`` becomes
:class:`kimnet.errors.DiskFullError` naming the target.

Temporary names are ``.kimnet-partial-<pid>-<token>-<target name>``: they end with the
target's name (so ``.weights.h5`` suffixes survive for Keras) and carry the writer's
pid, so :func:`remove_stale` can tell a dead writer's leftovers from a live one's.

    with atomic_path(run / "last.weights.h5") as tmp:
        model.save_weights(tmp)                    # any writer that takes a path
    with atomic_write(run / "log.txt") as f:       # a file object
        f.write("...")
    write_json_atomic(run / "metrics.json", {"top1": 0.9})
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from kimnet.errors import DiskFullError

STAGING_MARK = ".kimnet-partial-"
STALE_AFTER_S = 3 * 3600
"""Staging left by a dead process is removed once it is older than this (3 hours)."""
_STAGING = re.compile(rf"^{re.escape(STAGING_MARK)}(\d+)-[0-9a-f]+-")


def staging_path(target: str | os.PathLike) -> Path:
    """A fresh hidden name beside ``target`` that carries this process's pid."""
    target = Path(target)
    return target.parent / f"{STAGING_MARK}{os.getpid()}-{secrets.token_hex(4)}-{target.name}"


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error`` (an ``OSError`` or a TensorFlow error) means the disk is full."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(error)
    return "No space left on device" in text or "Disk quota exceeded" in text


def free_bytes(path: str | os.PathLike) -> int | None:
    """Free space on the filesystem holding ``path`` (or its nearest existing parent)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def tree_bytes(path: str | os.PathLike) -> int:
    """Bytes in the files under ``path`` (a file's own size for a file)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def fsync_dir(folder: str | os.PathLike) -> None:
    """Makes a rename inside ``folder`` durable (best effort where directories can't fsync)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def remove_quietly(path: str | os.PathLike) -> None:
    """Removes a file or folder tree if it exists; cleanup must not mask the real error."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError, OSError):
            path.unlink()


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, *, needed_bytes: int | None = None) -> Iterator[Path]:
    """Yields a temporary path beside ``target``; on success it replaces ``target``.

    Whatever the body writes at the yielded path (a file, or a folder) becomes
    ``target`` atomically when the body returns; an existing file ``target`` is
    replaced. On any exception (``KeyboardInterrupt`` too) the temporary is removed
    and ``target`` is untouched. ``ENOSPC`` raises :class:`DiskFullError` naming
    ``target`` (``needed_bytes``, if given, is reported as the space needed).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = staging_path(target)
    try:
        yield tmp
        if tmp.is_file():
            _fsync_file(tmp)
        os.replace(tmp, target)
        fsync_dir(target.parent)
    except BaseException as error:
        written = tree_bytes(tmp) if tmp.exists() else 0
        remove_quietly(tmp)
        if is_disk_full(error) and not isinstance(error, DiskFullError):
            raise DiskFullError(
                target, needed_bytes or written or None, free_bytes(target)
            ) from error
        raise


@contextlib.contextmanager
def atomic_write(
    target: str | os.PathLike, mode: str = "w", *, encoding: str | None = "utf-8"
) -> Iterator[IO[Any]]:
    """Yields a file object (``mode`` ``"w"`` or ``"wb"``) whose content replaces ``target``.

    The same guarantees as :func:`atomic_path`: the old ``target`` stays intact until
    the new content is complete and on disk.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}.")
    with (
        atomic_path(target) as tmp,
        open(tmp, mode, encoding=None if "b" in mode else encoding) as file,
    ):
        yield file
        file.flush()
        os.fsync(file.fileno())


def write_bytes_atomic(target: str | os.PathLike, data: bytes) -> Path:
    """Writes ``data`` to ``target`` atomically; returns ``Path(target)``."""
    with atomic_path(target, needed_bytes=len(data)) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_text_atomic(target: str | os.PathLike, text: str, *, encoding: str = "utf-8") -> Path:
    """Writes ``text`` to ``target`` atomically; returns ``Path(target)``."""
    return write_bytes_atomic(target, text.encode(encoding))


def write_json_atomic(target: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> Path:
    """Writes ``obj`` as JSON (plus a final newline) to ``target`` atomically.

    The object is serialised before anything is written, so an object JSON cannot
    represent raises ``TypeError`` and leaves ``target`` untouched.
    """
    return write_text_atomic(target, json.dumps(obj, indent=indent) + "\n")


def staging_owner(path: str | os.PathLike) -> int | None:
    """The pid in a staging name made by :func:`staging_path`, or ``None``."""
    match = _STAGING.match(Path(path).name)
    return int(match.group(1)) if match else None


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def remove_stale(folder: str | os.PathLike, *, max_age_s: float = STALE_AFTER_S) -> list[Path]:
    """Removes staging entries in ``folder`` left by dead writers; returns what it removed.

    An entry goes only when it is older than ``max_age_s`` (by modification time) and
    the pid in its name is not a live process, so a slow live writer, or one on
    another machine sharing the folder, keeps its staging while it is recent.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    now = time.time()
    for entry in folder.iterdir():
        pid = staging_owner(entry)
        if pid is None or pid_alive(pid):  # a live writer (this process too) keeps its own
            continue
        try:
            age = now - entry.lstat().st_mtime
        except FileNotFoundError:
            continue
        if age > max_age_s:
            remove_quietly(entry)
            removed.append(entry)
    return removed


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as file:
        os.fsync(file.fileno())
