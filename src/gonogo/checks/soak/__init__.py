"""The `soak` check kind: sustained load while every service is sampled, and the trends of its window."""

from gonogo.checks.soak.check import SoakCheck
from gonogo.checks.soak.settings import SoakSettings

__all__ = ["SoakCheck", "SoakSettings"]
