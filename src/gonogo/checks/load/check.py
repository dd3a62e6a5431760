"""The `load` check kind: open- or closed-model HTTP load on the plan's own system.

Latency is measured from each request's intended send time (corrected for coordinated
omission) and from its actual send time, losslessly in HdrHistograms kept as evidence.
A run during which the generator itself was the bottleneck (its CPU near its cores'
limit, or too many requests sent late) is *invalid*: its latency figures are not the
server's, so none is recorded and the check ends in error. Metrics: docs/metrics.md.
"""

from __future__ import annotations

__all__ = ["LoadCheck"]

import asyncio
import json
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from gonogo.checks.base import ArtifactRef, CheckContext, CheckKind, CheckOutcome
from gonogo.checks.journeys.check import resolve_base_url, upload_files
from gonogo.checks.journeys.engine import Engine
from gonogo.checks.journeys.settings import JourneysSettings
from gonogo.checks.journeys.variables import VariableError, render
from gonogo.checks.load import histogram as hist
from gonogo.checks.load.engine import (
    Aggregate,
    Counts,
    Endpoint,
    LoadInterrupted,
    LoadResult,
    LoadSpec,
    LoadSpecError,
    ProgressSnapshot,
    run_load,
)
from gonogo.checks.load.settings import LoadRequest, LoadSettings
from gonogo.units import Unit, format_value

_PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p99_9": 99.9}


class LoadCheck(CheckKind[LoadSettings]):
    kind = "load"
    Settings = LoadSettings

    def run(self, settings: LoadSettings, ctx: CheckContext) -> CheckOutcome:
        base_url, problem = resolve_base_url(settings.base_url, ctx)
        if problem:
            return CheckOutcome("error", problem)
        assert base_url is not None
        target = urlsplit(base_url)
        if target.scheme != "http":
            return CheckOutcome("error", f"the load engine speaks plain HTTP/1.1; {base_url} is not http://")
        variables, problem = _setup(settings, base_url, ctx)
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
            _Recorder(ctx, settings, interrupted.result, started, base_url).record()
            raise
        outcome = _Recorder(ctx, settings, result, started, base_url).record()
        if watch.reason:
            return CheckOutcome(
                "completed", f"stopped early: {watch.reason}; {outcome.message}", outcome.details
            )
        return outcome


def _setup(settings: LoadSettings, base_url: str, ctx: CheckContext) -> tuple[dict[str, Any], str | None]:
    """Run the setup journey once; its variables (a token, an id) feed the requests."""
    if settings.setup is None:
        return {}, None
    journeys = JourneysSettings.model_validate(
        {
            "journeys": {"setup": settings.setup.model_dump(by_alias=True)},
            "request_timeout": settings.request_timeout,
        }
    )
    files, missing = upload_files(journeys, ctx)
    if missing:
        return {}, "the setup journey cannot run: " + "; ".join(missing)
    engine = Engine(journeys, base_url, files=files, expand=ctx.expand, progress=ctx.progress)
    (result,) = asyncio.run(engine.run(on_journey_done=lambda _: None))
    iteration = result.iterations[0]
    if iteration.failure is not None:
        return {}, f"the setup journey failed, so no load was sent: {iteration.failure.summary()}"
    return iteration.variables, None


def _spec(
    settings: LoadSettings, host: str, port: int, netloc: str, variables: Mapping[str, Any], ctx: CheckContext
) -> LoadSpec:
    return LoadSpec(
        host=host,
        port=port,
        endpoints=[_endpoint(request, variables, ctx) for request in settings.requests],
        model=settings.model,
        rate=settings.rate,
        stages=[(stage.duration, stage.rate) for stage in settings.stages],
        poisson=settings.arrivals == "poisson",
        seed=settings.seed,
        users=settings.users or 1,
        think_time=settings.think_time,
        duration=min(settings.duration, settings.max_duration) if settings.duration else None,
        max_requests=settings.max_requests,
        warmup=settings.warmup,
        max_connections=settings.max_connections,
        timeout=settings.request_timeout,
        late_threshold=settings.late_threshold,
        workers=0 if settings.workers == "auto" else settings.workers,
        host_header=netloc,
    )


