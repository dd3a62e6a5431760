"""The `chaos` check kind: fault experiments under load, measured for users (see check.py)."""

from gonogo.checks.chaos.check import ChaosCheck

__all__ = ["ChaosCheck"]
