"""mlrollout: a Kubernetes operator for a model's whole production loop."""

__version__ = "0.1.0"
