"""Where a kimnet training step spends its time: a TensorFlow profile, summarised by op type.

    python benchmarks/profile_step.py                       # make profile: the default run
    python benchmarks/profile_step.py --model=resnet18 --image-size=32 --steps=8

Trains the default experiment (``configs/train.py``) for one short epoch with kimnet's
real path (its tf.data pipeline, augmentation and callbacks) and
``runtime.profile_steps`` set to the last ``--profiled`` steps, so the TensorFlow
profiler records them into the run's TensorBoard logs (open them in TensorBoard's
Profile tab). It then reads that profile (the ``.xplane.pb`` file) and sums the time of
every TensorFlow op by op type over TensorFlow's executor threads: the ops that the
training step runs, in the order of their share of the step's op time. The step's wall
time is the profiler's own "Profiled batch" span, and the time the step waited for its
batch is the span of its ``IteratorGetNext`` op. Op times of ops that ran in parallel
add up, so op time per step can exceed the wall time on several cores.

Writes ``profile.md`` and ``profile.json`` to ``--out`` (default ``reports/profile/``),
with the machine and the load average before and after. About two minutes here.
"""

from __future__ import annotations

import collections
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_train  # noqa: E402  (the benchmark next to this one)

from kimnet.errors import InputError  # noqa: E402

# Where the executor runs a graph's ops (inter-op threads); tf.data and Eigen's intra-op
# pool have their own threads, whose events are not ops of the step.
OP_THREADS = "tf_Compute"
STEP_EVENT = "Profiled batch"
# The step's request for its next batch: its time is the step waiting on tf.data.
INPUT_EVENT = "IteratorGetNextOp::DoCompute"


def parse_args(argv: Sequence[str] | None = None) -> Any:
    from kimnet.models.registry import find, names, unknown_name_message

    parser = bench_train.Parser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="mobilenetv2", help="registered model name")
    parser.add_argument("--image-size", type=int, help="pixels (default: the default run's)")
    parser.add_argument("--batch", type=int, default=128, help="batch size")
    parser.add_argument("--steps", type=int, default=16, help="training steps in all")
    parser.add_argument("--profiled", type=int, default=5, help="last steps to profile")
    parser.add_argument("--top", type=int, default=15, help="op types listed by name")
    parser.add_argument("--out", default="reports/profile", help="folder for profile.md/.json")
    args = parser.parse_args(argv)
    if find(args.model) is None:
        raise InputError(unknown_name_message("--model", args.model, names()))
    for name, low in (("batch", 1), ("profiled", 1), ("top", 1), ("image_size", 8)):
        value = getattr(args, name)
        if value is not None and value < low:
            raise InputError(f"--{name.replace('_', '-')}={value}: must be at least {low}.")
    if args.steps < args.profiled + 2:
        raise InputError(
            f"--steps={args.steps}: must be at least --profiled + 2 ({args.profiled + 2}); "
            "the first steps trace the graph and fill the pipeline."
        )
    return args


def profiled_config(args: Any, workdir: Path):
    """The default experiment, one short epoch whose last ``--profiled`` steps are profiled."""
    from kimnet import experiment
    from kimnet.configs import train as default_run

    changes = {
        "model.name": args.model,
        "data.batch_size": args.batch,
        "schedule.epochs": 1,
        "schedule.steps_per_epoch": args.steps,
        "evaluate.max_batches": 1,
        "evaluate.bn_recalibration_batches": 1,
        "export.enabled": False,
        "runtime.workdir": str(workdir),
        "runtime.run_name": "profile",
        "runtime.progress": "silent",
        "runtime.profile_steps": f"{args.steps - args.profiled + 1},{args.steps}",
    }
    if args.image_size:
        changes["data.image_size"] = args.image_size
    return experiment.with_overrides(default_run.get_config(), changes)


