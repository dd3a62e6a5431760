"""gonogo: an evidence-backed GO / NO-GO for production readiness."""

__version__ = "0.1.0"

__all__ = ["__version__"]
