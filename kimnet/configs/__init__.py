"""Experiment files: each defines ``get_config(arg=None)`` returning an experiment config.

``configs/`` at the top of the checkout is this folder.
"""
