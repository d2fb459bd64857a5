"""The PyTorch side of ``benchmarks/bench_train.py``: training images/s of torchvision models.

It imports neither TensorFlow nor kimnet, so any interpreter with ``torch`` and
``torchvision`` runs it (``bench_train.py --torch-python=/path/to/python``). It is a
long-lived worker: one JSON request per line on stdin, one JSON reply per line on
stdout, so models are built (and ``torch.compile``-d) once and each round of the
benchmark only times steps. The first line it prints says whether torch loaded:
``{"ready": true, "torch": ..., "torchvision": ..., "threads": N}`` or
``{"skip": "<why>"}``. A request::

    {"model": "mobilenetv2" | "resnet18", "small_input": true, "compiled": false,
     "classes": 10, "steps": 20, "data": "/tmp/.../images.npz"}

times ``steps`` training steps (AdamW, cross-entropy with label smoothing 0.1,
channels-last) on the batches of ``data`` (``x``: float32 ``[n, batch, H, W, 3]``,
already normalised; ``y``: int ``[n, batch]``) and replies
``{"images_per_second": ...}`` over steps 2..``steps``, as kimnet's ``EpochStats``
leaves out the first step; ``{"error": ...}`` when the step fails.

The models follow kimnet's adaptations: its small-input MobileNetV2 keeps the stem
convolution at stride 1; its small-input ResNet-18 has a 3x3 stride-1 ``conv1`` and
no max pooling (``kimnet/models/resnet.py`` ``stem``). Grayscale images arrive as
3 channels, as kimnet's pipeline repeats them (``kimnet.data.resize``).
"""

from __future__ import annotations

import json
import os
import sys
import time

# What kimnet trains with by default (kimnet.experiment SCHEMA: optim.*).
LEARNING_RATE = 2e-3
WEIGHT_DECAY = 5e-4
LABEL_SMOOTHING = 0.1


def build(torch, torchvision, name: str, small_input: bool, classes: int):
    """A torchvision model adapted as kimnet adapts its own, channels-last."""
    nn = torch.nn
    if name == "mobilenetv2":
        model = torchvision.models.mobilenet_v2(num_classes=classes)
        if small_input:
            model.features[0][0].stride = (1, 1)
    elif name == "resnet18":
        model = torchvision.models.resnet18(num_classes=classes)
        if small_input:
            model.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
            model.maxpool = nn.Identity()
    else:
        raise ValueError(f"no torchvision counterpart for model '{name}'")
    return model.to(memory_format=torch.channels_last).train()


class Trainer:
    """One model, its optimizer and (once compiled) its compiled forward pass."""

    def __init__(self, torch, torchvision, request: dict, classes: int):
        self.torch = torch
        self.model = build(torch, torchvision, request["model"], request["small_input"], classes)
        self.forward = torch.compile(self.model) if request["compiled"] else self.model
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY
        )
        self.loss = torch.nn.CrossEntropyLoss(label_smoothing=LABEL_SMOOTHING)

    def step(self, x, y) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.loss(self.forward(x), y).backward()
        self.optimizer.step()

    def rate(self, batches: list, steps: int) -> float:
        """Images/s over steps 2..``steps`` (the first one compiles or warms caches)."""
        x, y = batches[0]
        self.step(x, y)
        start = time.perf_counter()
        for index in range(1, steps):
            x, y = batches[index % len(batches)]
            self.step(x, y)
        return (steps - 1) * int(x.shape[0]) / (time.perf_counter() - start)


def load_batches(torch, path: str) -> list:
    import numpy as np

    with np.load(path) as data:
        x, y = data["x"], data["y"]
    # NHWC numbers viewed as NCHW in channels-last memory: no copy of the layout.
    images = torch.from_numpy(x).permute(0, 1, 4, 2, 3)
    return [
        (images[i].contiguous(memory_format=torch.channels_last), torch.from_numpy(y[i]).long())
        for i in range(len(x))
    ]


def serve(torch, torchvision, lines, reply) -> None:
    """Answers each request line; models and batches are kept between requests."""
    trainers: dict[tuple, Trainer] = {}
    data: dict[str, list] = {}
    for line in lines:
        request = json.loads(line)
        try:
            if request["data"] not in data:
                data[request["data"]] = load_batches(torch, request["data"])
            batches = data[request["data"]]
            key = (request["model"], request["small_input"], request["compiled"], request["data"])
            if key not in trainers:
                trainers[key] = Trainer(torch, torchvision, request, int(request["classes"]))
            reply({"images_per_second": trainers[key].rate(batches, int(request["steps"]))})
        except Exception as error:  # noqa: BLE001 - reported to the benchmark, which goes on
            reply({"error": f"{type(error).__name__}: {error}".splitlines()[0][:300]})


def main() -> int:
    def reply(message: dict) -> None:
        print(json.dumps(message), flush=True)

    try:
        import torch
        import torchvision
    except ImportError as error:
        reply({"skip": f"torch and torchvision are not importable by {sys.executable} ({error})"})
        return 0
    # argv[1]: the thread count (bench_train.py --torch-threads); default every core.
    torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else os.cpu_count() or 1)
    reply(
        {
            "ready": True,
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "threads": torch.get_num_threads(),
        }
    )
    serve(torch, torchvision, sys.stdin, reply)
    return 0


if __name__ == "__main__":
    sys.exit(main())
