"""Journeys under load on the C engine: a compiled program (`journey_compile`) run by
`engine.run_load(program=...)` on one or more worker processes, as static requests are,
and what it measured in the shapes the Python driver returns (`JourneyLoadResult`), so
the load, soak and chaos kinds record either the same way.

``run_compiled(settings, compiled, base_url, *, on_progress=None, stop=None) -> JourneyLoadResult``

The spec is the load settings' (model, rate or stages, users, think time, duration bounded
by `max_duration`, warm-up, connections, timeouts); its endpoints stand for the program's
steps, one each, with the step's expectation. Per journey, the engines' iteration counts
and whole-iteration histograms are summed over the workers; an arrival whose user's setup
failed is an iteration failed at `setup`. Late, dropped and unsent iterations are those
of each journey's first step, as the Python driver counts them. The failures kept are the
engines' failing responses (at most `KEPT_FAILURES` per step), as journey `Failure`s.
Ctrl-C raises `JourneyLoadInterrupted` with what was measured until then.
"""

from __future__ import annotations

__all__ = ["run_compiled"]

import dataclasses
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from gonogo.journey.engine import Failure, FailureKind
from gonogo.loadgen import histogram as hist
from gonogo.loadgen.engine import (
    CONNECTION_ERROR_KINDS,
    Endpoint,
    EndpointResult,
    LoadInterrupted,
    LoadResult,
    LoadSpec,
    ProgressSnapshot,
    loopback_address,
    run_load,
)
from gonogo.loadgen.journey_results import (
    IterationCounts,
    JourneyLoadInterrupted,
    JourneyLoadResult,
    JourneyTotals,
    Progress,
    aggregate_steps,
    journey_progress,
    sum_counts,
)
from gonogo.loadgen.settings import LoadSettings
from gonogo.units import format_value

if TYPE_CHECKING:  # the compiled program imports the C engine; this module is imported without it
    from gonogo.loadgen.journey_compile import Compiled

_WATCH = 0.02  # seconds between looks at `stop` and `max_duration`


def load_spec(settings: LoadSettings, compiled: Compiled, base_url: str) -> LoadSpec:
    """The engine's spec for the program: the settings' model and bounds, a step per endpoint."""
    target = urlsplit(base_url)
    endpoints = [
        Endpoint(
            name=step.name,
            method=step.method,
            path=quote(step.path, safe="/?&=%{}:@!$'()*+,;-._~"),
            component=step.component,
            expect=step.expect,
        )
        for step in compiled.steps
    ]
    return settings.engine_spec(
        host=loopback_address(target.hostname or ""),
        port=target.port or 80,
        host_header=target.netloc,
        endpoints=endpoints,
    )


def progress_text(snapshot: ProgressSnapshot, *, closed: bool) -> str:
    """The progress line's journey part, in the Python driver's words (`journey_progress`)."""
    counts = snapshot.journeys
    if counts is None:
        return "C engine"
    return journey_progress(
        done=counts["warmup_completed"] if snapshot.warming_up else counts["completed"],
        in_flight=counts["in_flight"],
        setup=bool(counts["has_setup"]),
        closed=closed,
        users=counts["users"],
        set_up=counts["users_set_up"],
        setting_up=counts["setting_up"],
        failures=counts["setup_failures"],
        given_up=counts["setups_given_up"],
    )


