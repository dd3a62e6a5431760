"""The Python driver of journeys under load: what runs them when the C engine cannot (see
`journey_load` for the traffic it sends and what it measures). One asyncio loop in the
calling thread; each virtual user has an `httpx.AsyncClient` of one connection; iterations
arrive on the C engine's own schedule (`journey_schedule`).
"""

from __future__ import annotations

__all__ = ["PythonDriver", "journey_schedule"]

import asyncio
import contextlib
import gc
import importlib
import math
import ssl
import threading
import time
import uuid
from array import array
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from typing import Any

import httpx

from gonogo.journey.engine import USER_AGENT, Engine, Failure, IterationState, StepResult
from gonogo.journey.settings import Journey
from gonogo.journey.variables import render_value
from gonogo.loadgen import histogram as hist
from gonogo.loadgen.histogram import HdrHistogram
from gonogo.loadgen.journey_results import (
    ASSERTION,
    ERROR_KINDS_WITH_ASSERTION,
    KEPT_FAILURES,
    IterationCounts,
    JourneyLoadInterrupted,
    JourneyLoadResult,
    JourneyTotals,
    Progress,
    aggregate_steps,
)
from gonogo.loadgen.merge import PartSeconds
from gonogo.loadgen.native import engine as _engine
from gonogo.loadgen.results import (
    Counts,
    EndpointResult,
    ProgressSnapshot,
    SecondLatency,
    SecondStats,
    waiting_percentile,
)
from gonogo.loadgen.schedule import Schedule, open_stages
from gonogo.loadgen.settings import LoadSettings
from gonogo.loadgen.spec import Endpoint

TICK = 0.02  # seconds between the ticker's wake-ups (loop lag, stop, expiry, progress)
_SLICE = 0.05  # the longest a scheduler sleeps before looking at `stop` again
_RETRY_SETUP = 0.01  # closed model: the least a user waits before trying a failed setup again


class _Tally:
    """Counts of one step in one phase."""

    def __init__(self) -> None:
        self.requests = 0
        self.responses = 0
        self.outcomes = 0  # requests with an outcome (a response or a failure)
        self.late = 0
        self.dropped = 0
        self.behind = 0
        self.unsent = 0
        self.errors = dict.fromkeys(ERROR_KINDS_WITH_ASSERTION, 0)
        self.status: dict[int, int] = {}

    def counts(self) -> Counts:
        return Counts(
            requests=self.requests,
            responses=self.responses,
            late=self.late,
            dropped=self.dropped,
            behind=self.behind,
            unfinished=self.requests - self.outcomes,
            unsent=self.unsent,
            errors=dict(self.errors),
            status=dict(sorted(self.status.items())),
        )


@dataclass
class _Step:
    endpoint: Endpoint
    measured: _Tally = field(default_factory=_Tally)
    warmup: _Tally = field(default_factory=_Tally)
    corrected: HdrHistogram = field(default_factory=hist.new_histogram)
    uncorrected: HdrHistogram = field(default_factory=hist.new_histogram)
    # the step's own per-second series (measured phase), as the run's: only its seconds with
    # something in them
    seconds: dict[int, _Second] = field(default_factory=dict)
    so_far: dict[int, int] = field(default_factory=dict)  # what `_Second.seal` folds its latency into

    def tally(self, warm: bool) -> _Tally:
        return self.warmup if warm else self.measured


@dataclass
class _Journey:
    name: str
    journey: Journey
    weight: int
    steps: list[_Step]
    number: int = 0  # the last `{iteration}` given
    iterations: int = 0
    passed: int = 0
    failed_at: dict[str, int] = field(default_factory=dict)
    duration: HdrHistogram = field(default_factory=hist.new_histogram)
    duration_uncorrected: HdrHistogram = field(default_factory=hist.new_histogram)
    current: int = 0  # smooth weighted round-robin state


