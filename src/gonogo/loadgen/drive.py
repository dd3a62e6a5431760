"""Driving a plan's load for a check: the load settings' traffic (plain `requests` through the C
engine, or `journeys` under load) against the check's base URL, with live progress, an early stop
when an `abort_on_fail` gate is in breach, and what was measured in one shape (`Measured`)
whichever traffic ran. The `load` and `soak` kinds share it; each records `Measured` its own way.

``drive_load(settings, ctx, record, *, progress_extra=None) -> CheckOutcome``

* the base URL is the settings' own or the plan's; only plain http:// to loopback is loaded;
* `setup` (requests only) runs once first and its variables fill the requests' placeholders;
* `record(measured)` turns what was measured into metrics and returns the check's outcome;
  it is called once, also on Ctrl-C (with what was measured until then) before the interrupt
  is re-raised, so nothing measured is lost;
* `progress_extra()`, if given, is appended to each progress line (the soak's RSS slope).
"""

from __future__ import annotations

__all__ = [
    "ErrorRate",
    "LoadWatch",
    "Measured",
    "PerSecond",
    "asserted_prefixes",
    "drive_load",
    "load_spec",
    "per_second",
]

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from gonogo.checks.base import CheckContext, CheckOutcome
from gonogo.journey.once import resolve_base_url, run_setup, upload_files
from gonogo.journey.variables import VariableError
from gonogo.loadgen.endpoints import build_endpoint
from gonogo.loadgen.engine import (
    Aggregate,
    LoadInterrupted,
    LoadResult,
    LoadSpec,
    LoadSpecError,
    PartProgress,
    ProgressSnapshot,
    SecondStats,
    loopback_address,
    run_load,
)
from gonogo.loadgen.expect import AssertionFailure
from gonogo.loadgen.journey_load import JourneyLoadInterrupted, JourneyLoadResult, run_journey_load
from gonogo.loadgen.native import EngineNotBuilt, load_engine
from gonogo.loadgen.settings import GeneratorLimits, LoadSettings
from gonogo.units import format_value

Points = list[tuple[datetime, float]]


@dataclass(frozen=True)
class Measured:
    """What either kind of traffic measured, in the engine's shapes: a recorder's input."""

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
    journeys: JourneyLoadResult | None = None  # journeys: their own figures
    # why the measured phase never began (the setups it waits for outlasted the run); None: it did
    measured_nothing: str | None = None

    @property
    def window(self) -> tuple[datetime, datetime]:
        return self.measured_from, self.measured_from + timedelta(seconds=self.measured_seconds)

    def generator_problems(self, limits: GeneratorLimits) -> list[str]:
        """Why the generator itself was the bottleneck, if it was: then latency is not the server's."""
        cpu = self.cpu or 0.0
        # Only lateness that is the generator's own: a request that waited for a connection
        # the server still held is late too, but that wait is the server's, and it is in the
        # corrected latency.
        late_share = self.behind / self.scheduled if self.scheduled else 0.0
        problems = []
        if cpu > limits.max_cpu:
            problems.append(
                f"the load generator used {format_value(cpu, 'ratio')} of its core "
                f"(limit {format_value(limits.max_cpu, 'ratio')})"
            )
        if late_share > limits.max_late and cpu < limits.max_cpu / 2:
            # late with the CPU mostly idle: not the generator's work but its loop not running
            lag = format_value(self.max_lag_us / 1e6, "seconds")
            problems.append(
                f"the generator's loop stalled (max lag {lag}) with {format_value(cpu, 'ratio')} of a core:"
                " another process took the CPU (the service, on the same machine?), or the loop was"
                f" blocked; {format_value(late_share, 'ratio')} of the {self.unit} started late"
                f" (limit {format_value(limits.max_late, 'ratio')})"
            )
        elif late_share > limits.max_late:
            problems.append(
                f"the load generator fell behind its schedule for {format_value(late_share, 'ratio')} "
                f"of the {self.unit} (limit {format_value(limits.max_late, 'ratio')})"
            )
        return problems


