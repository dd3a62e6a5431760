"""What a journey load measured (`JourneyLoadResult`), in the load engine's shapes, whichever
driver ran it (the C engine, `journey_engine`, or the Python driver, `journey_driver`); see
`journey_load` for how each figure is measured.
"""

from __future__ import annotations

__all__ = [
    "ASSERTION",
    "ERROR_KINDS_WITH_ASSERTION",
    "KEPT_FAILURES",
    "IterationCounts",
    "JourneyLoadInterrupted",
    "JourneyLoadResult",
    "JourneyTotals",
    "Progress",
    "aggregate_steps",
    "journey_progress",
    "sum_counts",
]

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from gonogo.journey.engine import Failure
from gonogo.loadgen import histogram as hist
from gonogo.loadgen.histogram import HdrHistogram
from gonogo.loadgen.results import (
    ERROR_KINDS,
    Aggregate,
    Counts,
    EndpointResult,
    ProgressSnapshot,
    SecondStats,
    merge_seconds,
)

ASSERTION = "assertion"
ERROR_KINDS_WITH_ASSERTION: tuple[str, ...] = ERROR_KINDS  # the engine's kinds include `assertion`
KEPT_FAILURES = 100  # failures of the measured phase kept as evidence

Progress = Callable[[ProgressSnapshot, str], None]


class JourneyLoadInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) during a run: `result` is what was measured, `original` the interrupt."""

    def __init__(self, result: JourneyLoadResult, original: KeyboardInterrupt) -> None:
        super().__init__("journey load interrupted")
        self.result = result
        self.original = original


@dataclass(frozen=True)
class JourneyTotals:
    """One journey over the measured phase."""

    name: str
    weight: int
    iterations: int  # ran to an end, passed or failed
    passed: int
    failed_at: Mapping[str, int]  # step → iterations that failed there
    duration: HdrHistogram  # µs, successful iterations, from the intended start
    duration_uncorrected: HdrHistogram  # µs, successful iterations, from the actual start

    @property
    def success_rate(self) -> float | None:
        return self.passed / self.iterations if self.iterations else None


@dataclass(frozen=True)
class IterationCounts:
    """What happened to the iterations the schedule asked for (measured phase)."""

    scheduled: int = 0  # open: arrivals; closed: iterations the users began
    started: int = 0
    completed: int = 0  # ran to an end (passed or failed); started - completed were cut short
    late: int = 0
    dropped: int = 0
    unsent: int = 0
    warmup: int = 0  # iterations started during the warm-up
    behind: int = 0  # arrivals (closed: turns) the loop itself reached more than late_threshold late
    # the warm-up's iterations to their end, as `completed` and the journeys' `passed`
    warmup_completed: int = 0
    warmup_passed: int = 0
    # failed setups and teardowns, whatever the phase (closed model: a failed setup is not an
    # iteration, its user tries again; open: it is also the arrival's iteration, failed at `setup`)
    setup_failures: int = 0
    teardown_failures: int = 0

    @property
    def unfinished(self) -> int:
        """Measured iterations started and cut before their end (a stop or `max_duration`)."""
        return self.started - self.completed

    @property
    def warmup_unfinished(self) -> int:
        return self.warmup - self.warmup_completed


@dataclass(frozen=True)
class JourneyLoadResult:
    """Everything a journey load measured, in the load engine's shapes. Latencies in µs."""

    steps: tuple[EndpointResult, ...]  # one per journey step, named `<journey>.<step>`
    overall: Aggregate
    components: Mapping[str, Aggregate]
    series: tuple[SecondStats, ...]
    journeys: tuple[JourneyTotals, ...]
    iterations: IterationCounts
    failures: tuple[Failure, ...]  # the first KEPT_FAILURES of the measured phase
    failure_count: int
    cpu_seconds: float  # the loop thread's CPU time
    generator_seconds: float  # wall time over which `cpu_seconds` was measured
    max_lag_us: int
    # from the start of the measured phase (the warm-up's end or, closed model with a setup,
    # the last user's setup's end if later) to its end (`duration`, or earlier if stopped);
    # the iterations still in flight then finish in `drain_seconds`, after it
    measured_seconds: float
    wall_seconds: float  # the whole run, warm-up included
    started_at: datetime
    stopped_early: bool  # `stop` was set, or the run was interrupted
    hit_max_duration: bool  # cut by `max_duration`
    # the per-user `setup` and `teardown` steps (`setup.<step>`, `teardown.<step>`): counted
    # apart, as warm-up (in no histogram, series or measured count)
    once_steps: tuple[EndpointResult, ...] = ()
    driver: Literal["c", "python"] = "python"
    drain_seconds: float = 0.0  # after the measured phase, until the last iteration in flight ended
    teardown_seconds: float = 0.0  # after the drain: the users' teardowns, which never overlap it
    # the warm-up iterations' first KEPT_FAILURES failures (the C engine keeps no response of
    # them: one summary per step and kind, with the statuses)
    warmup_failures: tuple[Failure, ...] = ()
    fallback_reason: str | None = (
        None  # why the Python driver ran, when the plan's journeys could not compile
    )
    # closed model with a setup: from the run's start until every user's setup had ended (set
    # up, or given up after `setup_attempts`), which the measured phase waits for; None: no
    # such wait, or the run ended before it was over
    setup_seconds: float | None = None
    setups_given_up: int = 0  # users that gave their setup up (closed model): no iteration

    @property
    def total(self) -> Counts:
        return self.overall.counts

    @property
    def failures_by_part(self) -> dict[str, int]:
        """`failure_count` by where the failed requests were: the measured phase's journey
        steps, every setup, every teardown (warm-up iterations' failures are counted apart,
        in the steps' `warmup` counts)."""
        return {
            "measured_steps": sum(s.counts.error_total for s in self.steps),
            "setup": sum(s.warmup.error_total for s in self.once_steps if s.endpoint.component == "setup"),
            "teardown": sum(
                s.warmup.error_total for s in self.once_steps if s.endpoint.component == "teardown"
            ),
        }

    @property
    def cpu_utilisation(self) -> float:
        return self.cpu_seconds / self.generator_seconds if self.generator_seconds > 0 else 0.0


