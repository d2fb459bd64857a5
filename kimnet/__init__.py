"""kimnet: image classification with Keras 3 and TensorFlow, from data to a served model."""

__version__ = "0.1.0"
