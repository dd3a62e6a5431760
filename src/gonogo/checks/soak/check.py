"""The `soak` check kind: sustained load for a duration while gonogo samples every service, then
the trend of each sampled resource and of the latency over the soak's window.

The traffic is the load kind's (`gonogo.loadgen.drive`): open-model requests or journeys at
`rate`, a warm-up first (by default `system.trends.warmup`), then `duration` measured. The
window of every trend is that measured phase: the run's resource samples of each watched
service (rss, fds, threads, cpu; `ctx.resource_samples`) and the per-second p95 latency, each
fitted with Theil-Sen (`gonogo.system.resource_trends`), projected to `system.trends.horizon`
against its limit (the service's `limits`, the process's soft RLIMIT_NOFILE for fds, the
check's `latency_slo`), and flagged as a leak only when the growth is significant and
material. For each resource it also says how long a soak would need to flag a given growth
(`detect`), and the smallest growth this one could flag, from the noise it measured.

A plan without gates on this check gets the default gates: no leak of rss, fds or threads in
any service, every projection within its limit, no latency growth, error rate under 1%.
Metrics: docs/metrics.md; how to read them: docs/soak.md.
"""

from __future__ import annotations

__all__ = ["DEFAULT_GATES", "SoakCheck", "soak_metric_names"]

import json
import threading
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from gonogo.checks.base import (
    ArtifactRef,
    CheckContext,
    CheckKind,
    CheckOutcome,
    MetricPatterns,
    PlanNames,
    Reference,
)
from gonogo.checks.soak.resources import DETECT_FIGURES, SeriesResult, latency_trend, resource_trends
from gonogo.checks.soak.settings import SoakSettings
from gonogo.loadgen import histogram as hist
from gonogo.loadgen.drive import Measured, PerSecond, drive_load, per_second
from gonogo.loadgen.journey_compile import driver_line
from gonogo.system.procfs import open_files_limit
from gonogo.system.resource_trends import LIMIT_FIGURES, RESOURCES, TREND_FIGURES
from gonogo.system.trends import MIN_SAMPLES, TooFewSamples, trend
from gonogo.units import Unit, format_value

LOAD_FIGURES = (
    "requests",
    "errors",
    "error_rate",
    "throughput",
    "generator.cpu",
    "generator.max_lag",
    "generator.late",
    "generator.valid",
)
LATENCY_PERCENTILES = {"p50": 50.0, "p95": 95.0, "p99": 99.0}
# What makes a plan without gates find a leak (metric names after `<check>.`; globs over services).
DEFAULT_GATES: Mapping[str, str] = {
    **{f"*.{resource}.leak": "== 0" for resource in ("rss", "fds", "threads")},
    "*.within_limit": "== 1",  # every projection with a limit: fds always (RLIMIT_NOFILE)
    "latency.leak": "== 0",
    "error_rate": "< 1%",
}
_DIMENSION = {"rss": "reliability", "fds": "reliability", "threads": "reliability", "cpu": "performance"}
_PROGRESS_FIT_EVERY = 5.0  # seconds between refits of the live RSS slope


def soak_metric_names(settings: SoakSettings, services: Collection[str]) -> list[str]:
    """Every metric a soak with these settings may record, watching `services` when its settings
    name none (docs/metrics.md)."""
    names = [*LOAD_FIGURES, *(f"latency.{p}" for p in (*LATENCY_PERCENTILES, "max"))]
    names += [f"latency.{figure}" for figure in TREND_FIGURES]
    if settings.latency_slo is not None:
        names += [f"latency.{figure}" for figure in LIMIT_FIGURES]
    for service in settings.services or sorted(services):
        for resource in RESOURCES:
            figures = (*TREND_FIGURES, *LIMIT_FIGURES, *DETECT_FIGURES)
            names += [f"{service}.{resource}.{figure}" for figure in figures]
    return names


class SoakCheck(CheckKind[SoakSettings]):
    kind = "soak"
    Settings = SoakSettings
    series_metrics = frozenset({"latency.p95", "error_rate", "throughput"})
    live_metrics = frozenset({"error_rate", "latency.p95", "latency.p99"})  # `LoadWatch` follows them

    @classmethod
    def metric_names(cls, settings: SoakSettings, plan: PlanNames) -> MetricPatterns:
        return soak_metric_names(settings, plan.services)

    @classmethod
    def default_gates(cls, settings: SoakSettings) -> Mapping[str, str | Mapping[str, object]]:
        return DEFAULT_GATES

    @classmethod
    def references(cls, settings: SoakSettings) -> list[Reference]:
        return [
            Reference("service", name, ("services", index), purpose="whose resources the soak trends")
            for index, name in enumerate(settings.services or [])
        ]

    @classmethod
    def describe(cls, settings: SoakSettings) -> str | None:
        return driver_line(settings.load_settings(0.0))  # journeys: the C engine, or why not

    def run(self, settings: SoakSettings, ctx: CheckContext) -> CheckOutcome:
        return _Soak(settings, ctx).run()


