"""The ``kimnet`` command line.

``kimnet serve --model_dir savedmodels [--host 127.0.0.1] [--port 8501] [--batch_size 32]
[--batch_timeout_ms 5] [--no_batching]``: serves every model under the directory with
TF Serving's REST API.

``kimnet predict (--server URL | --model_dir DIR) image.png ...``: prints each image's
top-5 classes, from a running server or directly from a SavedModel directory.

``kimnet train`` / ``kimnet finetune`` (an experiment config and dotted overrides; see
``kimnet train --help``), ``kimnet study --study=FILE.py``, ``kimnet models`` and
``kimnet data`` run the programs of :mod:`kimnet.commands`, :mod:`kimnet.models` and
:mod:`kimnet.data` with the rest of the command line.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path


def _add_serve(subparsers: argparse._SubParsersAction) -> None:
    from kimnet.serving.app import DEFAULT_HOST, DEFAULT_MAX_BODY_BYTES, DEFAULT_PORT
    from kimnet.serving.rest import Limits

    parser = subparsers.add_parser(
        "serve",
        help="Serve SavedModels with TF Serving's REST API v1.",
        description=(
            "Serves <model_dir>/<model name>/<integer version>/ SavedModels (TF Serving's layout) "
            "at http://HOST:PORT/v1/models/<name>. New versions are picked up without a restart."
        ),
    )
    parser.add_argument("--model_dir", default="savedmodels", help="Base directory of models.")
    parser.add_argument(
        "--model_name",
        default=None,
        help="Serve --model_dir as this single model (it then holds the version folders).",
    )
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help="Address to bind (default %(default)s)."
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="Port (default %(default)s)."
    )
    parser.add_argument(
        "--batch_size", type=int, default=32, help="Most examples per server-side batch."
    )
    parser.add_argument(
        "--batch_timeout_ms",
        type=float,
        default=5.0,
        help="Longest a request waits for its batch to fill (milliseconds).",
    )
    parser.add_argument("--no_batching", action="store_true", help="Run every request on its own.")
    parser.add_argument(
        "--num_batch_threads",
        type=int,
        default=None,
        help="Threads running the model (default: number of CPUs).",
    )
    parser.add_argument(
        "--poll_interval_s",
        type=float,
        default=2.0,
        help="Seconds between scans of --model_dir for new versions (0: never).",
    )
    parser.add_argument(
        "--num_versions",
        type=int,
        default=1,
        help="Newest versions of each model kept loaded (0: all; TF Serving keeps 1).",
    )
    parser.add_argument(
        "--max_body_mb",
        type=float,
        default=DEFAULT_MAX_BODY_BYTES / 2**20,
        help="Larger request bodies get HTTP 413 (MiB, default %(default)s).",
    )
    limits = Limits()
    parser.add_argument(
        "--max_instances",
        type=int,
        default=limits.max_instances,
        help="Most examples in one request; more get HTTP 400 (default %(default)s).",
    )
    parser.add_argument(
        "--max_image_pixels",
        type=int,
        default=limits.max_image_pixels,
        help="Most pixels (height x width) per image, read from the image header before "
        "decoding, and per uint8 image tensor; more get HTTP 400 (default %(default)s).",
    )
    parser.add_argument(
        "--max_json_depth",
        type=int,
        default=limits.max_json_depth,
        help="Deepest nesting of JSON arrays/objects; deeper gets HTTP 400 (default %(default)s).",
    )
    parser.add_argument(
        "--parse_workers",
        type=int,
        default=2,
        help="Processes that parse bodies over 64 KiB, so large requests never stall others "
        "(0: parse in a thread; default %(default)s).",
    )
    parser.add_argument(
        "--log_level", default="info", help="uvicorn log level (debug: one line per request)."
    )
    parser.add_argument("--access_log", action="store_true", help="Log every request.")
    parser.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    from kimnet.serving.app import ServerConfig, serve
    from kimnet.serving.rest import Limits

    model_dir = Path(args.model_dir)
    if not model_dir.is_dir():
        print(f"error: --model_dir '{model_dir}' is not a directory.", file=sys.stderr)
        return 2
    for flag, value, low in [
        ("--batch_size", args.batch_size, 1),
        ("--batch_timeout_ms", args.batch_timeout_ms, 0),
        ("--num_versions", args.num_versions, 0),
        ("--poll_interval_s", args.poll_interval_s, 0),
        ("--max_instances", args.max_instances, 1),
        ("--max_image_pixels", args.max_image_pixels, 1),
        ("--max_json_depth", args.max_json_depth, 2),
        ("--parse_workers", args.parse_workers, 0),
    ]:
        if value < low:
            print(f"error: {flag} must be >= {low}, got {value}.", file=sys.stderr)
            return 2
    if args.max_body_mb <= 0:
        print("error: --max_body_mb must be positive.", file=sys.stderr)
        return 2
    # TensorFlow's C++ warnings about bad client inputs would flood the log; errors stay.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    level = logging.DEBUG if args.log_level == "debug" else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s:%(name)s: %(message)s")
    config = ServerConfig(
        model_dir=model_dir,
        model_name=args.model_name,
        enable_batching=not args.no_batching,
        max_batch_size=args.batch_size,
        batch_timeout_ms=args.batch_timeout_ms,
        num_batch_threads=args.num_batch_threads,
        max_body_bytes=int(args.max_body_mb * 2**20),
        poll_interval_s=args.poll_interval_s,
        num_versions=args.num_versions,
        limits=Limits(
            max_instances=args.max_instances,
            max_image_pixels=args.max_image_pixels,
            max_json_depth=args.max_json_depth,
        ),
        parse_workers=args.parse_workers,
    )
    serve(
        config,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=args.access_log,
    )
    return 0


def _add_predict(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="Classify image files with a server or a SavedModel directory.",
        description="Prints the top-5 classes (name and probability) of each image.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--server",
        help="Server URL: http://HOST:PORT (with --model when it serves several models) or "
        "http://HOST:PORT/v1/models/NAME.",
    )
    source.add_argument(
        "--model_dir",
        help="A SavedModel version folder, or a model folder (its newest version is used).",
    )
    parser.add_argument("--model", default=None, help="Model name on the server.")
    parser.add_argument("--version", default=None, help="Model version on the server.")
    parser.add_argument("--top", type=int, default=5, help="Classes to print per image (<= 5).")
    parser.add_argument("images", nargs="+", help="Image files (PNG, JPEG, BMP, GIF).")
    parser.set_defaults(func=_predict)


def format_top(path: str, names: Sequence[str], scores: Sequence[float], top: int = 5) -> str:
    """The text ``kimnet predict`` prints for one image."""
    lines = [f"{path}:"]
    width = max((len(str(n)) for n in names[:top]), default=0)
    for rank, (name, score) in enumerate(zip(names[:top], scores[:top], strict=False), start=1):
        lines.append(f"  {rank}. {str(name):<{width}}  {float(score):.4f}")
    return "\n".join(lines)


def _served_models_hint(server: str) -> str:
    """`` Served models: a, b.`` from the server's model list, or nothing."""
    import json
    import urllib.request

    root = server.rstrip("/").partition("/v1/models")[0]
    try:
        with urllib.request.urlopen(f"{root}/v1/models", timeout=10) as response:
            names = json.load(response).get("models", [])
    except (OSError, ValueError):
        return ""
    return f" Served models: {', '.join(names)}." if names else " It serves no model."