def _endpoint(request: LoadRequest, variables: Mapping[str, Any], ctx: CheckContext) -> Endpoint:
    def text(template: str) -> str:
        return render(template, variables, ctx.expand)

    body, content_type = request.body_template()
    headers = {name: text(value) for name, value in request.headers.items()}
    if content_type and not any(name.lower() == "content-type" for name in headers):
        headers["Content-Type"] = content_type
    return Endpoint(
        name=request.name,
        method=request.method,
        path=text(request.target()),
        headers=headers,
        body=text(body).encode() if body is not None else None,
        weight=request.weight,
        component=request.component,
    )


class _Watch:
    """Live progress, and an early stop when an `abort_on_fail` gate is in breach."""

    def __init__(self, ctx: CheckContext, settings: LoadSettings) -> None:
        self.ctx = ctx
        self.stop = threading.Event()
        self.reason: str | None = None
        self._error_rates: list[tuple[datetime, float]] = []
        self._last: ProgressSnapshot | None = None
        self._planned = settings.planned_duration

    def snapshot(self, snap: ProgressSnapshot) -> None:
        phase = "warm-up" if snap.warming_up else "load"
        p95 = format_value(snap.p95_us / 1e6, "seconds") if snap.p95_us is not None else "—"
        self.ctx.progress(
            f"{phase} {snap.elapsed:.0f}/{self._planned:.0f}s: {snap.rps:.0f} req/s, "
            f"{snap.errors} errors, p95 {p95}, {snap.late} late, {snap.dropped} dropped"
        )
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
            ("latency.p95", snap.p95_us / 1e6 if snap.p95_us is not None else None, []),
            ("latency.p99", snap.p99_us / 1e6 if snap.p99_us is not None else None, []),
        ]
        for name, so_far, per_second in checks:
            reason = self.ctx.breached(name, so_far=so_far, per_second=per_second)
            if reason:
                self.reason = reason
                self.ctx.progress(f"stopping early: {reason}")
                self.stop.set()
                return


