"""The `load` check kind: open- or closed-model HTTP load on the plan's own system.

Two kinds of traffic: `requests` (a weighted mix of plain requests, sent by the C engine,
`engine.run_load`) or `journeys` (multi-step iterations of the plan's journeys, driven by
`journey_load.run_journey_load`). Both end up in the same shapes (`Aggregate`, `Counts`,
`SecondStats`), and one recorder turns them into the same metric names, so the same gates
work on either; journeys add their `journey.<name>.*` figures.

Latency is measured from each request's intended send time (corrected for coordinated
omission) and from its actual send time, losslessly in HdrHistograms kept as evidence.
A run during which the generator itself was the bottleneck (its CPU near its cores'
limit, or too many requests or iterations sent late) is *invalid*: its latency figures
are not the server's, so none is recorded and the check ends in error. Only loopback
targets are loaded. Metrics: docs/metrics.md.
"""

from __future__ import annotations

__all__ = ["LoadCheck", "build_endpoint", "run_setup"]

import json
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from gonogo.checks.base import ArtifactRef, CheckContext, CheckKind, CheckOutcome, MetricPatterns, PlanNames
from gonogo.journey.once import resolve_base_url, run_setup, upload_files
from gonogo.journey.variables import VariableError
from gonogo.loadgen import histogram as hist
from gonogo.loadgen.endpoints import build_endpoint
from gonogo.loadgen.engine import (
    CONNECTION_ERROR_KINDS,
    Aggregate,
    Counts,
    LoadInterrupted,
    LoadResult,
    LoadSpec,
    LoadSpecError,
    ProgressSnapshot,
    SecondStats,
    loopback_address,
    run_load,
)
from gonogo.loadgen.expect import KEPT_FAILURES, AssertionFailure
from gonogo.loadgen.journey_load import (
    ASSERTION,
    JourneyLoadInterrupted,
    JourneyLoadResult,
    run_journey_load,
)
from gonogo.loadgen.settings import LoadSettings
from gonogo.units import Unit, format_value

_NO_RESPONSE = (*CONNECTION_ERROR_KINDS, "timeout")  # the error kinds that come without a response
_PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p99_9": 99.9}


class LoadCheck(CheckKind[LoadSettings]):
    kind = "load"
    series_metrics = frozenset({"rps", "error_rate", "latency.p95", "latency.p99"})
    Settings = LoadSettings

    @classmethod
    def metric_names(cls, settings: LoadSettings, plan: PlanNames) -> MetricPatterns:
        return _metric_names(settings)

    def run(self, settings: LoadSettings, ctx: CheckContext) -> CheckOutcome:
        base_url, problem = resolve_base_url(settings.base_url, ctx)
        if problem:
            return CheckOutcome("error", problem)
        assert base_url is not None
        target = urlsplit(base_url)
        if target.scheme != "http":
            return CheckOutcome("error", f"the load engine speaks plain HTTP/1.1; {base_url} is not http://")
        if settings.journeys is not None:
            return _run_journeys(settings, base_url, target.hostname or "", ctx)
        variables, problem = (
            run_setup(settings.setup, settings.request_timeout, base_url, ctx)
            if settings.setup
            else ({}, None)
        )
        if problem:
            return CheckOutcome("error", problem)
        try:
            spec = _spec(settings, target.hostname or "", target.port or 80, target.netloc, variables, ctx)
            spec.validate()
        except (LoadSpecError, VariableError) as error:
            return CheckOutcome("error", f"the load cannot run: {error}")
        watch = _Watch(ctx, settings)
        started = datetime.now(UTC)
        try:
            result = run_load(spec, on_progress=watch.snapshot, stop=watch.stop)
        except LoadInterrupted as interrupted:
            # Ctrl-C: keep what was measured, then let the runner abort the run.
            _Recorder(ctx, settings, _from_requests(settings, interrupted.result, started, base_url)).record()
            raise
        outcome = _Recorder(ctx, settings, _from_requests(settings, result, started, base_url)).record()
        return watch.outcome(outcome)