@dataclass(frozen=True)
class PerSecond:
    """The per-second series of the measured phase, each point at its second's start."""

    rps: Points
    error_rate: Points
    p95: Points  # seconds, corrected, counting requests still waiting at the second's end
    p99: Points


class ErrorRate:
    """A per-second error-rate series without gaps: each second's errors over the requests that
    ended in it (a response, a connection error, a timeout); a second in which none ended holds
    the previous second's rate, 0 before the first outcome. A stalled server answers nothing
    for a while and then its timeouts land in bursts: the seconds between the bursts must not
    cut a breach of `error_rate < 1% for 10s` short (the stall itself shows in the latency
    series, through the requests waiting)."""

    def __init__(self) -> None:
        self.rate = 0.0

    def next(self, outcomes: int, errors: int) -> float:
        if outcomes:
            self.rate = min(1.0, errors / outcomes)
        return self.rate


def per_second(measured: Measured, part: Aggregate | None = None) -> PerSecond:
    """Throughput, error rate and corrected p95/p99 latency of every measured second: of the
    whole load, or of an endpoint or component (`part`; a second it has no record of had none of
    its requests sent, ended or waiting)."""
    own = {second.second: second for second in part.series} if part is not None else None
    rps: Points = []
    errors: Points = []
    p95: Points = []
    p99: Points = []
    rate = ErrorRate()
    for whole in measured.series:  # every measured second
        at = measured.measured_from + timedelta(seconds=whole.second)
        second = whole if own is None else own.get(whole.second)
        if whole.span > 0:
            rps.append((at, second.responses / whole.span if second is not None else 0.0))
        outcomes, failed = (second.outcomes, second.error_total) if second is not None else (0, 0)
        errors.append((at, rate.next(outcomes, failed)))
        if second is None:
            continue
        for bucket, percentile in ((p95, 95.0), (p99, 99.0)):
            value = second.percentile_with_waiting(percentile)
            if value is not None:
                bucket.append((at, value / 1e6))
    return PerSecond(rps, errors, p95, p99)


def drive_load(
    settings: LoadSettings,
    ctx: CheckContext,
    record: Callable[[Measured], CheckOutcome],
    *,
    progress_extra: Callable[[], str] | None = None,
) -> CheckOutcome:
    """Run the load of `settings` against the check's system; `record` what it measured."""
    base_url, problem = resolve_base_url(settings.base_url, ctx)
    if problem:
        return CheckOutcome("error", problem)
    assert base_url is not None
    target = urlsplit(base_url)
    if target.scheme != "http":
        return CheckOutcome("error", f"the load engine speaks plain HTTP/1.1; {base_url} is not http://")
    try:
        load_engine()
    except EngineNotBuilt as error:  # installed without a C compiler: say which and how to build
        return CheckOutcome("error", str(error))
    if settings.journeys is not None:
        return _drive_journeys(settings, base_url, target.hostname or "", ctx, record, progress_extra)
    variables, problem = (
        run_setup(settings.setup, settings.request_timeout, base_url, ctx) if settings.setup else ({}, None)
    )
    if problem:
        return CheckOutcome("error", problem)
    try:
        spec = load_spec(settings, target.hostname or "", target.port or 80, target.netloc, variables, ctx)
        spec.validate()
    except (LoadSpecError, VariableError) as error:
        return CheckOutcome("error", f"the load cannot run: {error}")
    watch = LoadWatch(ctx, settings, progress_extra)
    started = datetime.now(UTC)
    try:
        result = run_load(spec, on_progress=watch.snapshot, stop=watch.stop)
    except LoadInterrupted as interrupted:
        # Ctrl-C: keep what was measured, then let the runner abort the run.
        record(_from_requests(settings, interrupted.result, started, base_url))
        raise
    return watch.outcome(record(_from_requests(settings, result, started, base_url)))


