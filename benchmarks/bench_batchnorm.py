"""Keras BatchNormalization against kimnet's fused one, interleaved, on MobileNetV2.

    python benchmarks/bench_batchnorm.py [--rounds 5] [--steps 6] [--batch 128]

Builds kimnet's MobileNetV2 (32 px, small-input stem, 10 classes) once, then a clone
whose BatchNormalization layers are ``kimnet.models.batch_norm.BatchNormalization``
(same config, same weights). Each round times A (Keras BN) then B (fused BN):
``train_on_batch`` steps on one fixed batch (no input pipeline), then batch-size
inference with ``predict_on_batch``. Rounds interleave so that load from other
processes on a shared machine hits both sides alike; the table reports the median and
range of images/s per side, and the median and range of the per-round ratio B/A. The
load average is printed before and after. Rates are given per wall-clock second and
per CPU-second of this process: on a machine shared with other jobs the CPU-time rate
is the less disturbed of the two (time-slicing stretches wall time, not CPU time).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import keras
import numpy as np

import kimnet.models
from kimnet.models.batch_norm import BatchNormalization as FusedBatchNormalization


def build_pair(policy: str) -> tuple[keras.Model, keras.Model]:
    """Kimnet's MobileNetV2 with Keras BN, and its clone with fused BN, same weights."""
    keras.mixed_precision.set_global_policy(policy)
    base = kimnet.models.get("mobilenetv2")(input_shape=(32, 32, 3), classes=10, small_input=True)

    def swap(layer: keras.layers.Layer) -> keras.layers.Layer:
        if type(layer) is keras.layers.BatchNormalization:
            return FusedBatchNormalization.from_config(layer.get_config())
        return layer.__class__.from_config(layer.get_config())

    fused = keras.models.clone_model(base, clone_function=swap)
    fused.set_weights(base.get_weights())
    swapped = sum(isinstance(layer, FusedBatchNormalization) for layer in fused.layers)
    assert swapped > 0, "no BatchNormalization layer was swapped"
    for model in (base, fused):
        model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="mse")
    return base, fused


def timed(fn: Callable[[], object], calls: int, batch: int) -> tuple[float, float]:
    """Images per wall-clock second, and per CPU-second of this process."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        fn()
    return calls * batch / (time.perf_counter() - wall), calls * batch / (time.process_time() - cpu)


def summary(rates: list[float]) -> str:
    return f"{statistics.median(rates):8.1f} ({min(rates):.1f}-{max(rates):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=6, help="training steps per side per round")
    parser.add_argument("--infer", type=int, default=6, help="inference calls per side per round")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--policy", default="float32", help="Keras dtype policy")
    args = parser.parse_args()

    load_before = os.getloadavg()
    started = time.perf_counter()
    base, fused = build_pair(args.policy)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (args.batch, 32, 32, 3)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 10, args.batch), 10)

    # Warm-up traces both functions and checks the two models agree before timing.
    for model in (base, fused):
        model.train_on_batch(x, y)
        model.predict_on_batch(x)
    gap = np.abs(
        np.asarray(base.predict_on_batch(x), "float32")
        - np.asarray(fused.predict_on_batch(x), "float32")
    ).max()

    sides = {"A keras": base, "B fused": fused}
    rates: dict[tuple[str, str, str], list[float]] = {}
    for _ in range(args.rounds):
        for name, model in sides.items():
            for label, fn, calls in (
                ("training", lambda m=model: m.train_on_batch(x, y), args.steps),
                ("inference", lambda m=model: m.predict_on_batch(x), args.infer),
            ):
                wall, cpu = timed(fn, calls, args.batch)
                rates.setdefault((label, "wall", name), []).append(wall)
                rates.setdefault((label, "cpu", name), []).append(cpu)
    load_after = os.getloadavg()

    print(
        f"MobileNetV2 small-input 32 px, batch {args.batch}, policy {args.policy}, "
        f"{args.rounds} interleaved rounds x {args.steps} train steps / {args.infer} inference "
        f"calls per side; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, Keras {keras.__version__}, backend {keras.backend.backend()}"
    )
    print(f"load average before {load_before}, after {load_after}")
    print(f"max |A - B| of predictions after one identical training step: {gap:.2e}\n")
    header = (
        "images per second: median (range)",
        "A: Keras BN",
        "B: fused BN",
        "B/A per round: median (range)",
    )
    print("| " + " | ".join(header) + " |")
    print("|---|---|---|---|")
    for label, clock in [(lb, c) for lb in ("training", "inference") for c in ("wall", "cpu")]:
        a, b = rates[(label, clock, "A keras")], rates[(label, clock, "B fused")]
        ratios = [rb / ra for ra, rb in zip(a, b, strict=True)]
        print(
            f"| {label}, per {clock} s | {summary(a)} | {summary(b)} | "
            f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) |"
        )
    print(f"\nwall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
