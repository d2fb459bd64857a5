"""The PyTorch side of ``benchmarks/time_to_accuracy.py``: one recipe, test top-1 per epoch.

It imports neither TensorFlow nor kimnet, so any interpreter with ``torch`` and
``torchvision`` runs it. ``time_to_accuracy.py`` writes the data and the recipe; this
trains torchvision's MobileNetV2 adapted as kimnet's small-input stem (the stem
convolution at stride 1), channels-last, with the recipe's settings:

- data: ``--data`` (an ``.npz`` with uint8 ``train_x``/``test_x`` ``[n, H, W]`` and int
  ``train_y``/``test_y``), grey repeated to 3 channels and scaled to [-1, 1] (kimnet's
  ``tf`` normalisation for MobileNetV2);
- augmentation per batch: horizontal flips and random crops after zero padding by
  ``crop`` pixels (kimnet's ``flip_h,crop=N``);
- AdamW (decoupled weight decay multiplied by the rate, as Keras' AdamW), linear warm-up
  then cosine decay to 0 per step, cross-entropy with label smoothing, dropout before
  the classifier;
- after every epoch the full test split in evaluation mode.

Writes ``--out`` (CSV: ``epoch, elapsed_seconds, test_top1``; elapsed is training time
without the test passes, as kimnet's ``elapsed_seconds``) and prints one JSON line per
epoch. Without torch it prints ``{"skip": ...}`` and exits 0.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--steps-per-epoch", type=int, default=0, help="0: the whole split")
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--weight-decay", type=float, required=True)
    parser.add_argument("--label-smoothing", type=float, required=True)
    parser.add_argument("--dropout", type=float, required=True)
    parser.add_argument("--warmup-epochs", type=float, required=True)
    parser.add_argument("--crop", type=int, required=True, help="padding of the random crop")
    parser.add_argument("--test-batches", type=int, default=0, help="0: the whole test split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    return parser.parse_args(argv)


def to_tensor(torch, pixels):
    """uint8 ``[n, H, W]`` -> float ``[n, 3, H, W]`` in [-1, 1], channels-last."""
    x = torch.from_numpy(pixels).float().div_(127.5).sub_(1.0)
    return x[:, None].expand(-1, 3, -1, -1).contiguous(memory_format=torch.channels_last)


def augment(torch, x, pad: int):
    """Random horizontal flips and ``pad``-pixel random crops, per image."""
    n, _, h, w = x.shape
    flip = torch.rand(n) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    if pad:
        # Black (pixel 0): kimnet zero-pads before normalising, so -1 here.
        padded = torch.nn.functional.pad(x, (pad, pad, pad, pad), value=-1.0)
        dy, dx = torch.randint(0, 2 * pad + 1, (2, n))
        rows = (torch.arange(h)[None, :] + dy[:, None])[:, None, :, None]
        cols = (torch.arange(w)[None, :] + dx[:, None])[:, None, None, :]
        images = torch.arange(n)[:, None, None, None]
        x = padded[images, torch.arange(3)[None, :, None, None], rows, cols]
    return x.contiguous(memory_format=torch.channels_last)


def build(torch, torchvision, dropout: float, classes: int = 10):
    model = torchvision.models.mobilenet_v2(num_classes=classes, dropout=dropout)
    model.features[0][0].stride = (1, 1)  # kimnet's small-input stem
    return model.to(memory_format=torch.channels_last)


def rate_at(step: int, total: int, warmup: int, peak: float) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(total - warmup, 1)
    return 0.5 * peak * (1 + math.cos(math.pi * min(progress, 1.0)))


def test_top1(torch, model, x, y, batch: int, limit: int) -> float:
    model.eval()
    correct = seen = 0
    with torch.no_grad():
        for index, start in enumerate(range(0, len(x), batch)):
            if limit and index >= limit:
                break
            logits = model(x[start : start + batch])
            correct += int((logits.argmax(1) == y[start : start + batch]).sum())
            seen += len(logits)
    model.train()
    return correct / seen


def train(torch, torchvision, args) -> None:
    import numpy as np

    torch.manual_seed(args.seed)
    with np.load(args.data) as data:
        train_x, train_y = to_tensor(torch, data["train_x"]), torch.from_numpy(data["train_y"])
        test_x, test_y = to_tensor(torch, data["test_x"]), torch.from_numpy(data["test_y"])
    model = build(torch, torchvision, args.dropout).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    steps = math.ceil(len(train_x) / args.batch)
    steps = min(steps, args.steps_per_epoch or steps)
    total, warmup = steps * args.epochs, max(1, round(args.warmup_epochs * steps))
    elapsed, step = 0.0, 0
    with open(args.out, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", "elapsed_seconds", "test_top1"])
        for epoch in range(args.epochs):
            start = time.perf_counter()
            order = torch.randperm(len(train_x))
            for index in range(steps):
                picked = order[index * args.batch : (index + 1) * args.batch]
                for group in optimizer.param_groups:
                    group["lr"] = rate_at(step, total, warmup, args.lr)
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model(augment(torch, train_x[picked], args.crop)), train_y[picked])
                loss.backward()
                optimizer.step()
                step += 1
            elapsed += time.perf_counter() - start
            top1 = test_top1(torch, model, test_x, test_y, args.batch, args.test_batches)
            writer.writerow([epoch, f"{elapsed:.2f}", f"{top1:.4f}"])
            handle.flush()
            print(json.dumps({"epoch": epoch, "elapsed_seconds": elapsed, "test_top1": top1}))


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        import torch
        import torchvision
    except ImportError as error:
        print(json.dumps({"skip": f"torch and torchvision are not importable ({error})"}))
        return 0
    torch.set_num_threads(args.threads)
    train(torch, torchvision, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
