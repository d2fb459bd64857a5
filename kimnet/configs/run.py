"""A finished run's experiment: ``--config=runs/NAME`` or ``runs/NAME/config.json``.

The training programs map those spellings onto ``--config=.../run.py:PATH``.
"""

from kimnet import experiment


def get_config(path: str):
    return experiment.load(path)
