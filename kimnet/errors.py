"""The exception kimnet raises for bad input.

:class:`InputError` marks a problem with what the user gave (a flag, a config, a
file, a request), never a bug. Its message names the problem and the fix, and the
pipeline scripts print it as one line and exit with status 2; any other exception
keeps its traceback, so a bug is never mistaken for bad input. It subclasses
``ValueError``, so code that catches ``ValueError`` keeps working.
"""


class InputError(ValueError):
    """Bad input from the user; the message says what is wrong and how to fix it."""
