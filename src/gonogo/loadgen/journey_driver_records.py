"""The records the Python journey driver (`journey_driver`) keeps as it runs: a step's
counts in one phase (`StepTally`), a step's measurements (`StepRecord`), a journey's
(`JourneyRecord`), one measured second of a series (`SecondRecord`), an open-model arrival
waiting for a connection (`Arrival`). `RunTally` (`journey_driver_tally`) updates them.
"""

from __future__ import annotations

__all__ = ["Arrival", "JourneyRecord", "SecondRecord", "StepRecord", "StepTally", "microseconds"]

from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field

from gonogo.journey.settings import Journey
from gonogo.loadgen import histogram as hist
from gonogo.loadgen.histogram import HdrHistogram
from gonogo.loadgen.journey_results import ERROR_KINDS_WITH_ASSERTION
from gonogo.loadgen.native import engine as _engine
from gonogo.loadgen.results import Counts, SecondStats
from gonogo.loadgen.spec import Endpoint


def microseconds(seconds: float) -> int:
    """`seconds` as a histogram records them: whole µs, within the trackable range."""
    return min(max(round(seconds * 1e6), hist.LOWEST_DISCERNIBLE), hist.HIGHEST_TRACKABLE)


def _sparse_counts(values: list[int]) -> Iterator[tuple[int, int]]:
    """`values` (µs) counted by 2-significant-digit histogram index: (index, count), non-zero."""
    first, raw = _engine.record_values(values, hist.SERIES_SIGNIFICANT_FIGURES)
    for offset, count in enumerate(array("Q", raw)):
        if count:
            yield first + offset, count


class StepTally:
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
class SecondRecord:
    """One measured second of the run's series, or of a step's."""

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
        for index, count in _sparse_counts(self.values):
            self.latency[index] = self.latency.get(index, 0) + count
            so_far[index] = so_far.get(index, 0) + count
        self.values.clear()

    def add_waiting(self, ages: list[int]) -> None:
        for index, count in _sparse_counts(ages):
            self.waiting[index] = self.waiting.get(index, 0) + count

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
class StepRecord:
    """A step of a journey (or of the setup or teardown) and what it measured."""

    endpoint: Endpoint
    measured: StepTally = field(default_factory=StepTally)
    warmup: StepTally = field(default_factory=StepTally)
    corrected: HdrHistogram = field(default_factory=hist.new_histogram)
    uncorrected: HdrHistogram = field(default_factory=hist.new_histogram)
    # the step's own per-second series (measured phase), as the run's: only its seconds with
    # something in them
    seconds: dict[int, SecondRecord] = field(default_factory=dict)
    so_far: dict[int, int] = field(default_factory=dict)  # what `SecondRecord.seal` folds its latency into

    def tally(self, warm: bool) -> StepTally:
        return self.warmup if warm else self.measured


@dataclass
class JourneyRecord:
    """A journey of the run, its steps' records and its measured iterations."""

    name: str
    journey: Journey
    weight: int
    steps: list[StepRecord]
    number: int = 0  # the last `{iteration}` given
    iterations: int = 0
    passed: int = 0
    failed_at: dict[str, int] = field(default_factory=dict)
    duration: HdrHistogram = field(default_factory=hist.new_histogram)
    duration_uncorrected: HdrHistogram = field(default_factory=hist.new_histogram)
    current: int = 0  # smooth weighted round-robin state

    def fail_at(self, step: str) -> None:
        """A measured iteration that failed at `step`."""
        self.iterations += 1
        self.failed_at[step] = self.failed_at.get(step, 0) + 1


@dataclass
class Arrival:
    """An arrival of the open model, queued until a connection is free."""

    at: float  # intended start (perf_counter seconds)
    warm: bool
    journey: JourneyRecord
