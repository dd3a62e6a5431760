"""What the Python journey driver (`journey_driver`) counts as it runs (`RunTally`): the
iterations and requests of the run, its journeys and their steps (`journey_driver_records`),
and the per-second series, the run's and each step's. The driver's loop and its virtual
users (`journey_driver_users`) write here; `journey_driver_result` reads it out, as progress
each second and as the result at the end.
"""

from __future__ import annotations

__all__ = ["RunTally"]

import time
from collections.abc import Callable, Iterable
from functools import partial

from gonogo.journey.engine import Failure, StepResult
from gonogo.journey.settings import Journey
from gonogo.loadgen.journey_driver_records import (
    Arrival,
    JourneyRecord,
    SecondRecord,
    StepRecord,
    microseconds,
)
from gonogo.loadgen.journey_results import ASSERTION, KEPT_FAILURES
from gonogo.loadgen.settings import LoadSettings
from gonogo.loadgen.spec import Endpoint


def _step_records(
    journey_name: str, journey: Journey, component_of: Callable[[str], str] | None = None
) -> list[StepRecord]:
    """A record per step of `journey`, each an endpoint of its own; `component_of` a step's
    name gives its component (None: the journey's name is every step's)."""
    return [
        StepRecord(
            Endpoint(
                name=f"{journey_name}.{step.name}",
                method=step.request.method,
                path=step.request.path,
                component=journey_name if component_of is None else component_of(step.name),
            )
        )
        for step in journey.steps
    ]


def _seal(seconds: dict[int, SecondRecord], so_far: dict[int, int], indexes: Iterable[int] | None) -> None:
    for index in seconds if indexes is None else indexes:
        if index in seconds:
            seconds[index].seal(so_far)


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