@dataclass
class _Second:
    sent: int = 0
    responses: int = 0
    late: int = 0
    dropped: int = 0
    max_lag_us: int = 0
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ERROR_KINDS_WITH_ASSERTION, 0))
    values: list[int] = field(default_factory=list)  # corrected µs, until sealed
    latency: dict[int, int] = field(default_factory=dict)  # counts index → count (2 significant digits)
    # requests still unanswered at the second's end (sent, or arrivals queued): their age then
    waiting: dict[int, int] = field(default_factory=dict)

    def seal(self, so_far: dict[int, int]) -> None:
        """Fold the latencies recorded since the last call into this second's sparse 2-digit
        histogram, and into `so_far` (the whole measured phase)."""
        if not self.values:
            return
        first, raw = _engine.record_values(self.values, hist.SERIES_SIGNIFICANT_FIGURES)
        for offset, count in enumerate(array("Q", raw)):
            if count:
                index = first + offset
                self.latency[index] = self.latency.get(index, 0) + count
                so_far[index] = so_far.get(index, 0) + count
        self.values.clear()

    def stats(self, index: int, span: float) -> SecondStats:
        return SecondStats(
            second=index,
            span=span,
            requests=self.sent,
            responses=self.responses,
            late=self.late,
            dropped=self.dropped,
            errors=dict(self.errors),
            max_lag_us=self.max_lag_us,
            latency=dict(sorted(self.latency.items())),
            waiting=dict(sorted(self.waiting.items())),
        )


@dataclass
class _Arrival:
    at: float  # intended start (perf_counter seconds)
    warm: bool
    journey: _Journey


class _NoSharedCookies(DefaultCookiePolicy):
    """A client's own jar keeps nothing: each user's cookies are in its own `httpx.Cookies`."""

    def set_ok(self, cookie: Any, request: Any) -> bool:
        return False


@dataclass
class _User:
    """A virtual user (open model: a connection slot): its own client of one connection, so
    no request ever scans a pool of other users' connections, and its cookies and setup
    variables, which every iteration it runs starts from."""

    index: int
    client: httpx.AsyncClient
    cookies: httpx.Cookies = field(default_factory=httpx.Cookies)
    variables: dict[str, Any] | None = None  # what its setup defined; None: not set up yet


def _us(seconds: float) -> int:
    return min(max(round(seconds * 1e6), hist.LOWEST_DISCERNIBLE), hist.HIGHEST_TRACKABLE)


def _add_waiting(second: _Second, ages: list[int]) -> None:
    first, raw = _engine.record_values(ages, hist.SERIES_SIGNIFICANT_FIGURES)
    for offset, count in enumerate(array("Q", raw)):
        if count:
            second.waiting[first + offset] = second.waiting.get(first + offset, 0) + count


def _error_kind(result: StepResult, failure: Failure | None) -> str | None:
    if failure is None:
        return None
    if failure.kind == "timeout":
        return "timeout"
    if failure.kind == "connection":
        return "connect"
    if result.status is not None and result.status >= 500:
        return "http_5xx"
    if result.status is not None and result.status >= 400:
        return "http_4xx"
    return ASSERTION


def journey_schedule(settings: LoadSettings) -> Schedule:
    """The open model's arrivals of a journey load on the Python driver: the schedule the C
    engine runs for the same settings (`journey_engine.load_spec`), `max_duration` bounding
    the measured phase as it does there."""
    ramps = [(stage.duration, stage.rate) for stage in settings.stages]
    return Schedule(
        tuple(open_stages(settings.rate, ramps, settings.measured_limit, settings.warmup)),
        poisson=settings.arrivals == "poisson",
        seed=settings.seed,
        warmup=settings.warmup,
        max_measured=settings.max_requests,
    )


# --------------------------------------------------------------------------------------
# The driver


