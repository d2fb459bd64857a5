"""The command line of training programs: one experiment config flag with dotted overrides.

``--config=FILE.py[:ARG]`` names an experiment file (``get_config(arg)``),
``--config=runs/NAME`` or ``--config=runs/NAME/config.json`` a finished run's
experiment, and ``--config.SECTION.FIELD=VALUE`` overrides one field. Bad input
(an unknown key, a bad value, a missing file) ends the program with one line on
stderr and exit status 2, before anything is written; ``-h``/``--help`` lists
every field with its default.
"""

from __future__ import annotations

import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import ml_collections
from absl import app, flags
from ml_collections import config_flags

from kimnet import console, experiment
from kimnet.errors import ONE_LINE_ERRORS, InputError, TrainingStopped, exit_code

FLAG_ERROR_EXIT = 2
CONFIGS = Path(__file__).resolve().parent / "configs"
DEFAULT_CONFIG = str(CONFIGS / "train.py")
_RUN_CONFIG = str(CONFIGS / "run.py")
_OVERRIDE = re.compile(r"^--?(?:no)?config\.([^=]+)")


def help_text(program: str) -> str:
    """Usage, then every config field with its default and meaning, section by section."""
    lines = [
        f"usage: {program} [--config=FILE.py[:ARG] | --config=runs/NAME] "
        "[--config.SECTION.FIELD=VALUE ...]",
        "",
        f"Default experiment: {DEFAULT_CONFIG} (variant :quick shrinks it to a smoke test).",
        "Fields (override any of them by its dotted path):",
    ]
    for section, entries in experiment.SCHEMA.items():
        lines.append(f"\n  {section}")
        for name, field in entries.items():
            default = "-" if field.default is None else repr(field.default)
            lines.append(f"    {section}.{name:<26} {default:<16} {field.help}")
    return "\n".join(lines)


def _rewrite(argv: list[str]) -> list[str]:
    """Checks override keys (nearest valid key on a typo) and maps a run's config.json
    or run directory onto the experiment file that reads it back."""
    out = []
    for arg in argv:
        key = _OVERRIDE.match(arg)
        if key:
            experiment.check_key(key.group(1))
        if arg.startswith("--config="):
            spec = arg.split("=", 1)[1]
            target = Path(spec.split(":", 1)[0]).expanduser()
            if target.suffix == ".json" or target.is_dir():
                arg = f"--config={_RUN_CONFIG}:{spec}"
            elif not target.is_file():
                raise experiment.missing_config(str(target))
        out.append(arg)
    # ml_collections reads overrides only after the file flag: put it first.
    return sorted(out, key=lambda arg: not arg.startswith("--config="))


HELP = ("-h", "--help", "-help", "--helpfull")


def _program_help(main: Callable) -> str:
    """The program's docstring and its own flags (not absl's, TensorFlow's or TFDS's)."""
    module = sys.modules[main.__module__]
    own = flags.FLAGS.module_help(module.__name__).strip()
    return f"{(module.__doc__ or '').strip()}\n\nflags:\n{own}" if own else module.__doc__


def _parse_flags_or_exit(argv: list[str]) -> list[str]:
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(FLAG_ERROR_EXIT)


def run_experiment(
    main: Callable[[ml_collections.ConfigDict], None],
    argv: list[str] | None = None,
    default: str = DEFAULT_CONFIG,
) -> int:
    """Parses the experiment flag from ``argv`` and calls ``main(config)`` under :func:`run`.

    The flag is defined here, not at import: ml_collections reads the overrides from
    the command line as soon as the flag exists, so they are checked first.
    """
    argv = list(sys.argv if argv is None else argv)
    if any(arg in HELP for arg in argv[1:]):
        print(help_text(Path(argv[0]).name))
        return 0
    try:
        argv = [argv[0], *_rewrite(argv[1:])]
        holder = config_flags.DEFINE_config_file(
            "config",
            default,
            "Experiment: FILE.py[:ARG], a run directory or its config.json.",
            sys_argv=argv,
        )
    except (InputError, KeyError, OSError) as error:
        print(f"error: {str(error).strip(chr(39))}", file=sys.stderr)
        return FLAG_ERROR_EXIT

    def with_config(args: list[str]) -> None:
        if len(args) > 1:
            raise InputError(f"Unexpected arguments: {' '.join(args[1:])}; see --help.")
        main(experiment.validate(holder.value))

    return run(with_config, argv)


def run(main: Callable[[list[str]], None], argv: list[str] | None = None) -> int:
    """``app.run(main)`` where bad input exits with one line on stderr and status 2.

    Bad input is an :class:`~kimnet.errors.InputError`, or a missing or already existing
    file (status 2); a full disk, a diverged or a stopped run (:data:`ONE_LINE_ERRORS`) and
    Ctrl-C are one line too. Every other exception is a bug and keeps its traceback.
    """

    argv = list(sys.argv if argv is None else argv)
    if any(arg in HELP for arg in argv[1:]):
        print(_program_help(main))
        return 0

    def guarded(args: list[str]) -> None:
        console.quiet_python_logs()
        try:
            main(args)
        except ONE_LINE_ERRORS as error:
            prefix = "" if isinstance(error, TrainingStopped) else "error: "
            print(f"{prefix}{error}", file=sys.stderr)
            sys.exit(exit_code(error))
        except (FileExistsError, FileNotFoundError) as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(FLAG_ERROR_EXIT)
        except KeyboardInterrupt:
            print("Stopped at once; the last checkpoint stays where it was.", file=sys.stderr)
            sys.exit(128 + signal.SIGINT)

    app.run(guarded, argv=argv, flags_parser=_parse_flags_or_exit)
    return 0


def print_summary(result) -> None:
    m = result.metrics
    steady = m.steady_images_per_second
    throughput = f", {steady:.0f} after the first step" if steady else ""
    print(
        f"\nDone: {m.model} on {m.dataset}: test top-1 {m.test_top1:.4f}, "
        f"top-5 {m.test_top5:.4f} after {m.epochs} epochs in {m.wall_time_seconds:.0f} s "
        f"({m.train_images_per_second:.0f} training images/s{throughput}).\n"
        f"Run directory: {result.run_dir}  (tensorboard --logdir {result.run_dir.parent})\n"
        f"SavedModel:    {result.export_dir}"
    )