class RunTally:
    """The run's counts and series, and the records of its journeys and of their steps, and
    of the setup's and teardown's steps (`once_steps`, counted apart, as warm-up)."""

    def __init__(self, settings: LoadSettings) -> None:
        assert settings.journeys is not None, "a journey load needs journeys"
        self.late_threshold = settings.late_threshold
        self.journeys = [
            JourneyRecord(
                name,
                journey,
                settings.journey_weights.get(name, 1),
                _step_records(name, journey, partial(settings.component_of, name)),
            )
            for name, journey in settings.journeys.items()
        ]
        self.all_steps = [step for journey in self.journeys for step in journey.steps]
        self.once_steps = {
            step.endpoint.name: step
            for name, journey in settings.once_journeys().items()
            for step in _step_records(name, journey)
        }
        self.measure_start = 0.0  # perf_counter seconds; set as the run starts
        self.seconds: dict[int, SecondRecord] = {}
        self.so_far: dict[int, int] = {}  # corrected latency, 2 digits, sparse: the live p95/p99
        self.waiting_second = -1  # the last measured second whose waiting requests are recorded
        # measured requests in flight (by token) → their intended time and step
        self.outstanding: dict[int, tuple[float, StepRecord]] = {}
        self.tokens = 0
        self.failures: list[Failure] = []  # the first KEPT_FAILURES of the measured iterations
        self.once_failures: list[Failure] = []  # … and apart, of the setups and teardowns
        self.warm_failures: list[Failure] = []  # … and of the warm-up's iterations
        self.scheduled = self.started = self.completed = self.late = self.dropped = 0
        self.warm_completed = self.warm_passed = 0
        self.setup_failures = self.teardown_failures = 0
        self.behind = 0  # measured arrivals the loop reached late (see `count_behind`)
        self.unsent = self.warm_started = 0
        self.requests = self.responses = self.errors = 0  # measured, for progress
        self.warm_requests = self.all_responses = 0
        self.warm_errors = 0  # the warm-up's failed requests, setups' and teardowns' included, for progress
        self.max_lag = 0.0

    # -- the per-second series ---------------------------------------------------------

    def second(self, t: float, step: StepRecord | None = None) -> SecondRecord | None:
        """The run's record of the measured second at `t` (with a step: the step's)."""
        if t < self.measure_start:
            return None
        index = int(t - self.measure_start)
        seconds = self.seconds if step is None else step.seconds
        second = seconds.get(index)
        if second is None:
            second = seconds[index] = SecondRecord()
            if step is not None:
                self.second(t)  # the run's series has every second a step's has
        return second

    def seconds_at(self, t: float, step: StepRecord) -> list[SecondRecord]:
        """The run's and the step's records of the measured second at `t` (none before it)."""
        second = self.second(t)
        return [] if second is None else [second, self.second(t, step) or second]

    def seal(self, indexes: Iterable[int] | None = None) -> None:
        """Fold the latencies of the seconds `indexes` (None: all), the run's and each step's."""
        _seal(self.seconds, self.so_far, indexes)
        for step in self.all_steps:
            _seal(step.seconds, step.so_far, indexes)

    def lag(self, seconds: float) -> None:
        """The loop woke `seconds` later than it meant to."""
        self.max_lag = max(self.max_lag, seconds)
        second = self.second(time.perf_counter())
        if second is not None:
            second.max_lag_us = max(second.max_lag_us, microseconds(seconds))

    def record_waiting(self, now: float, queue: Iterable[Arrival]) -> None:
        """At each measured second's end (to within a tick): the ages of the requests then
        unanswered, and of the arrivals still queued, from their intended time."""
        if now < self.measure_start:
            return
        current = int(now - self.measure_start)
        for index in range(self.waiting_second + 1, current):
            at = self.measure_start + index + 1
            # each age counts for the run and for its step (a queued arrival: its first step)
            ages: dict[int, list[int]] = {}  # id of the step → ages
            steps: dict[int, StepRecord] = {}
            for since, step in self.outstanding.values():
                if since < at:
                    ages.setdefault(id(step), []).append(microseconds(at - since))
                    steps[id(step)] = step
            for arrival in queue:
                if not arrival.warm and arrival.at < at:
                    step = arrival.journey.steps[0]
                    ages.setdefault(id(step), []).append(microseconds(at - arrival.at))
                    steps[id(step)] = step
            if not ages:
                continue
            self.seconds.setdefault(index, SecondRecord()).add_waiting(
                [a for part in ages.values() for a in part]
            )
            for key, part in ages.items():
                steps[key].seconds.setdefault(index, SecondRecord()).add_waiting(part)
        self.waiting_second = max(self.waiting_second, current - 1)

    # -- the iterations ----------------------------------------------------------------

    def count_behind(self, journey: JourneyRecord, lag: float, warm: bool) -> None:
        """An arrival (closed: a user's turn) the loop itself reached late: the generator fell
        behind its schedule, whatever the service did."""
        if lag > self.late_threshold:
            journey.steps[0].tally(warm).behind += 1
            if not warm:
                self.behind += 1

    def begin(self, journey: JourneyRecord, intended: float, started: float, warm: bool) -> None:
        """Count an iteration as started (and late), before its task gets to run."""
        first = journey.steps[0].tally(warm)
        if warm:
            self.warm_started += 1
        else:
            self.started += 1
        if started - intended > self.late_threshold:
            first.late += 1
            if not warm:
                self.late += 1
                for second in self.seconds_at(started, journey.steps[0]):
                    second.late += 1

    def setup_failed(self, arrival: Arrival) -> None:
        """An arrival whose user's setup failed: its iteration failed at `setup`, as the C
        engine counts it."""
        if arrival.warm:
            self.warm_started += 1
            self.warm_completed += 1
        else:
            self.started += 1
            self.completed += 1
            arrival.journey.fail_at("setup")

    def drop(self, arrival: Arrival, now: float) -> None:
        """An arrival that waited longer than the request timeout for a connection."""
        first = arrival.journey.steps[0]
        first.tally(arrival.warm).dropped += 1
        if not arrival.warm:
            self.dropped += 1
            for second in self.seconds_at(now, first):
                second.dropped += 1

    def leave_unsent(self, arrival: Arrival) -> None:
        """An arrival still queued when the run ended."""
        arrival.journey.steps[0].tally(arrival.warm).unsent += 1
        if not arrival.warm:
            self.unsent += 1

    def sent(self, step: StepRecord, warm: bool, at: float, since: float) -> int:
        """A step's request sent at `at`; `since`: where its latency is measured from. Its
        token for `answered` (0: not measured, so not tracked as waiting)."""
        step.tally(warm).requests += 1
        if warm:
            self.warm_requests += 1
            return 0
        self.requests += 1
        for second in self.seconds_at(at, step):
            second.sent += 1
        # unanswered until answered: measured from where its latency is
        self.tokens += 1
        self.outstanding[self.tokens] = (since, step)
        return self.tokens

    def answered(self, token: int) -> None:
        self.outstanding.pop(token, None)

    def outcome(
        self,
        step: StepRecord,
        result: StepResult,
        failure: Failure | None,
        warm: bool,
        done: float,
        uncorrected: float,
        corrected: float,
    ) -> None:
        """A request's outcome: `result`, failed or not, at `done`, with its latencies."""
        tally = step.tally(warm)
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
        seconds = self.seconds_at(done, step)
        if result.status is None:  # no response: counted, in no histogram
            for second in seconds:
                if kind is not None:
                    second.errors[kind] += 1
            return
        self.responses += 1
        corrected_us, uncorrected_us = microseconds(corrected), microseconds(uncorrected)
        step.corrected.record_value(corrected_us)
        step.uncorrected.record_value(uncorrected_us)
        for second in seconds:
            second.responses += 1
            if kind is not None:
                second.errors[kind] += 1
            second.values.append(corrected_us)

    def iteration_ended(
        self, journey: JourneyRecord, failure: Failure | None, warm: bool, duration: float, uncorrected: float
    ) -> None:
        """An iteration's end: passed (`failure` None) after `duration` from its intended start
        (`uncorrected`: from its actual start), or failed."""
        if warm:
            if failure is not None and len(self.warm_failures) < KEPT_FAILURES:
                self.warm_failures.append(failure)
            self.warm_completed += 1
            self.warm_passed += failure is None
            return
        self.completed += 1
        if failure is not None:
            journey.fail_at(failure.step)
            return
        journey.iterations += 1
        journey.passed += 1
        journey.duration.record_value(microseconds(duration))
        journey.duration_uncorrected.record_value(microseconds(uncorrected))

    def once_failed(self, name: str, failure: Failure) -> None:
        """A user's setup or teardown (`name`) failed."""
        if name == "setup":
            self.setup_failures += 1
        else:
            self.teardown_failures += 1
        if len(self.once_failures) < KEPT_FAILURES:
            self.once_failures.append(failure)
