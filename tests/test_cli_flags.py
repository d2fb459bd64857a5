"""cli_flags: how the programs report bad input: one line and status 2, bugs keep tracebacks."""

import subprocess
import sys
import textwrap

from kimnet import cli_flags
from kimnet.errors import InputError


def _run_script(body: str) -> subprocess.CompletedProcess:
    script = textwrap.dedent(
        f"""
        import sys
        from kimnet import cli_flags
        from kimnet.errors import InputError

        def main(argv):
        {textwrap.indent(textwrap.dedent(body), "    ")}

        sys.exit(cli_flags.run(main))
        """
    )
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )


def test_input_error_exits_2_with_one_line():
    result = _run_script('raise InputError("batch_size must be at least 1, got 0.")')
    assert result.returncode == cli_flags.FLAG_ERROR_EXIT
    # TensorFlow may log its own start-up lines first; kimnet adds exactly one.
    assert result.stderr.strip().splitlines()[-1] == "error: batch_size must be at least 1, got 0."
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")] == [
        "error: batch_size must be at least 1, got 0."
    ]
    assert "Traceback" not in result.stderr


def test_missing_file_is_bad_input():
    result = _run_script('open("/nonexistent/kimnet-config.py")')
    assert result.returncode == cli_flags.FLAG_ERROR_EXIT
    assert "/nonexistent/kimnet-config.py" in result.stderr


def test_other_value_error_is_a_bug_and_keeps_its_traceback():
    # A ValueError from deep inside a library is not the user's input: it must not be
    # shortened to one line that hides where it came from.
    result = _run_script('raise ValueError("shapes (3,) and (4,) are incompatible")')
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert "shapes (3,) and (4,) are incompatible" in result.stderr


def test_unknown_flag_exits_2():
    result = subprocess.run(
        [sys.executable, "pipelines/train.py", "--modle=resnet18"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == cli_flags.FLAG_ERROR_EXIT
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "modle" in errors[0]


def test_input_error_is_a_value_error():
    # Callers that catch ValueError (as Keras code does) still see kimnet's errors.
    assert issubclass(InputError, ValueError)


def test_help_shows_the_programs_own_flags():
    result = subprocess.run(
        [sys.executable, "-m", "kimnet.cli", "study", "-h"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--study" in result.stdout and "--only" in result.stdout
    assert "tfds" not in result.stdout.lower() and "--xla" not in result.stdout
