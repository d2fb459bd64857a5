"""Input pipeline and training-step throughput on Fashion-MNIST, as a markdown table.

    python benchmarks/bench_input.py [--batches 40] [--models mobilenetv2,resnet18]
    python benchmarks/bench_input.py --dataset=tfrecord:/tmp/fm-shards --models=

The source row reads and decodes the whole training split once, as the first epoch
does before the cache is filled (TFDS, folder or TFRecord source: `--dataset`).
Pipeline rows time `kimnet.data.make(...)["train"]` alone (decode/cache, resize,
augment, normalise) with several augmentation specs; model rows time
`model.train_on_batch` on fixed batches (no input pipeline), at 32 px with the
small-input stem, as `make train` runs them. Each row is measured after one
warm-up pass.
"""

from __future__ import annotations

import argparse
import platform
import time

import keras
import numpy as np

import kimnet.data
import kimnet.models

SPECS = ("none", "flip_h,crop", "flip_h,crop,rotate,zoom,translate,noise")


def source_rate(splits, batch_size: int) -> float:
    start = time.perf_counter()
    count = sum(len(labels) for _, labels in splits.train.batch(batch_size).prefetch(2))
    return count / (time.perf_counter() - start)


def pipeline_rate(splits, spec: str, batches: int, batch_size: int) -> float:
    augmenter = kimnet.data.augment.build(spec, 32, seed=0)
    train = kimnet.data.make(
        splits, image_size=32, batch_size=batch_size, normalization="tf", augmenter=augmenter
    )["train"]
    for _ in train.take(batches):  # warm-up, fills the cache
        pass
    start = time.perf_counter()
    count = sum(int(x.shape[0]) for x, _ in train.take(batches))
    return count / (time.perf_counter() - start)


def train_rate(name: str, steps: int, batch_size: int) -> float:
    model = kimnet.models.get(name)(input_shape=(32, 32, 3), classes=10, small_input=True)
    model.compile(optimizer="adamw", loss="categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (batch_size, 32, 32, 3)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 10, batch_size), 10)
    model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return steps * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=40, help="batches per pipeline row")
    parser.add_argument("--steps", type=int, default=5, help="training steps per model row")
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--models", default="mobilenetv2,resnet18")
    parser.add_argument("--dataset", default="fashion_mnist", help="any --dataset of make train")
    args = parser.parse_args()

    splits = kimnet.data.load(args.dataset)
    cpu = platform.processor() or "cpu"
    print(f"machine: {platform.machine()} ({cpu}), batch {args.batch_size}, {args.dataset}")
    print("\n| what | images/s |\n| --- | ---: |")
    rate = source_rate(splits, args.batch_size)
    print(f"| read and decode the train split once ({args.dataset}) | {rate:,.0f} |", flush=True)
    for spec in SPECS:
        rate = pipeline_rate(splits, spec, args.batches, args.batch_size)
        print(f"| input pipeline, augment={spec} | {rate:,.0f} |", flush=True)
    for name in filter(None, args.models.split(",")):
        rate = train_rate(name, args.steps, args.batch_size)
        print(f"| train step, {name} 32 px small-input | {rate:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