def _run_journeys(settings: LoadSettings, base_url: str, host: str, ctx: CheckContext) -> CheckOutcome:
    try:
        loopback_address(host)  # the engine's rule: loopback addresses only
    except LoadSpecError as error:
        return CheckOutcome("error", f"the load cannot run: {error}")
    files, missing = upload_files(settings.journeys_settings(), ctx)
    if missing:
        return CheckOutcome("error", f"{len(missing)} file(s) to upload cannot be read", details=missing)
    watch = _Watch(ctx, settings)
    try:
        result = run_journey_load(
            settings, base_url, files=files, expand=ctx.expand, on_progress=watch.snapshot, stop=watch.stop
        )
    except JourneyLoadInterrupted as interrupted:
        # Ctrl-C: keep what was measured, then let the runner abort the run.
        measured = _from_journeys(settings, interrupted.result, base_url)
        _Recorder(ctx, settings, measured).record(interrupted.result)
        raise interrupted.original from None
    outcome = _Recorder(ctx, settings, _from_journeys(settings, result, base_url)).record(result)
    return watch.outcome(outcome)


def _spec(
    settings: LoadSettings, host: str, port: int, netloc: str, variables: Mapping[str, Any], ctx: CheckContext
) -> LoadSpec:
    assert settings.requests is not None
    return LoadSpec(
        host=host,
        port=port,
        endpoints=[build_endpoint(request, variables, ctx) for request in settings.requests],
        model=settings.model,
        rate=settings.rate,
        stages=[(stage.duration, stage.rate) for stage in settings.stages],
        poisson=settings.arrivals == "poisson",
        seed=settings.seed,
        users=settings.users or 1,
        think_time=settings.think_time,
        # `max_duration` is a hard stop: it bounds a run given only `max_requests` or stages too
        duration=min(settings.duration or math.inf, settings.max_duration - settings.warmup),
        max_requests=settings.max_requests,
        warmup=settings.warmup,
        max_connections=settings.max_connections,
        timeout=settings.request_timeout,
        late_threshold=settings.late_threshold,
        workers=0 if settings.workers == "auto" else settings.workers,
        host_header=netloc,
    )


class _Watch:
    """Live progress, and an early stop when an `abort_on_fail` gate is in breach."""

    def __init__(self, ctx: CheckContext, settings: LoadSettings) -> None:
        self.ctx = ctx
        self.stop = threading.Event()
        self.reason: str | None = None
        self._error_rates: list[tuple[datetime, float]] = []
        # per measured second, for gates with a timeframe; the instants only need to be a second apart
        self._origin = datetime.now(UTC)
        self._p95: list[tuple[datetime, float]] = []
        self._p99: list[tuple[datetime, float]] = []
        self._last: ProgressSnapshot | None = None
        self._planned = settings.planned_duration

    def outcome(self, outcome: CheckOutcome) -> CheckOutcome:
        """The outcome, saying so if an abort gate stopped the load early."""
        if not self.reason:
            return outcome
        return CheckOutcome(
            outcome.status, f"stopped early: {self.reason}; {outcome.message}", outcome.details
        )

    def snapshot(self, snap: ProgressSnapshot, extra: str = "") -> None:
        phase = "warm-up" if snap.warming_up else "load"
        p95 = format_value(snap.p95_us / 1e6, "seconds") if snap.p95_us is not None else "—"
        self.ctx.progress(
            f"{phase} {snap.elapsed:.0f}/{self._planned:.0f}s: {snap.rps:.0f} req/s, "
            f"{snap.errors} errors, p95 {p95}, {snap.late} late, {snap.dropped} dropped"
            + (f", {extra}" if extra else "")
        )
        for second in snap.seconds:
            at = self._origin + timedelta(seconds=second.second)
            for series, value in ((self._p95, second.p95_us), (self._p99, second.p99_us)):
                if value is not None:
                    series.append((at, value / 1e6))
        if snap.warming_up or self.reason:
            return
        previous = self._last
        self._last = snap
        # Errors over requests sent: a few are still in flight, which only delays an abort.
        sent = snap.requests - (previous.requests if previous else 0)
        new_errors = snap.errors - (previous.errors if previous else 0)
        if sent > 0:
            self._error_rates.append((datetime.now(UTC), min(1.0, new_errors / sent)))
        checks: list[tuple[str, float | None, list[tuple[datetime, float]]]] = [
            ("error_rate", snap.errors / snap.requests if snap.requests else None, self._error_rates),
            ("latency.p95", snap.p95_us / 1e6 if snap.p95_us is not None else None, self._p95),
            ("latency.p99", snap.p99_us / 1e6 if snap.p99_us is not None else None, self._p99),
        ]
        for name, so_far, per_second in checks:
            reason = self.ctx.breached(name, so_far=so_far, per_second=per_second)
            if reason:
                self.reason = reason
                self.ctx.progress(f"stopping early: {reason}")
                self.stop.set()
                return