class _Soak:
    """One soak: drive the load, then fit and record the trends of its window."""

    def __init__(self, settings: SoakSettings, ctx: CheckContext) -> None:
        self.settings = settings
        self.ctx = ctx
        system = ctx.system
        self.warmup = settings.warmup if settings.warmup is not None else system.trends.warmup
        self.services = list(settings.services or system.services)
        self.load = settings.load_settings(self.warmup)
        self.fd_limits: dict[str, tuple[float, str]] = {}

    def run(self) -> CheckOutcome:
        # Read now, while every service runs: a process that dies during the soak takes its limit along.
        self.fd_limits = self._fd_limits()
        _warm_up_statistics()
        started = datetime.now(UTC)
        with _LiveSlope(self.ctx, self.services, started, self.warmup, self.load.planned_duration) as live:
            return drive_load(self.load, self.ctx, self._record, progress_extra=live)

    def _fd_limits(self) -> dict[str, tuple[float, str]]:
        control = self.ctx.fault_targets.services
        pids = control.pids() if control is not None else {}
        found = {}
        for service in self.services:
            pid = pids.get(service)
            limit = open_files_limit(pid) if pid is not None else None
            if limit is not None:
                found[service] = (
                    float(limit),
                    f"the soft RLIMIT_NOFILE of process {pid} (/proc/{pid}/limits)",
                )
        return found

    def _record(self, measured: Measured) -> CheckOutcome:
        ctx, settings, system = self.ctx, self.settings, self.ctx.system
        since, until = measured.window
        invalid = measured.generator_problems(settings.generator)
        series = per_second(measured)
        latency = (
            None
            if invalid
            else latency_trend(series.p95, since=since, trends=system.trends, slo=settings.latency_slo)
        )
        resources = resource_trends(
            ctx.resource_samples(since),
            self.services,
            since=since,
            until=until,
            trends=system.trends,
            limits={name: system.services[name].limits for name in self.services if name in system.services},
            fd_limits=self.fd_limits,
            detect={str(resource): slope for resource, slope in settings.detect.items()},
            fallback_interval=system.sample_interval,
        )
        evidence = self._store(measured, series, latency, resources)
        _LoadRecorder(ctx, measured, evidence).record(series, invalid=invalid)
        trends = [*([latency] if latency is not None else []), *resources]
        for result in trends:
            dimension = (
                "performance" if result.name == "latency" else _DIMENSION[result.name.rsplit(".", 1)[1]]
            )
            for figure, source in result.figures:
                ctx.record_metric(
                    f"{result.name}.{figure.name}",
                    figure.value,
                    figure.unit,
                    dimension=dimension,
                    source=source,
                    artifact=evidence,
                    window=(since, until),
                )
        return _outcome(measured, trends, invalid, sampled=bool(self.services))

    def _store(
        self,
        measured: Measured,
        series: PerSecond,
        latency: SeriesResult | None,
        resources: Sequence[SeriesResult],
    ) -> ArtifactRef:
        since, until = measured.window
        trends = self.ctx.system.trends
        document = {
            "format": "gonogo soak evidence/1: points are [seconds since window.start, value] in base units",
            "window": {"start": since.isoformat(), "end": until.isoformat(), "warmup_before": self.warmup},
            "trends": {"horizon": trends.horizon, "confidence": trends.confidence},
            "load": {
                "source": measured.source,
                "requests": measured.overall.counts.requests,
                "errors": measured.overall.counts.error_total,
                "note": measured.note,
                "latency_corrected_histogram": hist.encode(measured.overall.corrected),
                "histogram_format": "HdrHistogram V2 compressed base64; values in microseconds",
            },
            "per_second": {
                "latency_p95": _relative(series.p95, since),
                "error_rate": _relative(series.error_rate, since),
                "throughput": _relative(series.rps, since),
            },
            "latency": latency.evidence(since) if latency is not None else None,
            "resources": {result.name: result.evidence(since) for result in resources},
            "summaries": [result.summary for result in ([latency] if latency else []) + list(resources)],
        }
        return self.ctx.store_artifact(
            json.dumps(document, indent=1, ensure_ascii=False).encode(),
            name=f"soak-{self.ctx.check_name}.json",
            media_type="application/json",
        )


