"""Everything a report shows about one run, read from the evidence store only."""

from __future__ import annotations

__all__ = ["ResourceSummary", "RunReport", "collect"]

from dataclasses import dataclass
from statistics import fmean

from gonogo.evidence import (
    ArtifactRecord,
    CheckRecord,
    EventRecord,
    MetricRecord,
    RunRecord,
    SampleSeries,
    Store,
    VerdictRecord,
)


@dataclass(frozen=True)
class ResourceSummary:
    """One sampled series (e.g. RSS of the api service) reduced to what a reader scans for."""

    name: str
    labels: dict[str, str]
    unit: str
    samples: int
    minimum: float
    mean: float
    maximum: float
    last: float

    @classmethod
    def of(cls, series: SampleSeries) -> ResourceSummary:
        values = [value for _, value in series.points]
        return cls(
            series.name, series.labels, series.unit, len(values),
            min(values), fmean(values), max(values), values[-1],
        )  # fmt: skip


@dataclass(frozen=True)
class RunReport:
    run: RunRecord
    checks: list[CheckRecord]
    metrics: list[MetricRecord]
    artifacts: list[ArtifactRecord]
    events: list[EventRecord]
    resources: list[ResourceSummary]
    verdict: VerdictRecord | None

    @property
    def decision(self) -> str:
        return self.verdict.decision if self.verdict else "NO VERDICT"


def collect(store: Store, run_id: str) -> RunReport:
    return RunReport(
        run=store.resolve_run(run_id),
        checks=store.checks(run_id),
        metrics=store.metrics(run_id),
        artifacts=store.artifacts(run_id),
        events=store.events(run_id),
        resources=[
            ResourceSummary.of(series)
            for series in store.samples(run_id)
            if series.points and "service" in series.labels
        ],
        verdict=store.verdict(run_id),
    )
