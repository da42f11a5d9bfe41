"""VLA control stack: contracts, model, training, the real-time runner and the hydra apps."""

__version__ = "0.1.0"
