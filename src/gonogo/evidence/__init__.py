"""The evidence store and the records it keeps."""

from gonogo.evidence.records import (
    ArtifactRecord,
    CheckRecord,
    EventRecord,
    GateRecord,
    MetricRecord,
    RunRecord,
    SampleSeries,
    VerdictRecord,
)
from gonogo.evidence.store import Store

__all__ = [
    "ArtifactRecord",
    "CheckRecord",
    "EventRecord",
    "GateRecord",
    "MetricRecord",
    "RunRecord",
    "SampleSeries",
    "Store",
    "VerdictRecord",
]
