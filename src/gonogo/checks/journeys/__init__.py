"""The `journeys` check kind: multi-step HTTP user workflows with evidence.

Plan settings are in `gonogo.journey.settings`, the metrics in
`gonogo.checks.journeys.metrics`.
"""

from gonogo.checks.journeys.check import JourneysCheck
from gonogo.journey.settings import JourneysSettings

__all__ = ["JourneysCheck", "JourneysSettings"]