@dataclass(frozen=True)
class _Measured:
    """What either kind of traffic measured, in the engine's shapes: the recorder's input."""

    endpoints: Sequence[tuple[str, Aggregate]]  # requests: by name; journeys: `<journey>.<step>`
    overall: Aggregate
    components: Mapping[str, Aggregate]
    series: Sequence[SecondStats]
    measured_seconds: float
    measured_from: datetime
    cpu: float | None  # the busiest generator thread's CPU share; None: none ran a second
    max_lag_us: int
    behind: int  # requests (or iterations) the generator itself reached late (see `Counts.behind`) …
    scheduled: int  # … of these
    unit: str  # "requests" or "iterations"
    source: str
    asserted: frozenset[str]  # the prefixes ("", "endpoint.X.", "component.Y.") with `errors.assertion`
    note: str | None = None  # how the run ended, if not by itself
    # requests: the responses kept that failed their `expect`; None: no request has one
    failures: Sequence[AssertionFailure] | None = None


def _from_requests(settings: LoadSettings, result: LoadResult, started: datetime, base_url: str) -> _Measured:
    # Over a run shorter than a second, CPU time against wall time says nothing.
    timed = [worker.cpu_utilisation for worker in result.workers if worker.wall_seconds >= 1.0]
    return _Measured(
        endpoints=[(e.endpoint.name, e) for e in result.endpoints],
        overall=result.overall,
        components=result.components,
        series=result.series,
        measured_seconds=result.measured_seconds,
        measured_from=started + timedelta(seconds=result.wall_seconds - result.measured_seconds),
        cpu=max(timed) if timed else None,
        max_lag_us=result.max_lag_us,
        behind=result.total.behind,
        scheduled=result.total.scheduled,
        unit="requests",
        source=_describe(
            settings,
            base_url,
            f"{len(result.spec.endpoints)} request(s), {len(result.workers)} worker(s)",
        ),
        asserted=frozenset(_asserted(settings)),
        failures=(
            [f for e in result.endpoints for f in e.failures]
            if any(e.endpoint.expect is not None for e in result.endpoints)
            else None
        ),
    )


def _from_journeys(settings: LoadSettings, result: JourneyLoadResult, base_url: str) -> _Measured:
    mix = ", ".join(j.name if j.weight == 1 else f"{j.name} (weight {j.weight})" for j in result.journeys)
    note = None
    if result.hit_max_duration:
        note = f"cut at max_duration ({settings.max_duration:g}s), iterations in flight cancelled"
    return _Measured(
        endpoints=[(step.endpoint.name, step) for step in result.steps],
        overall=result.overall,
        components=result.components,
        series=result.series,
        measured_seconds=result.measured_seconds,
        measured_from=result.started_at + timedelta(seconds=result.wall_seconds - result.measured_seconds),
        cpu=result.cpu_utilisation if result.generator_seconds >= 1.0 else None,
        max_lag_us=result.max_lag_us,
        behind=result.iterations.behind,
        scheduled=result.iterations.scheduled,
        unit="iterations",
        source=_describe(settings, base_url, f"journeys {mix}, one asyncio loop"),
        asserted=frozenset(_asserted(settings)),
        note=note,
    )


