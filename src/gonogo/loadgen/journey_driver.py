"""The Python driver of journeys under load: what runs them when the C engine cannot (see
`journey_load` for the traffic it sends and what it measures). One asyncio loop in the
calling thread; iterations arrive on the C engine's own schedule (`journey_schedule`).

This module is the driving loop: the open model's arrivals and the closed model's users,
the ticker (loop lag, stop, expiry, progress) and the run's start and end. The virtual users
and what they run are `journey_driver_users`; what is counted, `journey_driver_tally` (its
records, `journey_driver_records`); the progress and the result, `journey_driver_result`.
"""

from __future__ import annotations

__all__ = ["PythonDriver", "journey_schedule"]

import asyncio
import contextlib
import gc
import importlib
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gonogo.loadgen.journey_driver_records import Arrival, JourneyRecord
from gonogo.loadgen.journey_driver_result import LiveFigures, journey_result
from gonogo.loadgen.journey_driver_tally import RunTally
from gonogo.loadgen.journey_driver_users import User, VirtualUsers
from gonogo.loadgen.journey_results import (
    JourneyLoadInterrupted,
    JourneyLoadResult,
    Progress,
    journey_progress,
)
from gonogo.loadgen.schedule import Schedule, open_stages
from gonogo.loadgen.settings import LoadSettings

TICK = 0.02  # seconds between the ticker's wake-ups (loop lag, stop, expiry, progress)
_SLICE = 0.05  # the longest a scheduler sleeps before looking at `stop` again
# Closed model: a user's setup is tried at most `setup_attempts` times, the k-th retry after a
# jittered exponential backoff (SETUP_BACKOFF * 2^(k-1), at most SETUP_BACKOFF_MAX, or the
# failed attempt's duration if longer; times 0.5 to 1; at least the think time): a server
# still busy with timed-out sign-ups must not get a storm of new ones. The C engine
# (_engine.c) has the same.
SETUP_BACKOFF = 0.5
SETUP_BACKOFF_MAX = 8.0