def _drive_journeys(
    settings: LoadSettings,
    base_url: str,
    host: str,
    ctx: CheckContext,
    record: Callable[[Measured], CheckOutcome],
    progress_extra: Callable[[], str] | None,
) -> CheckOutcome:
    try:
        loopback_address(host)  # the engine's rule: loopback addresses only
    except LoadSpecError as error:
        return CheckOutcome("error", f"the load cannot run: {error}")
    files, missing = upload_files(settings.journeys_settings(), ctx)
    if missing:
        return CheckOutcome("error", f"{len(missing)} file(s) to upload cannot be read", details=missing)
    # the compiler builds the C engine's program (program.py): imported for a run, not for validation
    from gonogo.loadgen.journey_compile import fast_path_problem

    problem = fast_path_problem(settings)
    # a milestone, not a running count: the printer's throttle would swallow it right after
    # the check's "started" line
    driver = "the C engine" if problem is None else f"the Python driver: {problem}"
    ctx.progress(f"journeys run on {driver}", milestone=True)
    watch = LoadWatch(ctx, settings, progress_extra)
    try:
        result = run_journey_load(
            settings, base_url, files=files, expand=ctx.expand, on_progress=watch.snapshot, stop=watch.stop
        )
    except JourneyLoadInterrupted as interrupted:
        # Ctrl-C: keep what was measured, then let the runner abort the run.
        record(_from_journeys(settings, interrupted.result, base_url))
        raise interrupted.original from None
    return watch.outcome(record(_from_journeys(settings, result, base_url)))


def load_spec(
    settings: LoadSettings, host: str, port: int, netloc: str, variables: Mapping[str, Any], ctx: CheckContext
) -> LoadSpec:
    """The engine's spec for the `requests` of `settings`, placeholders filled from `variables`."""
    assert settings.requests is not None
    endpoints = [build_endpoint(request, variables, ctx) for request in settings.requests]
    return settings.engine_spec(host=host, port=port, host_header=netloc, endpoints=endpoints)


