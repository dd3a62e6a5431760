"""The `load` check kind and its engine (open and closed models, coordinated-omission-correct)."""

from gonogo.checks.load.check import LoadCheck
from gonogo.loadgen.settings import LoadSettings

__all__ = ["LoadCheck", "LoadSettings"]