def sum_counts(items: Sequence[Counts]) -> Counts:
    """The sum of counts, in one pass."""
    errors: dict[str, int] = {}
    status: dict[int, int] = {}
    for c in items:
        for kind, n in c.errors.items():
            errors[kind] = errors.get(kind, 0) + n
        for code, n in c.status.items():
            status[code] = status.get(code, 0) + n
    for kind in ERROR_KINDS_WITH_ASSERTION:
        errors.setdefault(kind, 0)
    return Counts(
        requests=sum(c.requests for c in items),
        responses=sum(c.responses for c in items),
        late=sum(c.late for c in items),
        dropped=sum(c.dropped for c in items),
        behind=sum(c.behind for c in items),
        unfinished=sum(c.unfinished for c in items),
        unsent=sum(c.unsent for c in items),
        errors=errors,
        status=dict(sorted(status.items())),
    )


def aggregate_steps(steps: Sequence[Aggregate], series: tuple[SecondStats, ...] | None = None) -> Aggregate:
    """The counts and histograms of `steps` together; the series `series`, or theirs merged."""
    return Aggregate(
        counts=sum_counts([s.counts for s in steps]),
        warmup=sum_counts([s.warmup for s in steps]),
        corrected=hist.merge(s.corrected for s in steps),
        uncorrected=hist.merge(s.uncorrected for s in steps),
        series=merge_seconds(s.series for s in steps) if series is None else series,
    )


def journey_progress(
    *,
    done: int,
    in_flight: int,
    setup: bool,
    closed: bool,
    users: int,
    set_up: int,
    setting_up: int,
    failures: int,
    given_up: int,
) -> str:
    """The progress line's journey part, the same on both drivers: the current phase's
    iterations done (the warm-up's, then the measured phase's, as its errors and rate are),
    and, while setups run, how far they are (a slow setup, a password hash per user, can
    take most of a run; closed model: the measured phase waits for them)."""
    text = f"{done} iterations done, {in_flight} in flight"
    ended = set_up + given_up
    if setup and (setting_up or (closed and ended < users) or (not closed and not set_up)):
        if closed:
            text += f", {set_up}/{users} users set up, {setting_up} setting up"
        else:
            text += f", {set_up} users set up, {setting_up} setting up"
        text += f", {failures} setup failures"
        if given_up:
            text += f", {given_up} users gave up"
    elif setup and closed and given_up:
        text += f", {given_up} users gave their setup up"
    return text