class LoadWatch:
    """Live progress, and an early stop when an `abort_on_fail` gate is in breach: of the whole
    load, or of an endpoint or component (only those some abort gate could match are followed)."""

    def __init__(
        self, ctx: CheckContext, settings: LoadSettings, extra: Callable[[], str] | None = None
    ) -> None:
        self.ctx = ctx
        self.stop = threading.Event()
        self.reason: str | None = None
        self._extra = extra
        # per measured second, for gates with a timeframe; the instants only need to be a second apart
        self._origin = datetime.now(UTC)
        # by metric prefix ("", "endpoint.<name>.", "component.<c>."): the live per-second series
        self._live: dict[str, _LiveSeries] = {"": _LiveSeries()}
        self._watched: dict[str, tuple[str, ...]] = {}  # prefix → the metrics an abort gate could match
        self._warmup = settings.warmup
        self._planned = settings.planned_duration - settings.warmup  # the measured phase's

    def outcome(self, outcome: CheckOutcome) -> CheckOutcome:
        """The outcome, saying so if an abort gate stopped the load early."""
        if not self.reason:
            return outcome
        return CheckOutcome(
            outcome.status, f"stopped early: {self.reason}; {outcome.message}", outcome.details
        )

    def _line(self, snap: ProgressSnapshot, extra: str) -> str:
        """The progress line, on the phase's own clock and with the phase's own errors."""
        if snap.warming_up:
            phase, errors = f"warm-up {snap.elapsed:.0f}/{self._warmup:.0f}s", snap.warmup_errors
            if snap.elapsed > self._warmup + 0.5:  # closed-model journeys: the setups still running
                phase = f"warm-up {snap.elapsed:.0f}s (the load waits for every user's setup)"
        else:
            # the measured phase's own clock: it may have started past the warm-up
            since = snap.measured_elapsed
            measured = since if since is not None else max(0.0, snap.elapsed - self._warmup)
            planned = self._planned
            phase, errors = f"load {measured:.0f}/{planned:.0f}s", snap.errors
            if measured > planned + 0.5:  # past the plan: the iterations in flight finishing
                phase = f"load {planned:.0f}/{planned:.0f}s + {measured - planned:.0f}s draining"
        p95 = format_value(snap.p95_us / 1e6, "seconds") if snap.p95_us is not None else "—"
        extras = [text for text in (extra, self._extra() if self._extra else "") if text]
        return (
            f"{phase}: {snap.rps:.0f} responses/s, "
            f"{errors} errors, p95 {p95}, {snap.late} late, {snap.dropped} dropped"
            + "".join(f", {text}" for text in extras)
        )

    def snapshot(self, snap: ProgressSnapshot, extra: str = "") -> None:
        self.ctx.progress(self._line(snap, extra))
        parts = {prefix: part for prefix, part in snap.parts.items() if self._watches(prefix)}
        for prefix in parts:
            self._live.setdefault(prefix, _LiveSeries())
        for second in snap.seconds:  # every measured second that ended since the last snapshot
            at = self._origin + timedelta(seconds=second.second)
            self._live[""].add(at, second.outcomes, second.errors, second.p95_us, second.p99_us)
            for prefix, live in self._live.items():
                if prefix:
                    live.add_part(at, second.second, parts.get(prefix))
        if snap.warming_up or self.reason:
            return
        # Errors over requests sent: a few are still in flight, which only delays an abort.
        whole = (snap.errors / snap.requests if snap.requests else None, snap.p95_us, snap.p99_us)
        figures = {"": whole}
        for prefix, part in parts.items():
            figures[prefix] = (part.error_rate, part.percentile(95.0), part.percentile(99.0))
        for prefix, (error_rate, p95_us, p99_us) in figures.items():
            live = self._live[prefix]
            checks: list[tuple[str, float | None, list[tuple[datetime, float]]]] = [
                ("error_rate", error_rate, live.error_rate),
                ("latency.p95", p95_us / 1e6 if p95_us is not None else None, live.p95),
                ("latency.p99", p99_us / 1e6 if p99_us is not None else None, live.p99),
            ]
            for name, so_far, per_second in checks:
                reason = self.ctx.breached(prefix + name, so_far=so_far, per_second=per_second)
                if reason:
                    self.reason = reason
                    self.ctx.progress(f"stopping early: {reason}", milestone=True)
                    self.stop.set()
                    return

    def _watches(self, prefix: str) -> bool:
        """Whether an abort gate could match one of the figures of an endpoint or component."""
        found = self._watched.get(prefix)
        if found is None:
            names = ("error_rate", "latency.p95", "latency.p99")
            found = self._watched[prefix] = tuple(n for n in names if self.ctx.aborts_on(prefix + n))
        return bool(found)


class _LiveSeries:
    """The per-second series an abort gate with a timeframe reads during a run: as `per_second`
    makes them after it (error rate without gaps, latency counting the requests waiting)."""

    def __init__(self) -> None:
        self.error_rate: Points = []
        self.p95: Points = []
        self.p99: Points = []
        self._rate = ErrorRate()

    def add(self, at: datetime, outcomes: int, errors: int, p95_us: int | None, p99_us: int | None) -> None:
        self.error_rate.append((at, self._rate.next(outcomes, errors)))
        for series, value in ((self.p95, p95_us), (self.p99, p99_us)):
            if value is not None:
                series.append((at, value / 1e6))

    def add_part(self, at: datetime, index: int, part: PartProgress | None) -> None:
        """Second `index` of an endpoint or component: none of its requests in it if `part` has
        no record of it."""
        second = next((s for s in part.seconds if s.second == index), None) if part is not None else None
        if second is None:
            self.add(at, 0, 0, None, None)
            return
        p95, p99 = (second.percentile_with_waiting(p) for p in (95.0, 99.0))
        self.add(at, second.outcomes, second.error_total, p95, p99)


