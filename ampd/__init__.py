"""ampd: ship this host's metrics to Amazon Managed Service for Prometheus, declaratively."""

__version__ = "0.1.0"
__all__ = ["__version__"]
