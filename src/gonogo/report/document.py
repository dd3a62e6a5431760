"""Everything a report shows about one run, read from the evidence store only."""

from __future__ import annotations

__all__ = ["RunReport", "collect"]

from dataclasses import dataclass

from gonogo.evidence import (
    ArtifactRecord,
    CheckRecord,
    EventRecord,
    MetricRecord,
    RunRecord,
    Store,
    VerdictRecord,
)


@dataclass(frozen=True)
class RunReport:
    run: RunRecord
    checks: list[CheckRecord]
    metrics: list[MetricRecord]
    artifacts: list[ArtifactRecord]
    events: list[EventRecord]
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
        verdict=store.verdict(run_id),
    )
