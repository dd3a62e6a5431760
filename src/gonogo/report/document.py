"""Everything a report shows about one run, read from the evidence store only."""

from __future__ import annotations

__all__ = [
    "COMPARISON_HEADERS",
    "ResourceSummary",
    "RunReport",
    "artifact_command",
    "collect",
    "comparison_caption",
    "comparison_cells",
    "gate_threshold",
]

import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean

from gonogo.evidence import (
    ArtifactRecord,
    CheckRecord,
    EventRecord,
    GateRecord,
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
    JourneyDetail,
    LatencySpectrum,
    TrendPoint,
    read_experiments,
    read_journeys,
    read_spectra,
    read_trend,
)
from gonogo.units import format_p_value, format_value
from gonogo.verdict.baseline import COMPARISON_ARTIFACT, BaselineComparison, BaselineRow
from gonogo.verdict.flaky import FLAKY_ARTIFACT, FlakyHistory, FlakyTest, read_flaky_history
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
    # the relative gates against the baseline, from the run's `baseline-comparison.json`
    baseline: BaselineComparison | None = None
    # The flaky tests of this run (docs/flaky-tests.md), from its `flaky-tests.json`, highest flip rate
    # first, and the runs they were judged over (oldest first, this run last); both empty when the
    # run judged none (no per-test outcomes).
    flaky_tests: list[FlakyTest] = field(default_factory=list)
    flaky_window: list[str] = field(default_factory=list)
    # What the HTML report draws (report/details.py): every sampled series, the journeys and
    # their failures, the chaos experiments' timelines, the latency spectra and the plan's
    # earlier runs, oldest first.
    samples: list[SampleSeries] = field(default_factory=list)
    journeys: list[JourneyDetail] = field(default_factory=list)
    experiments: list[ExperimentTimeline] = field(default_factory=list)
    spectra: list[LatencySpectrum] = field(default_factory=list)
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
    flaky = _flaky_history(store, artifacts)
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
        baseline=read_baseline_comparison(artifacts, store.artifact_path),
        flaky_tests=list(flaky.tests) if flaky else [],
        flaky_window=list(flaky.window) if flaky else [],
        samples=samples,
        journeys=read_journeys(artifacts, metrics, store.artifact_path),
        experiments=read_experiments(artifacts, metrics, store.artifact_path),
        spectra=read_spectra(artifacts, store.artifact_path),
        trend=read_trend(store, run, checks),
    )


def read_baseline_comparison(
    artifacts: list[ArtifactRecord], path_of: Callable[[str], Path]
) -> BaselineComparison | None:
    """The run's baseline comparison; None when it has none, or its file is missing or unreadable
    (`gonogo verify` is what reports a missing or altered artifact)."""
    for artifact in artifacts:
        if artifact.check is None and artifact.name == COMPARISON_ARTIFACT:
            try:
                return BaselineComparison.from_json(json.loads(path_of(artifact.sha256).read_bytes()))
            except (OSError, ValueError, KeyError, TypeError):
                return None
    return None


COMPARISON_HEADERS = (
    "metric",
    "gate",
    "baseline",
    "this run",
    "p-value",
    "distribution shift (CI)",
    "effect size",
    "status",
)


def comparison_cells(row: BaselineRow) -> list[str]:
    """One relative gate's comparison as the terminal, Markdown and HTML reports show it: the
    figure of the baseline and of this run the gate judged (with their intervals, for a
    percentile), the limit beside the gate, and the whole distribution's p-value, shift and
    effect size."""
    unit = row.unit
    if row.method == "none":
        return [row.metric, row.expr, "—", "—", "—", row.note, "—", row.status]
    p_value = format_p_value(row.p_value) if row.p_value is not None else "—"
    effect = f"{row.effect_size:.2f}" if row.effect_size is not None else "—"
    shift = "—"
    if row.shift is not None and row.low is not None and row.high is not None:
        share = f" ({row.relative_shift:+.1%})" if row.relative_shift is not None else ""
        confidence = f"{row.confidence:.0%} " if row.confidence is not None else ""
        ends = f"[{_signed(row.low, unit)}, {_signed(row.high, unit)}]"
        shift = f"{_signed(row.shift, unit)}{share}, {confidence}CI {ends}"
    op = row.expr.split(" ", 1)[0]
    if row.method == "quantile":
        statistic = row.statistic or "percentile"
        return [
            row.metric,
            f"{row.expr}: {statistic} {op} {format_value(row.limit, unit)}",
            f"{statistic} {format_value(row.baseline_value, unit)} "
            f"{_interval(row.baseline_low, row.baseline_high, unit)} (n={row.n1})",
            f"{statistic} {format_value(row.candidate_value, unit)} "
            f"{_interval(row.candidate_low, row.candidate_high, unit)} (n={row.n2})",
            p_value,
            shift,
            effect,
            row.status,
        ]
    if row.method == "mann-whitney":
        limit = f": shift {op} {_signed(row.limit, unit)}" if row.limit is not None else ""
        return [
            row.metric,
            f"{row.expr}{limit}",
            f"median {format_value(row.baseline_value, unit)} (n={row.n1})",
            f"median {format_value(row.candidate_value, unit)} (n={row.n2})",
            p_value,
            shift,
            effect,
            row.status,
        ]
    change = "—"
    if row.baseline_value is not None and row.candidate_value is not None:
        delta = row.candidate_value - row.baseline_value
        share = f" ({delta / row.baseline_value:+.1%})" if row.baseline_value else ""
        change = f"{_signed(delta, unit)}{share}"
    return [
        row.metric,
        f"{row.expr}: {op} {format_value(row.limit, unit)}",
        format_value(row.baseline_value, unit),
        format_value(row.candidate_value, unit),
        "—",
        change,
        "—",
        row.status,
    ]


def gate_threshold(gate: GateRecord, *, full: bool = True) -> str:
    """A gate's threshold as the gate tables show it: the expression, or for a relative gate that
    was judged the limit it came to (`<= 48.9 ms (+10% of baseline p95 …; fails only when …)`);
    `full=False`, for a terminal: the limit and the expression (`<= 48.9 ms (<= +10% baseline)`)."""
    if not gate.expr.endswith("baseline") or gate.threshold == gate.expr or gate.status == "not_measured":
        return gate.expr
    if full:
        return gate.threshold
    limit = gate.threshold.split(" (", 1)[0]
    return f"{limit} ({gate.expr})"


def comparison_caption(comparison: BaselineComparison) -> str:
    """What the relative gates compared with, as one sentence."""
    if comparison.how == "none":
        return (
            f"No baseline: {comparison.detail}; every relative gate is not measured until there is one "
            "(pin a run with gonogo baseline set RUN)"
        )
    return f"Compared with {comparison.detail}"


def _interval(low: float | None, high: float | None, unit: str) -> str:
    return f"[{format_value(low, unit)}, {format_value(high, unit)}]"


def _signed(value: float, unit: str) -> str:
    return ("+" if value > 0 else "") + format_value(value, unit)


def _flaky_history(store: Store, artifacts: list[ArtifactRecord]) -> FlakyHistory | None:
    """The run's `flaky-tests.json`; None when it has none, or it is missing or unreadable
    (`gonogo verify` is what reports a missing or altered artifact)."""
    for artifact in artifacts:
        if artifact.name == FLAKY_ARTIFACT and artifact.check is None:
            try:
                return read_flaky_history(store.artifact_path(artifact.sha256).read_bytes())
            except OSError:
                return None
    return None
