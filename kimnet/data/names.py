"""Dataset names the user types, checked before TFDS sees them.

A mistyped TFDS name (``fashion-mnist``), a path without its ``folder:``/``tfrecord:``
prefix, or a dataset that is not prepared on a machine without network each become
one :class:`~kimnet.errors.InputError` line that says what was probably meant,
instead of a TFDS traceback or minutes of download retries.
"""

from __future__ import annotations

import difflib
import os
import socket
from pathlib import Path

import tensorflow_datasets as tfds

from kimnet.data.tfrecord import METADATA as TFRECORD_METADATA
from kimnet.data.tfrecord import PREFIX as TFRECORD_PREFIX
from kimnet.errors import InputError

FOLDER_PREFIX = "folder:"
# TFDS downloads from many hosts; Google Cloud Storage (its mirror) stands for "online".
_PROBE_HOST = ("storage.googleapis.com", 443)
_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")


def looks_like_path(name: str) -> bool:
    """Whether ``name`` is a filesystem path rather than a TFDS name."""
    if name.startswith(("/", "~", "./", "../")):
        return True
    return "/" in name and Path(name).expanduser().exists()


def check_not_a_path(name: str) -> None:
    """Raises when ``name`` is a path given without ``folder:`` or ``tfrecord:``."""
    if not looks_like_path(name):
        return
    path = Path(name).expanduser()
    if (path / TFRECORD_METADATA).is_file() or any(path.glob("*.tfrecord")):
        prefix, what = TFRECORD_PREFIX, "TFRecord shards"
    else:
        prefix, what = FOLDER_PREFIX, "a folder of class sub-folders of images"
    raise InputError(
        f"Dataset '{name}' is a path, not a TFDS name; for {what} write '{prefix}{name}' "
        f"({FOLDER_PREFIX} for class sub-folders of images, {TFRECORD_PREFIX} for shards from "
        f"`python -m kimnet.data tfrecord`)."
    )


def check_tfds_name(name: str) -> None:
    """Raises with the nearest registered TFDS name when ``name`` is not one."""
    base = name.split("/")[0].split(":")[0]
    known = tfds.list_builders(with_community_datasets=False)
    if base in known:
        return
    spelled = base.strip().lower().replace("-", "_").replace(" ", "_")
    nearest = [spelled] if spelled in known else difflib.get_close_matches(spelled, known, n=1)
    hint = f"did you mean '{nearest[0]}'? " if nearest else ""
    raise InputError(
        f"Unknown dataset '{name}': {hint}Use a TFDS name (e.g. fashion_mnist, cifar10; "
        f"`tfds.list_builders()` lists them), {FOLDER_PREFIX}/path/to/images or "
        f"{TFRECORD_PREFIX}/path/to/shards."
    )


def can_download(timeout_s: float = 3.0) -> bool:
    """Whether this machine can reach TFDS's download mirror (a proxy counts as yes)."""
    if any(os.environ.get(variable) for variable in _PROXY_VARIABLES):
        return True
    try:
        socket.create_connection(_PROBE_HOST, timeout=timeout_s).close()
    except OSError:
        return False
    return True


def not_prepared_offline(name: str, data_dir: str | os.PathLike | None) -> InputError:
    """The error for a TFDS dataset missing from ``data_dir`` on a machine without network."""
    root = data_dir or tfds.core.constants.DATA_DIR
    base = name.split("/")[0].split(":")[0]
    return InputError(
        f"TFDS dataset '{name}' is not prepared in {root} and this machine cannot download it "
        f"(no network). Run `python -m kimnet.data prepare {name}` where there is internet and "
        f"copy the {base}/ folder of its ~/tensorflow_datasets into {root}, or use "
        f"{FOLDER_PREFIX}/{TFRECORD_PREFIX} data."
    )