def run_compiled(
    settings: LoadSettings,
    compiled: Compiled,
    base_url: str,
    *,
    on_progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> JourneyLoadResult:
    """Run the compiled journeys of `settings` against `base_url` (see the module doc)."""
    spec = load_spec(settings, compiled, base_url)
    started_at = datetime.now(UTC)
    progress = None
    if on_progress is not None:
        callback = on_progress

        def progress(snapshot: ProgressSnapshot) -> None:
            callback(snapshot, progress_text(snapshot, closed=settings.model == "closed"))

    # `max_duration` is a hard stop, as in the Python driver: iterations in flight are cut
    halt = threading.Event()
    cut = threading.Event()
    done = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + settings.max_duration
        while not done.wait(_WATCH):
            if stop is not None and stop.is_set():
                halt.set()
            elif time.monotonic() >= deadline:
                cut.set()
                halt.set()

    watcher = threading.Thread(target=watch, name="gonogo-journeys-deadline", daemon=True)
    watcher.start()
    try:
        result = run_load(spec, on_progress=progress, stop=halt, program=compiled.program.engine_form())
    except LoadInterrupted as interrupted:
        partial = _result(settings, compiled, interrupted.result, started_at, base_url, cut=cut.is_set())
        raise JourneyLoadInterrupted(partial, interrupted) from interrupted
    finally:
        done.set()
        watcher.join()
    return _result(settings, compiled, result, started_at, base_url, cut=cut.is_set())


def _result(
    settings: LoadSettings,
    compiled: Compiled,
    result: LoadResult,
    started_at: datetime,
    base_url: str,
    *,
    cut: bool,
) -> JourneyLoadResult:
    by_index = result.endpoints  # step i of the program is endpoint i
    journey_steps = [by_index[i] for _, _, indexes in compiled.journeys for i in indexes]
    once_steps = [by_index[i] for i in (*compiled.program.setup, *compiled.program.teardown)]
    components = {
        name: aggregate_steps([s for s in journey_steps if s.endpoint.component == name])
        for name in dict.fromkeys(s.endpoint.component for s in journey_steps)
    }
    raws = [raw.get("journeys", []) for raw in result.raw]
    journeys = []
    firsts = []
    warmup = warmup_completed = warmup_passed = 0
    for number, (name, weight, indexes) in enumerate(compiled.journeys):
        mine: list[Mapping[str, Any]] = [worker[number] for worker in raws if number < len(worker)]
        failed_at: dict[str, int] = {}
        setup_failures = sum(j["failed_setup"] for j in mine)
        if setup_failures:
            failed_at["setup"] = setup_failures
        for position, index in enumerate(indexes):
            count = sum(j["failed_by_step"][position] for j in mine)
            if count:
                failed_at[compiled.steps[index].step] = count
        journeys.append(
            JourneyTotals(
                name=name,
                weight=weight,
                iterations=sum(j["completed"] for j in mine),
                passed=sum(j["passed"] for j in mine),
                failed_at=failed_at,
                duration=hist.merge(hist.from_counts(*j["hcorr"]) for j in mine),
                duration_uncorrected=hist.merge(hist.from_counts(*j["hunc"]) for j in mine),
            )
        )
        firsts.append(by_index[indexes[0]].counts)
        warmup += sum(j["warmup"]["started"] for j in mine)
        warmup_completed += sum(j["warmup"]["completed"] for j in mine)
        warmup_passed += sum(j["warmup"]["passed"] for j in mine)
    started = sum(j["started"] for worker in raws for j in worker)
    limit = settings.measured_limit
    # the engines' measured phase runs to their last outcome, the teardowns' included: it
    # ends where the last worker's drain did (a stopped run has no drain's end: its end)
    drained = max((raw.get("drained_ns") or raw["end_ns"] for raw in result.raw), default=0)
    measure_start = min((raw["measure_start_ns"] for raw in result.raw), default=0)
    # closed model with a setup: the measured phase waited for every worker's users' setups
    setups_ended = [raw["setups"][0] for raw in result.raw if "setups" in raw]
    waited = settings.model == "closed" and settings.setup is not None and bool(setups_ended)
    setup_seconds = (
        (max(setups_ended) - min(raw["start_ns"] for raw in result.raw)) / 1e9
        if waited and all(setups_ended)
        else None
    )
    ran = min(result.measured_seconds, max(0.0, (drained - measure_start) / 1e9))
    first = sum_counts(firsts)
    timed = [w for w in result.workers if w.wall_seconds > 0]
    busiest = max(timed, key=lambda w: w.cpu_utilisation, default=None)
    failures = [_failure(f, compiled, base_url, by_index) for e in by_index for f in e.failures]
    failures += _unanswered(compiled, base_url, by_index, settings.request_timeout)
    return JourneyLoadResult(
        steps=tuple(journey_steps),
        overall=aggregate_steps(journey_steps, result.series),
        components=components,
        series=tuple(
            dataclasses.replace(second, span=min(second.span, ran - second.second))
            for second in result.series
            if second.second < ran  # the teardowns' seconds are no measured iterations'
        ),
        journeys=tuple(journeys),
        iterations=IterationCounts(
            scheduled=started + first.dropped + first.unsent,
            started=started,
            completed=sum(j.iterations for j in journeys),
            late=first.late,
            dropped=first.dropped,
            unsent=first.unsent,
            warmup=warmup,
            behind=first.behind,
            warmup_completed=warmup_completed,
            warmup_passed=warmup_passed,
            # failed requests of the once-steps: a setup or teardown stops at its first
            setup_failures=sum(s.warmup.error_total for s in once_steps if s.endpoint.component == "setup"),
            teardown_failures=sum(
                s.warmup.error_total for s in once_steps if s.endpoint.component == "teardown"
            ),
        ),
        failures=tuple(failures),
        failure_count=sum(s.counts.error_total for s in journey_steps)
        + sum(s.warmup.error_total for s in once_steps),
        cpu_seconds=busiest.cpu_seconds if busiest is not None else 0.0,
        generator_seconds=busiest.wall_seconds if busiest is not None else 0.0,
        max_lag_us=result.max_lag_us,
        # past `duration`, the measured phase's iterations in flight drain; the teardowns follow
        measured_seconds=min(ran, limit),
        drain_seconds=max(0.0, ran - limit),
        teardown_seconds=result.measured_seconds - ran,
        wall_seconds=result.wall_seconds,
        started_at=started_at,
        stopped_early=result.stopped_early,
        hit_max_duration=cut,
        once_steps=tuple(once_steps),
        driver="c",
        warmup_failures=tuple(_warmup_failures(compiled, base_url, by_index, settings.request_timeout)),
        setup_seconds=setup_seconds,
        setups_given_up=sum(raw["setups"][1] for raw in result.raw if "setups" in raw),
    )


def _failure(failure: Any, compiled: Compiled, base_url: str, endpoints: Sequence[EndpointResult]) -> Failure:
    """An engine's kept failing response as the journeys' `Failure` (its iteration unknown: 0)."""
    index = next(i for i, e in enumerate(endpoints) if e.endpoint.name == failure.endpoint)
    step = compiled.steps[index]
    kind: FailureKind = "assertion"
    return Failure(
        journey=step.journey or step.name.partition(".")[0],
        iteration=0,
        step=step.step,
        method=step.method,
        url=base_url.rstrip("/") + step.path,
        status=failure.status,
        message=failure.reason,
        response_excerpt=failure.body_excerpt,
        response_size=failure.body_bytes,
        attempts=1,
        at=datetime.now(UTC).isoformat(),
        kind=kind,
    )


def _warmup_failures(
    compiled: Compiled, base_url: str, endpoints: Sequence[EndpointResult], timeout: float
) -> list[Failure]:
    """The warm-up iterations' failures: the engines count them and keep no response of
    them, so one `Failure` per step and kind, saying how many and with which statuses."""
    found = _unanswered(compiled, base_url, endpoints, timeout, warmup=True)
    for index, endpoint in enumerate(endpoints):
        step, counts = compiled.steps[index], endpoint.warmup
        failed = {kind: counts.errors.get(kind, 0) for kind in ("http_4xx", "http_5xx", "assertion")}
        if step.journey is None or not any(failed.values()):
            continue
        statuses = ", ".join(f"{n} of {code}" for code, n in counts.status.items())
        failing = {code: n for code, n in counts.status.items() if code >= 400}  # the likeliest failure's
        kinds = ", ".join(f"{n} {kind}" for kind, n in failed.items() if n)
        found.append(
            Failure(
                journey=step.journey,
                iteration=0,
                step=step.step,
                method=step.method,
                url=base_url.rstrip("/") + step.path,
                status=max(failing, key=lambda code: failing[code]) if failing else None,
                message=f"{sum(failed.values())} warm-up response(s) failed ({kinds}); statuses: {statuses}",
                response_excerpt="",
                response_size=None,
                attempts=sum(failed.values()),
                at=datetime.now(UTC).isoformat(),
                kind="assertion",
            )
        )
    return found


def _seconds(seconds: float) -> str:
    return format_value(seconds, "seconds")


def _unanswered(
    compiled: Compiled,
    base_url: str,
    endpoints: Sequence[EndpointResult],
    timeout: float,
    *,
    warmup: bool = False,
) -> list[Failure]:
    """The requests that got no response, which the engines count but keep no response of:
    one `Failure` per step and kind, saying how many (`warmup`: of the warm-up's iterations)."""
    found = []
    for index, endpoint in enumerate(endpoints):
        step = compiled.steps[index]
        step_timeout = compiled.program.steps[index].timeout or timeout
        if warmup:
            if step.journey is None:
                continue
            counts = endpoint.warmup
        else:
            counts = endpoint.counts + endpoint.warmup if step.journey is None else endpoint.counts
        for kinds, kind, what in (
            # the step's own request_timeout, if it has one
            (("timeout",), "timeout", f"no complete response within {_seconds(step_timeout)}"),
            (CONNECTION_ERROR_KINDS, "connection", "the exchange failed"),
        ):
            number = sum(counts.errors.get(k, 0) for k in kinds)
            if not number:
                continue
            detail = (
                ", ".join(f"{counts.errors[k]} {k}" for k in kinds if counts.errors.get(k))
                if len(kinds) > 1
                else ""
            )
            found.append(
                Failure(
                    journey=step.journey or step.name.partition(".")[0],
                    iteration=0,
                    step=step.step,
                    method=step.method,
                    url=base_url.rstrip("/") + step.path,
                    status=None,
                    message=f"{number} request(s): {what}" + (f" ({detail})" if detail else ""),
                    response_excerpt="",
                    response_size=None,
                    attempts=number,
                    at=datetime.now(UTC).isoformat(),
                    kind="timeout" if kind == "timeout" else "connection",
                )
            )
    return found
