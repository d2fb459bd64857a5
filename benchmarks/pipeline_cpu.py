"""CPU time kimnet's training pipeline takes per image, once its cache is filled.

    python benchmarks/pipeline_cpu.py --size=28 --ops=none --ops=flip_h
    python benchmarks/pipeline_cpu.py --size=56 --ops=flip_h,crop=4,erasing=0.5

On a training split of the first ``--batches`` x 128 Fashion-MNIST images it runs one
pass of ``kimnet.data.make(...)["train"]`` to fill the cache, then times further passes
in process CPU time (user + system, every tf.data thread included), which other load
on the machine changes far less than wall time. On 2 cores every millisecond the
pipeline takes is one the training step does not get.
"""

from __future__ import annotations

import argparse
import resource

import kimnet.data
from kimnet.transfer.subsets import subset


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def ms_per_1000_images(train, passes: int) -> list[float]:
    """CPU milliseconds per 1,000 images of each of ``passes`` passes over ``train``."""
    figures = []
    for _ in range(passes):
        start = cpu_seconds()
        count = sum(int(labels.shape[0]) for _, labels in train)
        figures.append(1e6 * (cpu_seconds() - start) / count)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=28, help="image size (pixels)")
    parser.add_argument(
        "--ops", action="append", help="augment.ops spec, repeatable (default: none)"
    )
    parser.add_argument("--batches", type=int, default=60, help="batches of 128 per pass")
    parser.add_argument("--passes", type=int, default=2, help="timed passes per spec")
    args = parser.parse_args()
    splits = subset(kimnet.data.load("fashion_mnist"), train_examples=args.batches * 128)
    for spec in args.ops or ["none"]:
        augmenter = kimnet.data.augment.build(spec, args.size, seed=0)
        train = kimnet.data.make(
            splits, image_size=args.size, batch_size=128, normalization="caffe", augmenter=augmenter
        )["train"]
        for _ in train:  # fills the cache
            pass
        figures = ", ".join(f"{value:.0f}" for value in ms_per_1000_images(train, args.passes))
        print(f"{args.size} px, {spec}: {figures} CPU ms per 1,000 images", flush=True)


if __name__ == "__main__":
    main()