def _describe(settings: LoadSettings, base_url: str, traffic: str) -> str:
    s = settings
    if s.model == "open":
        shape = (
            f"{s.rate:g}/s"
            if s.rate
            else " → ".join(f"{st.rate:g}/s over {st.duration:g}s" for st in s.stages)
        )
        shape = f"open model, {s.arrivals} arrivals at {shape}"
    else:
        shape = f"closed model, {s.users} users, think time {s.think_time:g}s"
    return f"load: {shape}, {traffic}, against {base_url}"


_COUNTS = (
    "requests",
    "rps",
    "error_rate",
    "errors",
    "errors.4xx",
    "errors.5xx",
    "errors.connection",
    "errors.timeout",
    "late",
    "dropped",
)
_LATENCY = [
    f"{name}.{suffix}"
    for name in ("latency", "latency_uncorrected")
    for suffix in (*_PERCENTILES, "max", "mean")
]
# A journey's iterations: `_spread` without `with_extra`.
_DURATION = [
    f"{name}.{suffix}"
    for name in ("duration", "duration_uncorrected")
    for suffix in ("p50", "p95", "p99", "max")
]
_GENERATOR = ("generator.cpu", "generator.max_lag", "generator.late", "generator.valid")


def _asserted(settings: LoadSettings) -> list[str]:
    """The metric prefixes that get `errors.assertion`: with journeys, all (every step has an
    `expect`); with requests, those of the requests with an `expect`, their components and
    the whole load if any has one."""
    if settings.journeys:
        steps = [(name, step.name) for name, journey in settings.journeys.items() for step in journey.steps]
        return [
            "",
            *(f"endpoint.{journey}.{step}." for journey, step in steps),
            *dict.fromkeys(f"component.{settings.component_of(j, s)}." for j, s in steps),
        ]
    checked = [request for request in settings.requests or [] if request.expect is not None]
    if not checked:
        return []
    return [
        "",
        *(f"endpoint.{request.name}." for request in checked),
        *dict.fromkeys(f"component.{request.component}." for request in checked),
    ]


def _metric_names(settings: LoadSettings) -> list[str]:
    """Every metric `_Recorder` can record for these settings (docs/metrics.md)."""
    journeys = settings.journeys or {}
    steps = [(name, step.name) for name, journey in journeys.items() for step in journey.steps]
    requests = settings.requests or []
    figures = [*_COUNTS, *_LATENCY]
    if journeys:
        endpoints = [f"{journey}.{step}" for journey, step in steps]
        components = {settings.component_of(journey, step) for journey, step in steps}
    else:
        endpoints = [request.name for request in requests]
        components = {request.component for request in requests}
    prefixes = ["", *(f"endpoint.{name}." for name in endpoints), *(f"component.{c}." for c in components)]
    names = [prefix + figure for prefix in prefixes for figure in figures]
    names += [prefix + "errors.assertion" for prefix in _asserted(settings)]
    names += ["warmup.requests", *_GENERATOR]
    if journeys:
        names += ["iterations", "success_rate"]
        for name in journeys:
            names += [f"journey.{name}.{figure}" for figure in ("iterations", "failures", "success_rate")]
            names += [f"journey.{name}.{figure}" for figure in _DURATION]
    return names