class PythonDriver:
    def __init__(
        self,
        settings: LoadSettings,
        base_url: str,
        *,
        files: Mapping[str, Path],
        expand: Callable[[str], str],
        on_progress: Progress | None,
        stop: threading.Event | None,
    ) -> None:
        assert settings.journeys is not None, "a journey load needs journeys"
        self.s = settings
        self.expand = expand
        self.engine = Engine(
            settings.journeys_settings(), base_url, files=files, expand=expand, progress=lambda _: None
        )
        once = {name: j for name, j in (("setup", settings.setup), ("teardown", settings.teardown)) if j}
        # the setup and teardown as journeys of their own (their steps are counted apart)
        once_settings = settings.once_settings()
        self.once_engine = (
            Engine(once_settings, base_url, files=files, expand=expand, progress=lambda _: None)
            if once_settings is not None
            else None
        )
        self.once_steps = {
            f"{name}.{step.name}": _Step(
                Endpoint(
                    name=f"{name}.{step.name}",
                    method=step.request.method,
                    path=step.request.path,
                    component=name,
                )
            )
            for name, journey in once.items()
            for step in journey.steps
        }
        self.users: list[_User] = []
        self.free_users: list[_User] = []  # open model: users between iterations
        # one TLS context for every user's client (loading the CA bundle takes ~30 ms a client)
        self.tls = ssl.create_default_context()
        self.once = once
        self.on_progress = on_progress
        self.stop = stop
        self.journeys = [
            _Journey(
                name,
                journey,
                settings.journey_weights.get(name, 1),
                [
                    _Step(
                        Endpoint(
                            name=f"{name}.{step.name}",
                            method=step.request.method,
                            path=step.request.path,
                            component=settings.component_of(name, step.name),
                        )
                    )
                    for step in journey.steps
                ],
            )
            for name, journey in settings.journeys.items()
        ]
        self.total_weight = sum(j.weight for j in self.journeys)
        self.all_steps = [step for journey in self.journeys for step in journey.steps]
        self.parts: dict[str, PartSeconds] = {}  # per step and component: the live figures
        self.measured_limit = settings.measured_limit
        self.queue: deque[_Arrival] = deque()
        self.tasks: set[asyncio.Task[None]] = set()
        self.seconds: dict[int, _Second] = {}
        self.so_far: dict[int, int] = {}  # corrected latency, 2 digits, sparse: the live p95/p99
        self.reported_second = -1  # the last measured second handed to progress
        self.waiting_second = -1  # the last measured second whose waiting requests are recorded
        # measured requests in flight → their intended time and step
        self.outstanding: dict[int, tuple[float, _Step]] = {}
        self.tokens = 0
        self.failures: list[Failure] = []  # the first KEPT_FAILURES of the measured iterations
        self.once_failures: list[Failure] = []  # … and apart, of the setups and teardowns
        self.warm_failures: list[Failure] = []  # … and of the warm-up's iterations
        self.scheduled = self.started = self.completed = self.late = self.dropped = 0
        self.warm_completed = self.warm_passed = 0
        self.setup_failures = self.teardown_failures = 0
        self.setting_up = self.set_up_users = 0  # users in their setup now; users set up so far
        self.behind = 0  # measured arrivals the loop reached late (see `_count_behind`)
        self.unsent = self.warm_started = 0
        self.requests = self.responses = self.errors = 0  # measured, for progress
        self.warm_requests = self.all_responses = 0
        self.warm_errors = 0  # the warm-up's failed requests, setups' and teardowns' included, for progress
        self.active = 0  # iterations in flight
        self.max_lag = 0.0
        self.halted: str | None = None  # why the run stops before its natural end
        self.crash: BaseException | None = None
        self.t0 = self.t_end = self.measure_start = 0.0
        self.t_drained = 0.0  # the last iteration's end (0: the run did not get there)
        self.deadline = math.inf
        self.cpu0 = self.cpu_end = 0.0
        self.started_at = datetime.now(UTC)
        self.finished = False
        self.closing = False  # the run is over: start nothing new

    # -- running -----------------------------------------------------------------------

    def run(self) -> JourneyLoadResult:
        # A full garbage collection scans every object of the process (tens of ms in a
        # runner): a stall of the generator. Freezing what exists now leaves the collector
        # only the run's own objects.
        freeze = gc.get_freeze_count() == 0
        if freeze:
            gc.freeze()
        try:
            asyncio.run(self._main())
        except KeyboardInterrupt as interrupt:
            self._finish()
            raise JourneyLoadInterrupted(self._result(stopped=True), interrupt) from interrupt
        finally:
            if freeze:
                gc.unfreeze()
        if self.crash is not None:
            raise self.crash
        return self._result(stopped=self.halted is not None)

    async def _main(self) -> None:
        # httpx loads anyio's asyncio backend on its first request (tens of ms): load it before
        # the clock starts, so that the first arrivals are not late because of an import
        with contextlib.suppress(ImportError):
            importlib.import_module("anyio._backends._asyncio")
        # open: `max_connections` caps the iterations in flight, each on a virtual user of its
        # own; closed: `users` users; either way, one connection per user, as in the C engine
        try:
            self.started_at = datetime.now(UTC)
            self.t0 = time.perf_counter()
            self.cpu0 = time.thread_time()
            self.measure_start = self.t0 + self.s.warmup
            self.deadline = self.t0 + self.s.max_duration
            self._spawn(self._tick())
            try:
                if self.s.model == "open":
                    await self._open()
                else:
                    await self._closed()
                self.t_drained = time.perf_counter()  # the teardowns start after the drain, not in it
                if self.halted not in ("max_duration", "crashed"):
                    await self._teardowns()
            finally:
                self.closing = True
                tasks = list(self.tasks)
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                self._finish()
        finally:
            await asyncio.gather(*(user.client.aclose() for user in self.users), return_exceptions=True)

    def _new_user(self) -> _User:
        """A virtual user with a client of one connection, as the journeys kind makes them."""
        client = httpx.AsyncClient(
            http1=True,
            http2=False,
            verify=self.tls,
            follow_redirects=False,
            trust_env=False,
            timeout=httpx.Timeout(self.s.request_timeout),
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            cookies=CookieJar(policy=_NoSharedCookies()),
            headers={"User-Agent": USER_AGENT},
        )
        user = _User(len(self.users), client)
        self.users.append(user)
        return user

    def _state(self, journey: Journey, name: str, number: int, user: _User) -> IterationState:
        """An iteration's start as `Engine.start_iteration`, from the user's setup variables and cookies."""
        variables: dict[str, Any] = {
            **(user.variables or {}),
            "iteration": number,
            "uuid": str(uuid.uuid4()),
            "journey": name,
        }
        for key, value in journey.variables.items():
            variables[key] = render_value(value, variables, self.expand)
        # the setup fills the user's jar; an iteration (or the teardown) starts from a copy of it
        cookies = user.cookies if user.variables is None else httpx.Cookies(user.cookies)
        return IterationState(name, number, variables, cookies=cookies)

    async def _once(self, name: str, user: _User) -> Failure | None:
        """Run the setup or the teardown for one user; its failure, if it failed."""
        assert self.once_engine is not None
        journey = self.once[name]
        state = self._state(journey, name, user.index + 1, user)  # numbered by user in failure reports
        for spec in journey.steps:
            step = self.once_steps[f"{name}.{spec.name}"]
            step.warmup.requests += 1
            result, failure = await self.once_engine.run_step(user.client, state, spec)
            self._outcome(step, step.warmup, result, failure, True, time.perf_counter(), 0.0, 0.0)
            if failure is not None:
                if name == "setup":
                    self.setup_failures += 1
                else:
                    self.teardown_failures += 1
                if len(self.once_failures) < KEPT_FAILURES:
                    self.once_failures.append(failure)
                return failure
        if name == "setup":
            self.set_up_users += 1
            user.variables = {
                k: v for k, v in state.variables.items() if k not in ("iteration", "uuid", "journey")
            }
        return None

    async def _set_up(self, user: _User) -> bool:
        """Set the user up if it is not yet; False if its setup failed."""
        if user.variables is not None:
            return True
        if self.s.setup is None:
            user.variables = {}
            return True
        self.setting_up += 1
        try:
            return await self._once("setup", user) is None
        finally:
            self.setting_up -= 1

    async def _teardowns(self) -> None:
        """Each user that was set up runs the teardown, at once, bounded by the request timeout."""
        if self.s.teardown is None:
            return
        users = [user for user in self.users if user.variables is not None]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.s.request_timeout):
                await asyncio.gather(*(self._once("teardown", user) for user in users))

    def _spawn(self, coroutine: Coroutine[Any, Any, None], *, iteration: bool = False) -> asyncio.Task[None]:
        """A task of the run: cancelled at its end; its crash ends the run (and is re-raised)."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self._iteration_done if iteration else self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and self.crash is None:
            self.crash = task.exception()
            self.halted = "crashed"

    def _iteration_done(self, task: asyncio.Task[None]) -> None:
        # here, not in the coroutine: a task cancelled before it ran never runs its `finally`
        self.active -= 1
        self._task_done(task)
        self._dispatch()

    def _halt_if_asked(self, now: float) -> bool:
        if self.halted is None:
            if self.stop is not None and self.stop.is_set():
                self.halted = "stopped"
            elif now >= self.deadline:
                self.halted = "max_duration"
        return self.halted is not None

    async def _sleep_until(self, at: float) -> bool:
        """Sleep until `at`; False if the run was halted meanwhile."""
        while True:
            now = time.perf_counter()
            if self._halt_if_asked(now):
                return False
            delay = at - now
            if delay <= 0:
                await asyncio.sleep(0)  # behind schedule: still let the iterations run
                return self.halted is None
            await asyncio.sleep(min(delay, _SLICE))

    def _lag(self, seconds: float) -> None:
        if seconds > self.max_lag:
            self.max_lag = seconds
        second = self._second(time.perf_counter())
        if second is not None:
            second.max_lag_us = max(second.max_lag_us, _us(seconds))

    def _pick(self) -> _Journey:
        """Smooth weighted round-robin: exact shares, evenly interleaved."""
        best = self.journeys[0]
        for j in self.journeys:
            j.current += j.weight
            if j.current > best.current:
                best = j
        best.current -= self.total_weight
        return best

    def _second(self, t: float, step: _Step | None = None) -> _Second | None:
        """The run's record of the measured second at `t` (with a step: the step's)."""
        if t < self.measure_start:
            return None
        index = int(t - self.measure_start)
        seconds = self.seconds if step is None else step.seconds
        second = seconds.get(index)
        if second is None:
            second = seconds[index] = _Second()
            if step is not None:
                self._second(t)  # the run's series has every second a step's has
        return second

    def _seconds(self, t: float, step: _Step) -> list[_Second]:
        """The run's and the step's records of the measured second at `t` (none before it)."""
        second = self._second(t)
        return [] if second is None else [second, self._second(t, step) or second]

    # -- open model ----------------------------------------------------------------------

    async def _open(self) -> None:
        for offset_ns, warm in journey_schedule(self.s).arrivals():
            at = self.t0 + offset_ns / 1e9
            if not await self._sleep_until(at):
                return
            now = time.perf_counter()
            self._lag(now - at)
            if not warm:
                self.scheduled += 1
            journey = self._pick()
            self._count_behind(journey, now - at, warm)
            self.queue.append(_Arrival(at, warm, journey))
            self._dispatch()
        while self.queue or self.active:  # the schedule is done: let the last iterations finish
            if not await self._sleep_until(time.perf_counter() + TICK):
                return

    def _dispatch(self) -> None:
        """Start queued arrivals while fewer than `max_connections` iterations are in flight."""
        now = time.perf_counter()
        while self.queue and self.active < self.s.max_connections and not (self.halted or self.closing):
            arrival = self.queue.popleft()
            if now - arrival.at > self.s.request_timeout:
                self._drop(arrival, now)
                continue
            self.active += 1  # counted now: the task starts on the loop's next turn
            user = self.free_users.pop() if self.free_users else self._new_user()
            if user.variables is not None:
                self._begin(arrival.journey, arrival.at, now, arrival.warm)
            self._spawn(self._arrived(arrival, now, user), iteration=True)

    async def _arrived(self, arrival: _Arrival, started: float, user: _User) -> None:
        """An arrival's iteration on `user`; a user's first is timed from the end of its setup."""
        intended = arrival.at
        try:
            if user.variables is None:
                if not await self._set_up(user):
                    # the arrival's iteration failed at `setup`, as the C engine counts it
                    if arrival.warm:
                        self.warm_started += 1
                        self.warm_completed += 1
                    else:
                        self.started += 1
                        self.completed += 1
                        journey = arrival.journey
                        journey.iterations += 1
                        journey.failed_at["setup"] = journey.failed_at.get("setup", 0) + 1
                    return
                intended = started = time.perf_counter()
                self._begin(arrival.journey, intended, started, arrival.warm)
            await self._steps(arrival.journey, intended, started, arrival.warm, user)
        finally:
            self.free_users.append(user)

    def _expire(self, now: float) -> None:
        while self.queue and now - self.queue[0].at > self.s.request_timeout:
            self._drop(self.queue.popleft(), now)

    def _drop(self, arrival: _Arrival, now: float) -> None:
        arrival.journey.steps[0].tally(arrival.warm).dropped += 1
        if not arrival.warm:
            self.dropped += 1
            for second in self._seconds(now, arrival.journey.steps[0]):
                second.dropped += 1

    # -- closed model --------------------------------------------------------------------

    async def _closed(self) -> None:
        end = self.measure_start + self.measured_limit
        users = [self._spawn(self._user(end)) for _ in range(self.s.users or 1)]
        # not a plain gather: a stop or `max_duration` must not wait for iterations in flight
        while not all(user.done() for user in users):
            if not await self._sleep_until(time.perf_counter() + TICK):
                return

    async def _user(self, end: float) -> None:
        user = self._new_user()
        at = self.t0
        while at < end:
            if not await self._sleep_until(at):
                return
            if user.variables is None:
                # Setup first; not an iteration: a failed one is counted in `setup_failures` and
                # tried again after the think time (at least 10 ms), as on the C engine. The
                # first iteration is intended at the setup's end, its phase decided then.
                ok = await self._set_up(user)
                at = time.perf_counter() + (0.0 if ok else max(self.s.think_time, _RETRY_SETUP))
                continue
            now = time.perf_counter()
            self._lag(now - at)
            warm = at < self.measure_start
            if not warm:
                if self.s.max_requests is not None and self.scheduled >= self.s.max_requests:
                    return
                self.scheduled += 1
            journey = self._pick()
            self._count_behind(journey, now - at, warm)
            self.active += 1
            try:
                self._begin(journey, at, now, warm)
                await self._steps(journey, at, now, warm, user)
            finally:
                self.active -= 1
            at = time.perf_counter() + self.s.think_time

    def _count_behind(self, journey: _Journey, lag: float, warm: bool) -> None:
        """An arrival (closed: a user's turn) the loop itself reached late: the generator fell
        behind its schedule, whatever the service did."""
        if lag > self.s.late_threshold:
            journey.steps[0].tally(warm).behind += 1
            if not warm:
                self.behind += 1

    # -- one iteration -------------------------------------------------------------------

    def _begin(self, journey: _Journey, intended: float, started: float, warm: bool) -> None:
        """Count an iteration as started (and late), before its task gets to run."""
        first = journey.steps[0].tally(warm)
        if warm:
            self.warm_started += 1
        else:
            self.started += 1
        if started - intended > self.s.late_threshold:
            first.late += 1
            if not warm:
                self.late += 1
                for second in self._seconds(started, journey.steps[0]):
                    second.late += 1

    async def _steps(
        self, journey: _Journey, intended: float, started: float, warm: bool, user: _User
    ) -> None:
        journey.number += 1
        state = self._state(journey.journey, journey.name, journey.number, user)
        failure: Failure | None = None
        for index, (step, spec) in enumerate(zip(journey.steps, journey.journey.steps, strict=True)):
            tally = step.tally(warm)
            sent = time.perf_counter()
            tally.requests += 1
            if warm:
                self.warm_requests += 1
            else:
                self.requests += 1
                for second in self._seconds(sent, step):
                    second.sent += 1
            token = 0
            if not warm:  # unanswered until run_step returns: measured from where its latency is
                self.tokens = token = self.tokens + 1
                self.outstanding[token] = (intended if index == 0 else sent, step)
            try:
                result, failure = await self.engine.run_step(user.client, state, spec)
            finally:
                self.outstanding.pop(token, None)
            done = time.perf_counter()
            corrected = done - (intended if index == 0 else sent)
            self._outcome(step, tally, result, failure, warm, done, done - sent, corrected)
            if failure is not None:
                if warm and len(self.warm_failures) < KEPT_FAILURES:
                    self.warm_failures.append(failure)
                break
        end = time.perf_counter()
        if warm:
            self.warm_completed += 1
            self.warm_passed += failure is None
            return
        self.completed += 1
        journey.iterations += 1
        if failure is None:
            journey.passed += 1
            journey.duration.record_value(_us(end - intended))
            journey.duration_uncorrected.record_value(_us(end - started))
        else:
            journey.failed_at[failure.step] = journey.failed_at.get(failure.step, 0) + 1

    def _outcome(
        self,
        step: _Step,
        tally: _Tally,
        result: StepResult,
        failure: Failure | None,
        warm: bool,
        done: float,
        uncorrected: float,
        corrected: float,
    ) -> None:
        kind = _error_kind(result, failure)
        tally.outcomes += 1
        if result.status is not None:
            tally.responses += 1
            tally.status[result.status] = tally.status.get(result.status, 0) + 1
            self.all_responses += 1
        if kind is not None:
            tally.errors[kind] += 1
        if warm:
            self.warm_errors += kind is not None
            return
        if kind is not None:
            self.errors += 1
            if failure is not None and len(self.failures) < KEPT_FAILURES:
                self.failures.append(failure)
        seconds = self._seconds(done, step)
        if result.status is None:  # no response: counted, in no histogram
            for second in seconds:
                if kind is not None:
                    second.errors[kind] += 1
            return
        self.responses += 1
        corrected_us, uncorrected_us = _us(corrected), _us(uncorrected)
        step.corrected.record_value(corrected_us)
        step.uncorrected.record_value(uncorrected_us)
        for second in seconds:
            second.responses += 1
            if kind is not None:
                second.errors[kind] += 1
            second.values.append(corrected_us)

    # -- the ticker: loop lag, stop, expiry, progress ------------------------------------

    def _record_waiting(self, now: float) -> None:
        """At each measured second's end (to within a tick): the ages of the requests then
        unanswered, and of the arrivals still queued, from their intended time."""
        if not self.t0 or now < self.measure_start:
            return
        current = int(now - self.measure_start)
        for index in range(self.waiting_second + 1, current):
            at = self.measure_start + index + 1
            # each age counts for the run and for its step (a queued arrival: its first step)
            ages: dict[int, list[int]] = {}  # id of the step → ages
            steps: dict[int, _Step] = {}
            for since, step in self.outstanding.values():
                if since < at:
                    ages.setdefault(id(step), []).append(_us(at - since))
                    steps[id(step)] = step
            for arrival in self.queue:
                if not arrival.warm and arrival.at < at:
                    step = arrival.journey.steps[0]
                    ages.setdefault(id(step), []).append(_us(at - arrival.at))
                    steps[id(step)] = step
            if not ages:
                continue
            _add_waiting(
                self.seconds.setdefault(index, _Second()), [a for part in ages.values() for a in part]
            )
            for key, part in ages.items():
                _add_waiting(steps[key].seconds.setdefault(index, _Second()), part)
        self.waiting_second = max(self.waiting_second, current - 1)

    async def _tick(self) -> None:
        next_report = self.t0 + 1.0
        last_report, last_responses = self.t0, 0
        while True:
            target = time.perf_counter() + TICK
            await asyncio.sleep(TICK)
            now = time.perf_counter()
            self._lag(max(0.0, now - target))
            self._halt_if_asked(now)
            self._expire(now)
            self._record_waiting(now)
            if now < next_report:
                continue
            current = int(now - self.measure_start) if now >= self.measure_start else -1
            for index in (current - 1, current):  # outcomes land in the second they complete
                if index in self.seconds:
                    self.seconds[index].seal(self.so_far)
                for step in self.all_steps:
                    if index in step.seconds:
                        step.seconds[index].seal(step.so_far)
            ended = []  # the measured seconds over since the last report: no outcome lands there any more
            for index in range(self.reported_second + 1, current):
                if index in self.seconds:
                    self.seconds[index].seal(self.so_far)
                    second = self.seconds[index].stats(index, 1.0)
                    latency, waiting = second.latency, second.waiting
                    p95, p99 = (waiting_percentile(latency, waiting, p) for p in (95.0, 99.0))
                    ended.append(SecondLatency(index, p95, p99, None, second.outcomes, second.error_total))
                self._part_second(index)
            self.reported_second = max(self.reported_second, current - 1)
            span = now - last_report
            rps = (self.all_responses - last_responses) / span if span > 0 else 0.0
            last_report, last_responses = now, self.all_responses
            next_report += 1.0
            if self.on_progress is None:
                continue
            snapshot = ProgressSnapshot(
                elapsed=now - self.t0,
                warming_up=now < self.measure_start,
                requests=self.requests,
                responses=self.responses,
                errors=self.errors,
                late=self.late,
                dropped=self.dropped,
                warmup_requests=self.warm_requests,
                warmup_errors=self.warm_errors,
                rps=rps,
                p95_us=hist.sparse_percentile(self.so_far, 95.0),
                p99_us=hist.sparse_percentile(self.so_far, 99.0),
                open_connections=self.active,
                queued=len(self.queue),
                seconds=tuple(ended),
                parts={prefix: part.progress(current - 1) for prefix, part in self.parts.items()},
            )
            self.on_progress(snapshot, self._progress_text())
            self._halt_if_asked(time.perf_counter())

    def _part_second(self, index: int) -> None:
        """Each step's ended second `index` into its own and its component's live figures."""
        for step in self.all_steps:
            second = step.seconds.get(index)
            if second is None:
                continue
            second.seal(step.so_far)
            if self.on_progress is None:
                continue
            stats = second.stats(index, 1.0)
            for prefix in (f"endpoint.{step.endpoint.name}.", f"component.{step.endpoint.component}."):
                self.parts.setdefault(prefix, PartSeconds()).add(stats)

    def _progress_text(self) -> str:
        text = f"{self.completed + self.warm_completed} iterations done, {self.active} in flight"
        if self.s.setup is not None and (self.setting_up or self.setup_failures or not self.completed):
            # a slow setup (a password hash per user) can take most of a run: show it going
            text += f", {self.set_up_users} users set up, {self.setting_up} setting up"
            text += f", {self.setup_failures} setup failures"
        return text

    # -- the result ----------------------------------------------------------------------

    def _finish(self) -> None:
        """Once: what is still queued is dropped (waited too long) or unsent; stop the clocks."""
        if self.finished:
            return
        self.finished = True
        now = time.perf_counter()
        self._expire(now)
        for arrival in self.queue:
            arrival.journey.steps[0].tally(arrival.warm).unsent += 1
            if not arrival.warm:
                self.unsent += 1
        self.queue.clear()
        self.t_end = now
        self.cpu_end = time.thread_time()
        for second in self.seconds.values():
            second.seal(self.so_far)
        for step in self.all_steps:
            for second in step.seconds.values():
                second.seal(step.so_far)

    def _result(self, *, stopped: bool) -> JourneyLoadResult:
        t0 = self.t0 or self.t_end
        all_steps = [step for journey in self.journeys for step in journey.steps]
        # the measured phase ends at `duration`; the iterations then in flight drain after it,
        # and the teardowns follow the drain
        drained = self.t_drained or self.t_end
        ran = max(0.0, drained - self.measure_start) if self.t0 else 0.0
        measured_seconds = min(ran, self.measured_limit)
        # the ticker's seconds during the teardowns are no measured iterations'
        last = max((index for index in self.seconds if index < ran), default=-1)

        def series_of(seconds: dict[int, _Second]) -> tuple[SecondStats, ...]:
            return tuple(
                s.stats(index, min(1.0, ran - index) if index == last else 1.0)
                for index, s in sorted(seconds.items())
                if index < ran
            )

        steps = tuple(
            EndpointResult(
                counts=step.measured.counts(),
                warmup=step.warmup.counts(),
                corrected=step.corrected,
                uncorrected=step.uncorrected,
                endpoint=step.endpoint,
                series=series_of(step.seconds),
            )
            for journey in self.journeys
            for step in journey.steps
        )
        components = {
            name: aggregate_steps([s for s in steps if s.endpoint.component == name])
            for name in dict.fromkeys(s.endpoint.component for s in steps)
        }
        series = series_of(self.seconds)
        return JourneyLoadResult(
            steps=steps,
            overall=aggregate_steps(list(steps), series),
            components=components,
            series=series,
            journeys=tuple(
                JourneyTotals(
                    name=j.name,
                    weight=j.weight,
                    iterations=j.iterations,
                    passed=j.passed,
                    failed_at=dict(j.failed_at),
                    duration=j.duration,
                    duration_uncorrected=j.duration_uncorrected,
                )
                for j in self.journeys
            ),
            iterations=IterationCounts(
                scheduled=self.scheduled,
                started=self.started,
                completed=self.completed,
                late=self.late,
                dropped=self.dropped,
                unsent=self.unsent,
                warmup=self.warm_started,
                warmup_completed=self.warm_completed,
                warmup_passed=self.warm_passed,
                setup_failures=self.setup_failures,
                teardown_failures=self.teardown_failures,
                behind=self.behind,
            ),
            failures=(*self.failures, *self.once_failures),
            # as the C engine counts it: the failed requests of the measured steps and of every
            # setup and teardown (`JourneyLoadResult.failures_by_part`)
            failure_count=sum(step.measured.counts().error_total for step in all_steps)
            + sum(step.warmup.counts().error_total for step in self.once_steps.values()),
            cpu_seconds=max(0.0, self.cpu_end - self.cpu0),
            generator_seconds=max(0.0, self.t_end - t0),
            max_lag_us=_us(self.max_lag) if self.max_lag > 0 else 0,
            measured_seconds=measured_seconds,
            drain_seconds=ran - measured_seconds,
            teardown_seconds=max(0.0, self.t_end - drained) if self.t0 else 0.0,
            warmup_failures=tuple(self.warm_failures),
            wall_seconds=max(0.0, self.t_end - t0),
            started_at=self.started_at,
            stopped_early=stopped,
            hit_max_duration=self.halted == "max_duration",
            once_steps=tuple(
                EndpointResult(
                    counts=step.measured.counts(),
                    warmup=step.warmup.counts(),
                    corrected=step.corrected,
                    uncorrected=step.uncorrected,
                    endpoint=step.endpoint,
                )
                for step in self.once_steps.values()
            ),
        )