class _LoadRecorder:
    """The load's own figures over the soak's window, and its per-second series."""

    def __init__(self, ctx: CheckContext, measured: Measured, evidence: ArtifactRef) -> None:
        self.ctx, self.m, self.evidence = ctx, measured, evidence

    def record(self, series: PerSecond, *, invalid: list[str]) -> None:
        counts, seconds = self.m.overall.counts, self.m.measured_seconds
        # The generator's own figures first: they say whether the others are the server's.
        if self.m.cpu is not None:
            self._metric("generator.cpu", self.m.cpu, "ratio", "performance")
        self._metric("generator.max_lag", self.m.max_lag_us / 1e6, "seconds", "performance")
        self._metric("generator.late", self.m.behind, "count", "performance")
        self._metric("generator.valid", 0.0 if invalid else 1.0, "number", "performance")
        with_latency = not invalid
        self._metric("requests", counts.requests, "count", "performance")
        self._metric("errors", counts.error_total, "count", "reliability")
        self._metric("error_rate", counts.error_rate, "ratio", "reliability")
        self._metric(
            "throughput", counts.responses / seconds if seconds > 0 else None, "per_second", "performance"
        )
        self.ctx.record_series("error_rate", "ratio", series.error_rate)
        self.ctx.record_series("throughput", "per_second", series.rps)
        if not with_latency:
            return  # the generator was the bottleneck: these would be its latency, not the server's
        corrected = self.m.overall.corrected
        if corrected.get_total_count():
            values = hist.percentiles(corrected, list(LATENCY_PERCENTILES.values()))
            for name, percentile in LATENCY_PERCENTILES.items():
                self._metric(f"latency.{name}", values[percentile] / 1e6, "seconds", "performance")
            self._metric("latency.max", corrected.get_max_value() / 1e6, "seconds", "performance")
        self.ctx.record_series("latency.p95", "seconds", series.p95)

    def _metric(self, name: str, value: float | None, unit: Unit, dimension: str) -> None:
        if value is None:
            return  # not measured: never recorded as zero
        self.ctx.record_metric(
            name,
            value,
            unit,
            dimension=dimension,
            source=self.m.source,
            artifact=self.evidence,
            window=self.m.window,
        )


class _LiveSlope:
    """The progress line's extra: time left and each service's RSS slope so far, refitted every
    few seconds, after the warm-up, on a thread of its own. The progress callback runs on the
    load engine's thread: a fit there (the first one loads half of scipy, a second) would stall
    the load, and the soak would measure its own pause as the server's latency."""

    def __init__(
        self, ctx: CheckContext, services: Sequence[str], started: datetime, warmup: float, planned: float
    ) -> None:
        self.ctx, self.services, self.started = ctx, services, started
        self.warmup, self.planned = warmup, planned
        self._text = ""
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._refit, name="gonogo-soak-slope", daemon=True)

    def __enter__(self) -> _LiveSlope:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=10)

    def __call__(self) -> str:
        elapsed = (datetime.now(UTC) - self.started).total_seconds()
        remaining = max(self.planned - elapsed, 0.0)
        left = f"{remaining:.0f} s left" if remaining < 120 else f"{format_value(remaining, 'seconds')} left"
        text = self._text  # one reference, replaced whole by the other thread
        return f"{left}, {text}" if text else left

    def _refit(self) -> None:
        while not self._done.wait(_PROGRESS_FIT_EVERY):
            self._text = self._slopes()

    def _slopes(self) -> str:
        samples = self.ctx.resource_samples(self.started + timedelta(seconds=self.warmup))
        shown = []
        for service in self.services:
            points = [((at - self.started).total_seconds(), v) for at, v in samples.get((service, "rss"), [])]
            try:
                fitted = trend(points, warmup=self.warmup, horizon=None, limit=None, unit="bytes")
            except TooFewSamples:
                shown.append(f"{service} RSS: slope after {MIN_SAMPLES} samples past the warm-up")
                continue
            sign = "+" if fitted.slope >= 0 else ""
            flagged = " (growing)" if fitted.significant else ""
            shown.append(f"{service} RSS {sign}{format_value(fitted.slope, 'bytes')}/h so far{flagged}")
        return ", ".join(shown)


def _warm_up_statistics() -> None:
    """Fit a trend once before the load starts: the first fit loads scipy's statistics (about a
    second), which must not land in the middle of the soak."""
    trend([(float(i), float(i)) for i in range(MIN_SAMPLES)], warmup=0, horizon=None, limit=None)


def _relative(points: Sequence[tuple[datetime, float]], since: datetime) -> list[list[float]]:
    return [[round((at - since).total_seconds(), 3), value] for at, value in points]


def _outcome(
    measured: Measured, trends: Sequence[SeriesResult], invalid: list[str], *, sampled: bool
) -> CheckOutcome:
    counts = measured.overall.counts
    rate = counts.responses / measured.measured_seconds if measured.measured_seconds > 0 else 0.0
    summary = (
        f"soak of {format_value(measured.measured_seconds, 'seconds')}: {counts.requests} requests"
        f" ({rate:.0f}/s), error rate {format_value(counts.error_rate, 'ratio')}"
    )
    if measured.journeys is not None:
        iterations = sum(journey.iterations for journey in measured.journeys.journeys)
        summary += f", {iterations} journey iterations"
    leaks = [result.subject for result in trends if result.fitted.trend and result.fitted.trend.significant]
    summary += f"; growth flagged: {', '.join(leaks)}" if leaks else "; no growth flagged"
    if not sampled:
        summary += "; no service sampled: the plan starts none, so no resource trend is measured"
    if measured.note:
        summary += f"; {measured.note}"
    details = [result.summary for result in trends]
    if invalid:
        reason = "; ".join(invalid) + ": the generator did not keep its schedule, so latency is not reported"
        return CheckOutcome("error", f"invalid run: {reason}; {summary}", [reason, *details])
    return CheckOutcome("completed", summary, details)