class _Recorder:
    """Turns a LoadResult into metrics, per-second series and evidence files."""

    def __init__(
        self, ctx: CheckContext, settings: LoadSettings, result: LoadResult, started: datetime, base_url: str
    ) -> None:
        self.ctx = ctx
        self.settings = settings
        self.result = result
        self.base_url = base_url
        self.measured_from = started + timedelta(seconds=result.wall_seconds - result.measured_seconds)
        self.window = (self.measured_from, self.measured_from + timedelta(seconds=result.measured_seconds))
        self.source = self._describe()

    def record(self) -> CheckOutcome:
        result = self.result
        histograms = self._store_histograms()
        invalid = self._generator()
        self._counts("", result.overall.counts, result.measured_seconds)
        self._metric("warmup.requests", result.warmup_total.requests, "count", "performance")
        if not invalid:
            self._latency("", result.overall, histograms)
        for endpoint in result.endpoints:
            prefix = f"endpoint.{endpoint.endpoint.name}."
            self._counts(prefix, endpoint.counts, result.measured_seconds)
            if not invalid:
                self._latency(prefix, endpoint, histograms)
        for component, aggregate in result.components.items():
            prefix = f"component.{component}."
            self._counts(prefix, aggregate.counts, result.measured_seconds)
            if not invalid:
                self._latency(prefix, aggregate, histograms)
        self._series(with_latency=not invalid)
        total = result.total
        summary = (
            f"{total.requests} requests in {result.measured_seconds:.1f}s ({result.throughput:.0f}/s), "
            f"error rate {format_value(total.error_rate, 'ratio')}, "
            f"{total.late} late, {total.dropped} dropped"
        )
        if invalid:
            return CheckOutcome("error", f"invalid run: {invalid}; {summary}", [invalid])
        p95 = hist.percentiles(result.overall.corrected, [95.0]).get(95.0)
        if p95 is not None:
            summary += f", p95 {format_value(p95 / 1e6, 'seconds')}"
        return CheckOutcome("completed", summary)

    def _describe(self) -> str:
        s, spec = self.settings, self.result.spec
        if s.model == "open":
            shape = (
                f"{s.rate:g}/s"
                if s.rate
                else " → ".join(f"{st.rate:g}/s over {st.duration:g}s" for st in s.stages)
            )
            shape = f"open model, {s.arrivals} arrivals at {shape}"
        else:
            shape = f"closed model, {s.users} users, think time {s.think_time:g}s"
        workers = len(self.result.workers)
        return (
            f"load: {shape}, {len(spec.endpoints)} request(s), {workers} worker(s), against {self.base_url}"
        )

    def _metric(
        self, name: str, value: float | None, unit: Unit, dimension: str, artifact: ArtifactRef | None = None
    ) -> None:
        if value is None:
            return  # not measured: never recorded as zero
        self.ctx.record_metric(
            name, value, unit, dimension=dimension, source=self.source, artifact=artifact, window=self.window
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
        self._metric(f"{prefix}late", counts.late, "count", "performance")
        self._metric(f"{prefix}dropped", counts.dropped, "count", "performance")

    def _latency(self, prefix: str, aggregate: Aggregate, artifact: ArtifactRef) -> None:
        for kind, histogram in (
            ("latency", aggregate.corrected),
            ("latency_uncorrected", aggregate.uncorrected),
        ):
            if not histogram.get_total_count():
                continue
            values = hist.percentiles(histogram, list(_PERCENTILES.values()))
            for name, percentile in _PERCENTILES.items():
                self._metric(
                    f"{prefix}{kind}.{name}", values[percentile] / 1e6, "seconds", "performance", artifact
                )
            self._metric(
                f"{prefix}{kind}.max", histogram.get_max_value() / 1e6, "seconds", "performance", artifact
            )
            self._metric(
                f"{prefix}{kind}.mean", histogram.get_mean_value() / 1e6, "seconds", "performance", artifact
            )

    def _generator(self) -> str | None:
        """Record how hard the generator worked; why the run is invalid, if it is."""
        result, limits = self.result, self.settings.generator
        # Over a run shorter than a second, CPU time against wall time says nothing.
        timed = [worker for worker in result.workers if worker.wall_seconds >= 1.0]
        cpu = max((worker.cpu_utilisation for worker in timed), default=0.0)
        if timed:
            self._metric("generator.cpu", cpu, "ratio", "performance")
        self._metric("generator.max_lag", result.max_lag_us / 1e6, "seconds", "performance")
        sent = result.total.requests
        late_share = result.total.late / sent if sent else 0.0
        problems = []
        if cpu > limits.max_cpu:
            problems.append(
                f"the load generator used {format_value(cpu, 'ratio')} of its core "
                f"(limit {format_value(limits.max_cpu, 'ratio')})"
            )
        if late_share > limits.max_late:
            problems.append(
                f"{format_value(late_share, 'ratio')} of the requests left late "
                f"(limit {format_value(limits.max_late, 'ratio')})"
            )
        self._metric("generator.valid", 0.0 if problems else 1.0, "number", "performance")
        if not problems:
            return None
        return "; ".join(problems) + ": the generator was the bottleneck, so latency is not reported"

    def _store_histograms(self) -> ArtifactRef:
        result = self.result

        def both(aggregate: Aggregate) -> dict[str, str]:
            return {
                "corrected": hist.encode(aggregate.corrected),
                "uncorrected": hist.encode(aggregate.uncorrected),
            }

        document = {
            "format": "HdrHistogram V2 compressed base64; values in microseconds",
            "overall": both(result.overall),
            "endpoints": {e.endpoint.name: both(e) for e in result.endpoints},
            "components": {name: both(a) for name, a in result.components.items()},
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
        for second in self.result.series:
            at = self.measured_from + timedelta(seconds=second.second)
            if second.span > 0:
                rps.append((at, second.responses / second.span))
            done = second.responses + second.error_total
            if done:
                errors.append((at, second.error_total / done))
            for bucket, percentile in ((p95, 95.0), (p99, 99.0)):
                value = second.percentile(percentile)
                if value is not None:
                    bucket.append((at, value / 1e6))
        self.ctx.record_series("rps", "per_second", rps)
        self.ctx.record_series("error_rate", "ratio", errors)
        if with_latency:
            self.ctx.record_series("latency.p95", "seconds", p95)
            self.ctx.record_series("latency.p99", "seconds", p99)
