"""kimnet: image classification with Keras 3 and TensorFlow, from data to a served model."""

from kimnet import console as _console

# Before anything can import TensorFlow: its start-up log is noise for a kimnet user.
_console.quiet_frameworks()

__version__ = "0.1.0"