def summarise(xplane: Path, top: int) -> dict[str, Any]:
    """Op time per step by op type, and the steps' wall time, from one profile file."""
    # The profile's protobuf schema ships with TensorFlow (no public reader exists).
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    space.ParseFromString(xplane.read_bytes())
    host = next((plane for plane in space.planes if plane.name == "/host:CPU"), None)
    if host is None:
        raise RuntimeError(f"{xplane} holds no host (CPU) events.")
    op_time: collections.Counter[str] = collections.Counter()
    step_ms: list[float] = []
    input_ms = 0.0
    for line in host.lines:
        for event in line.events:
            metadata = host.event_metadata[event.metadata_id]
            if metadata.name == STEP_EVENT:
                step_ms.append(event.duration_ps / 1e9)
            elif metadata.name == INPUT_EVENT:
                input_ms += event.duration_ps / 1e9
            elif line.name.startswith(OP_THREADS) and metadata.display_name:
                # An op's event is named "<scope>/<name>:<type>", displayed as its type;
                # the executor's own events have no display name.
                op_time[metadata.display_name] += event.duration_ps / 1e9
    if not step_ms or not op_time:
        raise RuntimeError(f"{xplane} holds no profiled training step.")
    return {**table(op_time, step_ms, top), "input_wait_ms_per_step": input_ms / len(step_ms)}


def table(op_time: collections.Counter[str], step_ms: list[float], top: int) -> dict[str, Any]:
    """The ``top`` op types by time per step, the rest as one row, with their shares."""
    steps, total = len(step_ms), sum(op_time.values())
    rows = [
        {"op": op, "ms_per_step": ms / steps, "share": ms / total}
        for op, ms in op_time.most_common(top)
    ]
    rest = total - sum(ms for _, ms in op_time.most_common(top))
    if rest > 0:
        others = len(op_time) - len(rows)
        rows.append(
            {"op": f"{others} other op types", "ms_per_step": rest / steps, "share": rest / total}
        )
    return {
        "profiled_steps": steps,
        "step_wall_ms": statistics.median(step_ms),
        "op_ms_per_step": total / steps,
        "ops": rows,
    }


def measure(args: Any) -> dict[str, Any]:
    from kimnet import training

    report: dict[str, Any] = {"machine": bench_train.machine(), "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="kimnet-profile-") as scratch:
        config = profiled_config(args, Path(scratch))
        with contextlib.redirect_stdout(io.StringIO()):  # the run's precision line
            training.train(config)
        files = sorted(
            Path(scratch).glob("profile/tensorboard/train/plugins/profile/*/*.xplane.pb")
        )
        if not files:
            raise RuntimeError("the profiler wrote no profile; see the log above.")
        report.update(summarise(files[-1], args.top))
    report["load_after"] = os.getloadavg()
    report["run"] = {
        "model": args.model,
        "image_size": config.data.image_size,
        "batch": args.batch,
        "augment": config.augment.ops,
        "steps": args.steps,
    }
    return report


def write(report: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    run = report["run"]
    lines = [
        f"# Training step profile: {run['model']}, {run['image_size']} px, batch {run['batch']}, "
        f"augment {run['augment']}",
        "",
        f"{report['profiled_steps']} profiled steps; step wall time (median) "
        f"{report['step_wall_ms']:.0f} ms, of which waiting for the input pipeline "
        f"{report['input_wait_ms_per_step']:.1f} ms; op time {report['op_ms_per_step']:.0f} ms "
        "per step (ops that ran in parallel add up). Load average "
        f"{report['load_before'][0]:.1f} before, {report['load_after'][0]:.1f} after.",
        "",
        "| op type | ms per step | share of op time |",
        "| --- | ---: | ---: |",
        *(
            f"| {row['op']} | {row['ms_per_step']:.1f} | {row['share']:.1%} |"
            for row in report["ops"]
        ),
    ]
    paths = [out / "profile.md", out / "profile.json"]
    paths[0].write_text("\n".join(lines) + "\n")
    paths[1].write_text(json.dumps(report, indent=2) + "\n")
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    return bench_train.report_main(argv, parse_args, measure, write)


if __name__ == "__main__":
    sys.exit(main())
