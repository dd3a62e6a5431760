"""The evidence store and the records it keeps."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from gonogo.evidence.records import (
    ArtifactRecord,
    ArtifactRef,
    BaselineChoice,
    BaselineSetting,
    CheckRecord,
    EventRecord,
    GateRecord,
    MetricRecord,
    ReportFileRecord,
    RunRecord,
    SampleSeries,
    SignoffRecord,
    SignoffRequirement,
    VerdictRecord,
)

if TYPE_CHECKING:
    from gonogo.evidence.store import Store

__all__ = [
    "ArtifactRecord",
    "ArtifactRef",
    "BaselineChoice",
    "BaselineSetting",
    "CheckRecord",
    "EventRecord",
    "GateRecord",
    "MetricRecord",
    "ReportFileRecord",
    "RunRecord",
    "SampleSeries",
    "SignoffRecord",
    "SignoffRequirement",
    "Store",
    "VerdictRecord",
]


def __getattr__(name: str) -> Any:
    # The store is imported when first used: the check kinds take ArtifactRef from the
    # records, and `gonogo validate` must not pay for SQLAlchemy (0.3 s) to load them.
    if name != "Store":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    store: Any = importlib.import_module("gonogo.evidence.store").Store
    globals()["Store"] = store
    return store
