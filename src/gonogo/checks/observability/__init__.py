"""The `observability` check kind: truthful health and metrics under faults (see check.py)."""

from gonogo.checks.observability.check import ObservabilityCheck

__all__ = ["ObservabilityCheck"]