def _predict(args: argparse.Namespace) -> int:
    missing = [p for p in args.images if not Path(p).is_file()]
    if missing:
        print(f"error: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    images = [Path(p).read_bytes() for p in args.images]
    if args.server:
        from kimnet.serving.client import ServerError, predict_images

        try:
            results = predict_images(args.server, images, model=args.model, version=args.version)
        except ServerError as error:
            hint = _served_models_hint(args.server) if error.status == 404 else ""
            print(f"error: the server at {args.server} answered {error}.{hint}", file=sys.stderr)
            return 1
        except OSError as error:  # urllib's URLError: refused, unknown host, timeout
            reason = getattr(error, "reason", error)
            print(f"error: could not reach a server at {args.server} ({reason}).", file=sys.stderr)
            return 1
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        rows = [(r["top5_names"], r["top5_scores"]) for r in results]
    else:
        from kimnet.export import load
        from kimnet.serving.models import resolve_version_dir

        try:
            classifier = load(resolve_version_dir(args.model_dir))
            outputs = classifier.predict_bytes(images)
        except (FileNotFoundError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        except Exception as error:  # e.g. TF's InvalidArgumentError for undecodable bytes
            message = getattr(error, "message", str(error)).strip().splitlines()
            print(f"error: {message[-1] if message else error}", file=sys.stderr)
            return 1
        rows = list(
            zip(outputs["top5_names"].tolist(), outputs["top5_scores"].tolist(), strict=True)
        )
    for path, (names, scores) in zip(args.images, rows, strict=True):
        print(format_top(path, names, scores, args.top))
    return 0


# Subcommands that are programs of their own, given the rest of the command line.
PROGRAMS = {
    "train": ("kimnet.commands.train", "Train as an experiment config says (--help: fields)."),
    "finetune": ("kimnet.commands.train", "The same as train; set config.transfer.* fields."),
    "study": ("kimnet.commands.study", "Run a study file's experiments, write its table."),
    "evaluate": ("kimnet.commands.evaluate", "Evaluate a model on a split; write a report folder."),
    "models": ("kimnet.models.__main__", "List the registered models."),
    "data": ("kimnet.data.__main__", "Prepare a TFDS dataset, or write TFRecord shards."),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kimnet", description=__doc__.split("\n\n")[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, text) in PROGRAMS.items():
        subparsers.add_parser(name, help=text, add_help=False)
    _add_serve(subparsers)
    _add_predict(subparsers)
    return parser


def _run_program(command: str, rest: list[str]) -> int:
    import importlib

    module = importlib.import_module(PROGRAMS[command][0])
    if module.__name__.startswith("kimnet.commands"):
        return module.main([f"kimnet {command}", *rest])
    return module.main(rest)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kimnet`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in PROGRAMS:
        return _run_program(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    from kimnet import console

    console.start_tensorflow()  # serve and predict load SavedModels: no start-up noise
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
