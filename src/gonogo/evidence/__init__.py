"""The evidence store and the records it keeps."""

from gonogo.evidence.records import (
    ArtifactRecord,
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
from gonogo.evidence.store import Store

__all__ = [
    "ArtifactRecord",
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