def setup_backoff(failed_attempts: int, took: float, think_time: float, draw: float) -> float:
    """The wait before a user's next setup attempt after `failed_attempts` failed ones, the
    last of which took `took` seconds (`draw`: uniform in [0, 1), the jitter). An attempt that
    took long to fail (a timeout) left the server busy with it: the wait is at least as long."""
    backoff = max(took, min(SETUP_BACKOFF_MAX, SETUP_BACKOFF * 2.0 ** (failed_attempts - 1)))
    return max(think_time, backoff * (0.5 + 0.5 * draw))


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
        self.s = settings
        self.tally = RunTally(settings)
        self.users = VirtualUsers(settings, base_url, files=files, expand=expand, tally=self.tally)
        self.figures = LiveFigures(self.tally, keep_parts=on_progress is not None)
        self.on_progress = on_progress
        self.stop = stop
        self.journeys = self.tally.journeys
        self.total_weight = sum(j.weight for j in self.journeys)
        self.free_users: list[User] = []  # open model: users between iterations
        self.queue: deque[Arrival] = deque()
        self.tasks: set[asyncio.Task[None]] = set()
        self.active = 0  # iterations in flight
        self.halted: str | None = None  # why the run stops before its natural end
        self.crash: BaseException | None = None
        self.t0 = self.t_end = 0.0
        self.t_drained = 0.0  # the last iteration's end (0: the run did not get there)
        self.deadline = math.inf
        self.cpu0 = self.cpu_end = 0.0
        self.started_at = datetime.now(UTC)
        self.finished = False
        self.closing = False  # the run is over: start nothing new
        # closed model with a setup: the measured phase starts once every user's setup has ended
        self.waits_for_setups = settings.model == "closed" and settings.setup is not None
        self.setups_pending = (settings.users or 1) if self.waits_for_setups else 0
        self.setups_ended_at = 0.0  # perf_counter seconds (0: not yet)
        self.setups_given_up = 0
        self.jitter = random.Random(settings.seed)

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
            self.tally.measure_start = self.t0 + self.s.warmup
            if self.waits_for_setups:  # set once the last user's setup has ended (`_setup_over`)
                self.tally.measure_start = math.inf
            self.deadline = self.t0 + self.s.max_duration
            self._spawn(self._tick())
            try:
                if self.s.model == "open":
                    await self._open()
                else:
                    await self._closed()
                self.t_drained = time.perf_counter()  # the teardowns start after the drain, not in it
                if self.halted not in ("max_duration", "crashed"):
                    await self.users.tear_down()
            finally:
                self.closing = True
                tasks = list(self.tasks)
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                self._finish()
        finally:
            await self.users.close()

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

    def _pick(self) -> JourneyRecord:
        """Smooth weighted round-robin: exact shares, evenly interleaved."""
        best = self.journeys[0]
        for j in self.journeys:
            j.current += j.weight
            if j.current > best.current:
                best = j
        best.current -= self.total_weight
        return best

    def _arrive(self, lag: float, warm: bool) -> JourneyRecord:
        """An arrival (closed: a user's turn) the loop reached `lag` late: its journey."""
        if not warm:
            self.tally.scheduled += 1
        journey = self._pick()
        self.tally.count_behind(journey, lag, warm)
        return journey

    # -- open model ----------------------------------------------------------------------

    async def _open(self) -> None:
        for offset_ns, warm in journey_schedule(self.s).arrivals():
            at = self.t0 + offset_ns / 1e9
            if not await self._sleep_until(at):
                return
            lag = time.perf_counter() - at
            self.tally.lag(lag)
            self.queue.append(Arrival(at, warm, self._arrive(lag, warm)))
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
                self.tally.drop(arrival, now)
                continue
            self.active += 1  # counted now: the task starts on the loop's next turn
            user = self.free_users.pop() if self.free_users else self.users.new()
            if user.variables is not None:
                self.tally.begin(arrival.journey, arrival.at, now, arrival.warm)
            self._spawn(self._arrived(arrival, now, user), iteration=True)

    async def _arrived(self, arrival: Arrival, started: float, user: User) -> None:
        """An arrival's iteration on `user`; a user's first is timed from the end of its setup."""
        intended = arrival.at
        try:
            if user.variables is None:
                if not await self.users.ready(user):
                    self.tally.setup_failed(arrival)
                    return
                intended = started = time.perf_counter()
                self.tally.begin(arrival.journey, intended, started, arrival.warm)
            await self.users.iterate(arrival.journey, intended, started, arrival.warm, user)
        finally:
            self.free_users.append(user)

    def _expire(self, now: float) -> None:
        while self.queue and now - self.queue[0].at > self.s.request_timeout:
            self.tally.drop(self.queue.popleft(), now)

    # -- closed model --------------------------------------------------------------------

    async def _closed(self) -> None:
        users = [self._spawn(self._user()) for _ in range(self.s.users or 1)]
        # not a plain gather: a stop or `max_duration` must not wait for iterations in flight
        while not all(user.done() for user in users):
            if not await self._sleep_until(time.perf_counter() + TICK):
                return

    def _setup_over(self) -> None:
        """One more user's setup is over for good; with the last, the measured phase starts
        (now, or at the warm-up's end if that is later)."""
        self.setups_pending -= 1
        if self.setups_pending == 0:
            self.setups_ended_at = time.perf_counter()
            self.tally.measure_start = self.setups_ended_at + self.s.warmup  # the warm-up follows the setups

    async def _user(self) -> None:
        user = self.users.new()
        at = self.t0
        failed_setups = 0
        while at < self.tally.measure_start + self.s.measured_limit:
            if not await self._sleep_until(at):
                return
            if user.variables is None:
                # Setup first; not an iteration: a failed one is counted in `setup_failures` and
                # tried again after a backoff, at most `setup_attempts` times, as on the C engine.
                # The first iteration is intended at the setup's end, its phase decided then.
                attempt = time.perf_counter()
                if await self.users.ready(user):
                    self._setup_over()
                    at = time.perf_counter()
                    continue
                failed_setups += 1
                if failed_setups >= self.s.setup_attempts:
                    self.setups_given_up += 1
                    self._setup_over()
                    return
                took = time.perf_counter() - attempt
                wait = setup_backoff(failed_setups, took, self.s.think_time, self.jitter.random())
                at = time.perf_counter() + wait
                continue
            now = time.perf_counter()
            self.tally.lag(now - at)
            warm = at < self.tally.measure_start
            if not warm and self.s.max_requests is not None and self.tally.scheduled >= self.s.max_requests:
                return
            journey = self._arrive(now - at, warm)
            self.active += 1
            try:
                self.tally.begin(journey, at, now, warm)
                await self.users.iterate(journey, at, now, warm, user)
            finally:
                self.active -= 1
            at = time.perf_counter() + self.s.think_time

    # -- the ticker: loop lag, stop, expiry, progress ------------------------------------

    async def _tick(self) -> None:
        next_report = self.t0 + 1.0
        last_report, last_responses = self.t0, 0
        while True:
            target = time.perf_counter() + TICK
            await asyncio.sleep(TICK)
            now = time.perf_counter()
            self.tally.lag(max(0.0, now - target))
            self._halt_if_asked(now)
            self._expire(now)
            self.tally.record_waiting(now, self.queue)
            if now < next_report:
                continue
            measure_start = self.tally.measure_start
            current = int(now - measure_start) if now >= measure_start else -1
            ended = self.figures.seconds_ended(current)
            span = now - last_report
            rps = (self.tally.all_responses - last_responses) / span if span > 0 else 0.0
            last_report, last_responses = now, self.tally.all_responses
            next_report += 1.0
            if self.on_progress is None:
                continue
            snapshot = self.figures.snapshot(
                elapsed=now - self.t0,
                warming_up=now < measure_start,
                rps=rps,
                ended=ended,
                current=current,
                open_connections=self.active,
                queued=len(self.queue),
                measured_elapsed=now - measure_start if now >= measure_start else None,
            )
            self.on_progress(snapshot, self._progress_text(now < measure_start))
            self._halt_if_asked(time.perf_counter())

    def _progress_text(self, warming_up: bool) -> str:
        tally, users = self.tally, self.users
        return journey_progress(
            done=tally.warm_completed if warming_up else tally.completed,
            in_flight=self.active,
            setup=self.s.setup is not None,
            closed=self.s.model == "closed",
            users=self.s.users or 1,
            set_up=users.set_up_count,
            setting_up=users.setting_up,
            failures=tally.setup_failures,
            given_up=self.setups_given_up,
        )

    # -- the end -------------------------------------------------------------------------

    def _finish(self) -> None:
        """Once: what is still queued is dropped (waited too long) or unsent; stop the clocks."""
        if self.finished:
            return
        self.finished = True
        now = time.perf_counter()
        self._expire(now)
        for arrival in self.queue:
            self.tally.leave_unsent(arrival)
        self.queue.clear()
        self.t_end = now
        self.cpu_end = time.thread_time()
        self.tally.seal()

    def _result(self, *, stopped: bool) -> JourneyLoadResult:
        return journey_result(
            self.tally,
            measured_limit=self.s.measured_limit,
            t0=self.t0,
            t_drained=self.t_drained,
            t_end=self.t_end,
            cpu_seconds=max(0.0, self.cpu_end - self.cpu0),
            started_at=self.started_at,
            stopped=stopped,
            hit_max_duration=self.halted == "max_duration",
            setup_seconds=self.setups_ended_at - self.t0 if self.setups_ended_at else None,
            setups_given_up=self.setups_given_up,
        )