def _from_requests(settings: LoadSettings, result: LoadResult, started: datetime, base_url: str) -> Measured:
    # Over a run shorter than a second, CPU time against wall time says nothing.
    timed = [worker.cpu_utilisation for worker in result.workers if worker.wall_seconds >= 1.0]
    # As with journeys: the measured phase is the planned one; the requests in flight at its end
    # finish after it (their outcomes counted), and that drain is said apart, not in the rates.
    measured = min(result.measured_seconds, settings.measured_limit)
    drain = result.measured_seconds - measured
    note = (
        f"the requests in flight at the measured phase's end took {drain:.1f}s more to finish"
        " (their outcomes counted; rates are over the measured phase)"
        if drain >= 0.05
        else None
    )
    return Measured(
        endpoints=[(e.endpoint.name, e) for e in result.endpoints],
        overall=result.overall,
        components=result.components,
        series=result.series,
        measured_seconds=measured,
        measured_from=started + timedelta(seconds=result.wall_seconds - result.measured_seconds),
        note=note,
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
        asserted=frozenset(asserted_prefixes(settings)),
        failures=(
            [f for e in result.endpoints for f in e.failures]
            if any(e.endpoint.expect is not None for e in result.endpoints)
            else None
        ),
    )


def _from_journeys(settings: LoadSettings, result: JourneyLoadResult, base_url: str) -> Measured:
    mix = ", ".join(j.name if j.weight == 1 else f"{j.name} (weight {j.weight})" for j in result.journeys)
    note = measured_nothing = None
    waits = settings.model == "closed" and settings.setup is not None  # for every user's setup
    if waits and result.setup_seconds is None:
        cause = f"max_duration ({settings.max_duration:g}s)" if result.hit_max_duration else "the stop"
        note = measured_nothing = (
            f"cut by {cause} while the users' setups still ran: the measured phase, which waits "
            "for them, never started"
        )
    elif result.hit_max_duration:
        note = f"cut at max_duration ({settings.max_duration:g}s), iterations in flight cancelled"
    elif result.drain_seconds >= 0.05:
        note = (
            f"the iterations in flight at the measured phase's end took {result.drain_seconds:.1f}s more"
            " to finish (their outcomes counted; rates are over the measured phase)"
        )
    if waits and result.setup_seconds is not None:
        setups = (
            f"the users' setups took {result.setup_seconds:.1f}s; the warm-up ({settings.warmup:g}s) followed"
            " them, then the measured phase"
        )
        if result.setups_given_up:
            setups += (
                f"; {result.setups_given_up} user(s) gave their setup up after {settings.setup_attempts} "
                "attempts and ran no iteration"
            )
        note = f"{setups}; {note}" if note else setups
    if result.teardown_seconds >= 0.05 and settings.teardown is not None:
        teardowns = f"the users' teardowns took {result.teardown_seconds:.1f}s after the iterations ended"
        note = f"{note}; {teardowns}" if note else teardowns
    after_warmup = result.measured_seconds + result.drain_seconds + result.teardown_seconds
    return Measured(
        endpoints=[(step.endpoint.name, step) for step in result.steps],
        overall=result.overall,
        components=result.components,
        series=result.series,
        measured_seconds=result.measured_seconds,
        measured_from=result.started_at + timedelta(seconds=result.wall_seconds - after_warmup),
        cpu=result.cpu_utilisation if result.generator_seconds >= 1.0 else None,
        max_lag_us=result.max_lag_us,
        behind=result.iterations.behind,
        scheduled=result.iterations.scheduled,
        unit="iterations",
        source=_describe(
            settings,
            base_url,
            f"journeys {mix}, "
            + ("the C engine" if result.driver == "c" else "the Python driver (one asyncio loop)"),
        ),
        asserted=frozenset(asserted_prefixes(settings)),
        note=note,
        journeys=result,
        measured_nothing=measured_nothing,
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


def asserted_prefixes(settings: LoadSettings) -> list[str]:
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