class _Recorder:
    """Turns what a load measured into metrics, per-second series and evidence files."""

    def __init__(self, ctx: CheckContext, settings: LoadSettings, measured: _Measured) -> None:
        self.ctx = ctx
        self.settings = settings
        self.m = measured
        self.measured_from = measured.measured_from
        self.window = (self.measured_from, self.measured_from + timedelta(seconds=measured.measured_seconds))
        self.source = measured.source

    def record(self, journeys: JourneyLoadResult | None = None) -> CheckOutcome:
        m = self.m
        histograms = self._store_histograms(journeys)
        self.failures = self._store_assertion_failures()
        invalid = self._generator()
        self._counts("", m.overall.counts, m.measured_seconds)
        self._metric("warmup.requests", m.overall.warmup.requests, "count", "performance")
        if not invalid:
            self._latency("", m.overall, histograms)
        for name, aggregate in m.endpoints:
            prefix = f"endpoint.{name}."
            self._counts(prefix, aggregate.counts, m.measured_seconds)
            if not invalid:
                self._latency(prefix, aggregate, histograms)
        for component, aggregate in m.components.items():
            prefix = f"component.{component}."
            self._counts(prefix, aggregate.counts, m.measured_seconds)
            if not invalid:
                self._latency(prefix, aggregate, histograms)
        self._series(with_latency=not invalid)
        total = m.overall.counts
        rate = total.responses / m.measured_seconds if m.measured_seconds > 0 else 0.0
        summary = (
            f"{total.requests} requests in {m.measured_seconds:.1f}s ({rate:.0f}/s), "
            f"error rate {format_value(total.error_rate, 'ratio')}, "
            f"{total.late} late, {total.dropped} dropped"
        )
        if journeys is not None:
            summary = self._journeys(journeys, histograms, with_duration=not invalid) + ", " + summary
        failed = total.errors[ASSERTION]
        if m.failures is not None and failed:
            summary += (
                f", {failed} response(s) failed their expect (the first ones in load-assertion-failures.json)"
            )
        if m.note:
            summary += f"; {m.note}"
        if invalid:
            return CheckOutcome(
                "error",
                f"invalid run: {invalid}; {summary}",
                [invalid, *(f.summary() for f in (m.failures or [])[:5])],
            )
        p95 = hist.percentiles(m.overall.corrected, [95.0]).get(95.0)
        if p95 is not None:
            summary += f", p95 {format_value(p95 / 1e6, 'seconds')}"
        details = [f.summary() for f in journeys.failures[:5]] if journeys is not None else []
        details += [f.summary() for f in (m.failures or [])[:5]]
        return CheckOutcome("completed", summary, details)

    def _metric(
        self,
        name: str,
        value: float | None,
        unit: Unit,
        dimension: str,
        artifact: ArtifactRef | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        if value is None:
            return  # not measured: never recorded as zero
        self.ctx.record_metric(
            name,
            value,
            unit,
            dimension=dimension,
            source=self.source,
            artifact=artifact,
            window=self.window,
            labels=labels,
        )

    def _counts(self, prefix: str, counts: Counts, seconds: float) -> None:
        self._metric(f"{prefix}requests", counts.requests, "count", "performance")
        self._metric(
            f"{prefix}rps", counts.responses / seconds if seconds > 0 else None, "per_second", "performance"
        )
        self._metric(f"{prefix}error_rate", counts.error_rate, "ratio", "reliability")
        self._metric(f"{prefix}errors", counts.error_total, "count", "reliability")
        self._metric(f"{prefix}errors.4xx", counts.errors["http_4xx"], "count", "reliability")
        self._metric(f"{prefix}errors.5xx", counts.errors["http_5xx"], "count", "reliability")
        self._metric(f"{prefix}errors.connection", counts.connection_errors, "count", "reliability")
        self._metric(f"{prefix}errors.timeout", counts.timeouts, "count", "reliability")
        if prefix in self.m.asserted:  # responses that failed their request's (or step's) `expect`
            self._metric(
                f"{prefix}errors.assertion", counts.errors[ASSERTION], "count", "reliability", self.failures
            )
        self._metric(f"{prefix}late", counts.late, "count", "performance")
        self._metric(f"{prefix}dropped", counts.dropped, "count", "performance")

    def _latency(self, prefix: str, aggregate: Aggregate, artifact: ArtifactRef) -> None:
        self._spread(f"{prefix}latency", aggregate.corrected, artifact, with_extra=True)
        self._spread(f"{prefix}latency_uncorrected", aggregate.uncorrected, artifact, with_extra=True)

    def _spread(
        self,
        name: str,
        histogram: hist.HdrHistogram,
        artifact: ArtifactRef,
        *,
        with_extra: bool,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        """Percentiles, max (and p90, p99.9 and mean `with_extra`) of a histogram in µs."""
        if not histogram.get_total_count():
            return
        wanted = _PERCENTILES if with_extra else {k: _PERCENTILES[k] for k in ("p50", "p95", "p99")}
        values = hist.percentiles(histogram, list(wanted.values()))
        for suffix, percentile in wanted.items():
            self._metric(
                f"{name}.{suffix}", values[percentile] / 1e6, "seconds", "performance", artifact, labels
            )
        self._metric(
            f"{name}.max", histogram.get_max_value() / 1e6, "seconds", "performance", artifact, labels
        )
        if with_extra:
            self._metric(
                f"{name}.mean", histogram.get_mean_value() / 1e6, "seconds", "performance", artifact, labels
            )

    def _journeys(self, result: JourneyLoadResult, histograms: ArtifactRef, *, with_duration: bool) -> str:
        """Record the iterations' figures; a summary of them."""
        failures = self._store_failures(result)
        completed = sum(j.iterations for j in result.journeys)
        passed = sum(j.passed for j in result.journeys)
        self._metric("iterations", completed, "count", "performance", failures)
        if completed:
            self._metric("success_rate", passed / completed, "ratio", "reliability", failures)
        for journey in result.journeys:
            prefix, labels = f"journey.{journey.name}.", {"journey": journey.name}
            self._metric(f"{prefix}iterations", journey.iterations, "count", "performance", failures, labels)
            self._metric(
                f"{prefix}failures",
                journey.iterations - journey.passed,
                "count",
                "reliability",
                failures,
                labels,
            )
            self._metric(
                f"{prefix}success_rate", journey.success_rate, "ratio", "reliability", failures, labels
            )
            if with_duration:
                self._spread(
                    f"{prefix}duration", journey.duration, histograms, with_extra=False, labels=labels
                )
                self._spread(
                    f"{prefix}duration_uncorrected",
                    journey.duration_uncorrected,
                    histograms,
                    with_extra=False,
                    labels=labels,
                )
        seconds = self.m.measured_seconds
        per_second = f" ({completed / seconds:.1f}/s)" if seconds > 0 else ""
        success = f", success rate {format_value(passed / completed, 'ratio')}" if completed else ""
        return f"{completed} iterations{per_second} of {len(result.journeys)} journey(s){success}"

    def _store_failures(self, result: JourneyLoadResult) -> ArtifactRef:
        document = {
            "failures_total": result.failure_count,
            "kept": len(result.failures),
            "failed_at": {j.name: dict(j.failed_at) for j in result.journeys},
            "iterations": asdict(result.iterations),
            "failures": [asdict(failure) for failure in result.failures],
        }
        return self.ctx.store_artifact(
            json.dumps(document, indent=1, ensure_ascii=False).encode(),
            name="load-journey-failures.json",
            media_type="application/json",
        )

    def _store_assertion_failures(self) -> ArtifactRef | None:
        """Requests with an `expect`: the first failing responses of each, as evidence."""
        failures = self.m.failures
        if failures is None:
            return None
        document = {
            "failures_total": {name: a.counts.errors[ASSERTION] for name, a in self.m.endpoints},
            "http_errors_total": {
                name: a.counts.errors["http_4xx"] + a.counts.errors["http_5xx"]
                for name, a in self.m.endpoints
            },
            "kept": len(failures),
            "kept_per_endpoint": KEPT_FAILURES,
            "failures": [asdict(failure) for failure in failures],
        }
        return self.ctx.store_artifact(
            json.dumps(document, indent=1, ensure_ascii=False).encode(),
            name="load-assertion-failures.json",
            media_type="application/json",
        )

    def _generator(self) -> str | None:
        """Record how hard the generator worked; why the run is invalid, if it is."""
        m, limits = self.m, self.settings.generator
        cpu = m.cpu or 0.0
        if m.cpu is not None:
            self._metric("generator.cpu", cpu, "ratio", "performance")
        self._metric("generator.max_lag", m.max_lag_us / 1e6, "seconds", "performance")
        # Only lateness that is the generator's own: a request that waited for a connection
        # the server still held is late too, but that wait is the server's, and it is in the
        # corrected latency.
        self._metric("generator.late", m.behind, "count", "performance")
        late_share = m.behind / m.scheduled if m.scheduled else 0.0
        problems = []
        if cpu > limits.max_cpu:
            problems.append(
                f"the load generator used {format_value(cpu, 'ratio')} of its core "
                f"(limit {format_value(limits.max_cpu, 'ratio')})"
            )
        if late_share > limits.max_late:
            problems.append(
                f"the load generator fell behind its schedule for {format_value(late_share, 'ratio')} "
                f"of the {m.unit} (limit {format_value(limits.max_late, 'ratio')})"
            )
        self._metric("generator.valid", 0.0 if problems else 1.0, "number", "performance")
        if not problems:
            return None
        return "; ".join(problems) + ": the generator was the bottleneck, so latency is not reported"

    def _store_histograms(self, journeys: JourneyLoadResult | None) -> ArtifactRef:
        m = self.m

        def both(aggregate: Aggregate) -> dict[str, str]:
            return {
                "corrected": hist.encode(aggregate.corrected),
                "uncorrected": hist.encode(aggregate.uncorrected),
            }

        document: dict[str, object] = {
            "format": "HdrHistogram V2 compressed base64; values in microseconds",
            "overall": both(m.overall),
            "endpoints": {name: both(aggregate) for name, aggregate in m.endpoints},
            "components": {name: both(a) for name, a in m.components.items()},
        }
        if journeys is not None:  # whole iterations (successful ones), from intended and actual start
            document["journeys"] = {
                j.name: {
                    "corrected": hist.encode(j.duration),
                    "uncorrected": hist.encode(j.duration_uncorrected),
                }
                for j in journeys.journeys
            }
        return self.ctx.store_artifact(
            json.dumps(document, indent=1).encode(),
            name="load-histograms.json",
            media_type="application/json",
        )

    def _series(self, *, with_latency: bool) -> None:
        Points = list[tuple[datetime, float]]
        rps: Points = []
        errors: Points = []
        p95: Points = []
        p99: Points = []
        for second in self.m.series:
            at = self.measured_from + timedelta(seconds=second.second)
            if second.span > 0:
                rps.append((at, second.responses / second.span))
            # 4xx/5xx (and journeys' assertion failures) are responses too: count them once
            done = second.responses + sum(second.errors.get(kind, 0) for kind in _NO_RESPONSE)
            if done:
                errors.append((at, second.error_total / done))
            for bucket, percentile in ((p95, 95.0), (p99, 99.0)):
                value = second.percentile_with_waiting(percentile)
                if value is not None:
                    bucket.append((at, value / 1e6))
        self.ctx.record_series("rps", "per_second", rps)
        self.ctx.record_series("error_rate", "ratio", errors)
        if with_latency:
            self.ctx.record_series("latency.p95", "seconds", p95)
            self.ctx.record_series("latency.p99", "seconds", p99)
