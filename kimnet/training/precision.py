"""The dtype policy of a run: ``runtime.precision``, with ``auto`` chosen from the device.

``auto`` takes the policy that is faster *and* safe on what TensorFlow sees:

- ``mixed_float16`` on a GPU of compute capability 7.0 or newer (tensor cores);
- ``mixed_bfloat16`` on a TPU, and on a CPU with AMX (Intel Sapphire Rapids and
  later), whose bfloat16 matrix units make it pay;
- ``float32`` otherwise: older GPUs and CPUs without AMX emulate the low-precision
  types, and mixed precision is then slower than float32.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import tensorflow as tf

AUTO = "auto"
TENSOR_CORES = (7, 0)  # Volta: the first GPUs with float16 matrix units


@dataclasses.dataclass(frozen=True)
class Choice:
    policy: str
    reason: str

    def __str__(self) -> str:
        return f"Precision: {self.policy} ({self.reason})."


def choose(requested: str) -> Choice:
    """The policy for ``requested`` (a Keras policy name, or ``auto``) and why."""
    if requested != AUTO:
        return Choice(requested, "set by runtime.precision")
    gpus = tf.config.list_physical_devices("GPU")
    capabilities = [_compute_capability(gpu) for gpu in gpus]
    if gpus and all(c is not None and c >= TENSOR_CORES for c in capabilities):
        shown = ", ".join(f"{c[0]}.{c[1]}" for c in capabilities)
        return Choice("mixed_float16", f"auto: GPU compute capability {shown}")
    if gpus:
        return Choice("float32", "auto: a GPU older than compute capability 7.0")
    if tf.config.list_logical_devices("TPU"):
        return Choice("mixed_bfloat16", "auto: TPU")
    if cpu_has_amx():
        return Choice("mixed_bfloat16", "auto: CPU with AMX")
    return Choice("float32", "auto: CPU without AMX, no GPU or TPU")


def _compute_capability(gpu: tf.config.PhysicalDevice) -> tuple[int, int] | None:
    return tf.config.experimental.get_device_details(gpu).get("compute_capability")


def cpu_has_amx(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether the CPU advertises AMX bfloat16 tiles (Linux ``flags``; False elsewhere)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return "amx_bf16" in line.split(":", 1)[-1].split()
    return False
