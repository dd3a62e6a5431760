"""Check kinds: each one a module behind the small interface of `gonogo.checks.base`."""

from gonogo.checks.base import (
    ArtifactRef,
    CheckContext,
    CheckKind,
    CheckOutcome,
    CommandResult,
    MetricPatterns,
    PlanNames,
    Reference,
)

__all__ = [
    "ArtifactRef",
    "CheckContext",
    "CheckKind",
    "CheckOutcome",
    "CommandResult",
    "MetricPatterns",
    "PlanNames",
    "Reference",
]
