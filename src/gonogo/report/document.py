"""Everything a report shows about one run, read from the evidence store only."""

from __future__ import annotations

__all__ = ["ResourceSummary", "RunReport", "artifact_command", "collect"]

import shlex
from dataclasses import dataclass, field
from statistics import fmean

from gonogo.evidence import (
    ArtifactRecord,
    CheckRecord,
    EventRecord,
    MetricRecord,
    RunRecord,
    SampleSeries,
    SignoffRecord,
    Store,
    VerdictRecord,
)
from gonogo.evidence.digest import evidence_digest
from gonogo.evidence.findings import StoredFinding, read_findings
from gonogo.report.details import (
    ExperimentTimeline,
    FlakyTest,
    JourneyDetail,
    LatencySpectrum,
    TrendPoint,
    read_experiments,
    read_flaky_tests,
    read_journeys,
    read_spectra,
    read_trend,
)
from gonogo.verdict.signoff import SignoffStatus, outcome, signoff_status


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
    # Everything above, as one sha256 (evidence/digest.py): what a sign-off is given on.
    evidence_digest: str = ""
    signoffs: list[SignoffRecord] = field(default_factory=list)
    signoff: SignoffStatus | None = None  # None: no sign-off required
    findings: list[StoredFinding] = field(default_factory=list)  # the checks' findings (security)
    # What the HTML report draws (report/details.py): every sampled series, the journeys and
    # their failures, the chaos experiments' timelines, the latency spectra, the flaky tests
    # (None: the run has no flaky-tests.json) and the plan's earlier runs, oldest first.
    samples: list[SampleSeries] = field(default_factory=list)
    journeys: list[JourneyDetail] = field(default_factory=list)
    experiments: list[ExperimentTimeline] = field(default_factory=list)
    spectra: list[LatencySpectrum] = field(default_factory=list)
    flaky_tests: list[FlakyTest] | None = None
    trend: list[TrendPoint] = field(default_factory=list)

    @property
    def open_findings(self) -> list[StoredFinding]:
        """The findings that count: all but the plan's accepted risks."""
        return [finding for finding in self.findings if not finding.ignored_because]

    @property
    def accepted_risks(self) -> list[StoredFinding]:
        return [finding for finding in self.findings if finding.ignored_because]

    @property
    def decision(self) -> str:
        return self.verdict.decision if self.verdict else "NO VERDICT"

    @property
    def outcome(self) -> str:
        """The decision, with the sign-offs a GO still waits for."""
        return outcome(self.verdict, self.signoff)

    def artifact_of(self, metric: MetricRecord) -> ArtifactRecord | None:
        """The stored artifact a metric was read from, preferring its own check's."""
        if metric.artifact_sha256 is None:
            return None
        matches = [a for a in self.artifacts if a.sha256 == metric.artifact_sha256]
        own = [a for a in matches if a.check == metric.check]
        return (own or matches)[0] if matches else None


def artifact_command(run_id: str, artifact: ArtifactRecord) -> str:
    """The command that writes one artifact of a run out of the store."""
    words = ["gonogo", "artifacts", run_id, artifact.name]
    if artifact.check:
        words += ["--check", artifact.check]
    return shlex.join([*words, "-o", artifact.name.rpartition("/")[2]])


def collect(store: Store, run_id: str) -> RunReport:
    run = store.resolve_run(run_id)
    checks, metrics = store.checks(run_id), store.metrics(run_id)
    artifacts, events = store.artifacts(run_id), store.events(run_id)
    samples, verdict = store.samples(run_id), store.verdict(run_id)
    signoffs = store.signoffs(run_id)
    digest = evidence_digest(run, checks, metrics, artifacts, events, samples, verdict)
    return RunReport(
        run=run,
        checks=checks,
        metrics=metrics,
        artifacts=artifacts,
        events=events,
        resources=[
            ResourceSummary.of(series) for series in samples if series.points and "service" in series.labels
        ],
        verdict=verdict,
        evidence_digest=digest,
        signoffs=signoffs,
        signoff=signoff_status(verdict, signoffs, digest),
        findings=read_findings(artifacts, store.artifact_path),
        samples=samples,
        journeys=read_journeys(artifacts, metrics, store.artifact_path),
        experiments=read_experiments(artifacts, metrics, store.artifact_path),
        spectra=read_spectra(artifacts, store.artifact_path),
        flaky_tests=read_flaky_tests(artifacts, store.artifact_path),
        trend=read_trend(store, run, checks),
    )
