"""What the Python journey driver (`journey_driver`) hands back of its tally
(`journey_driver_tally`): each second, the progress snapshot (`LiveFigures`); at the end, the
`JourneyLoadResult` (`journey_result`), in the shapes the C engine's results take.
"""

from __future__ import annotations

__all__ = ["LiveFigures", "journey_result"]

from datetime import datetime

from gonogo.loadgen import histogram as hist
from gonogo.loadgen.journey_driver_records import SecondRecord, StepRecord, microseconds
from gonogo.loadgen.journey_driver_tally import RunTally
from gonogo.loadgen.journey_results import IterationCounts, JourneyLoadResult, JourneyTotals, aggregate_steps
from gonogo.loadgen.merge import PartSeconds
from gonogo.loadgen.results import (
    EndpointResult,
    ProgressSnapshot,
    SecondLatency,
    SecondStats,
    waiting_percentile,
)


class LiveFigures:
    """The measured seconds as they end, for progress: their latency, and each step's and
    component's figures (`parts`, kept only when `keep_parts`)."""

    def __init__(self, tally: RunTally, *, keep_parts: bool) -> None:
        self.tally = tally
        self.keep_parts = keep_parts
        self.reported_second = -1  # the last measured second handed to progress
        self.parts: dict[str, PartSeconds] = {}  # per step and component: the live figures

    def seconds_ended(self, current: int) -> list[SecondLatency]:
        """The measured seconds over since the last call, `current` being the second now (-1:
        the warm-up): no outcome lands there any more."""
        # outcomes land in the second they complete: the one before the current is sealed
        # again, and the current one so far
        self.tally.seal(range(min(self.reported_second + 1, current - 1), current + 1))
        ended = []
        for index in range(self.reported_second + 1, current):
            if index in self.tally.seconds:
                second = self.tally.seconds[index].stats(index, 1.0)
                latency, waiting = second.latency, second.waiting
                p95, p99 = (waiting_percentile(latency, waiting, p) for p in (95.0, 99.0))
                ended.append(SecondLatency(index, p95, p99, None, second.outcomes, second.error_total))
            if self.keep_parts:
                self._add_parts(index)
        self.reported_second = max(self.reported_second, current - 1)
        return ended

    def _add_parts(self, index: int) -> None:
        """Each step's ended second `index` into its own and its component's live figures."""
        for step in self.tally.all_steps:
            second = step.seconds.get(index)
            if second is None:
                continue
            stats = second.stats(index, 1.0)
            for prefix in (f"endpoint.{step.endpoint.name}.", f"component.{step.endpoint.component}."):
                self.parts.setdefault(prefix, PartSeconds()).add(stats)

    def snapshot(
        self,
        *,
        elapsed: float,
        warming_up: bool,
        rps: float,
        ended: list[SecondLatency],
        current: int,
        open_connections: int,
        queued: int,
        measured_elapsed: float | None = None,
    ) -> ProgressSnapshot:
        tally = self.tally
        return ProgressSnapshot(
            elapsed=elapsed,
            warming_up=warming_up,
            requests=tally.requests,
            responses=tally.responses,
            errors=tally.errors,
            late=tally.late,
            dropped=tally.dropped,
            warmup_requests=tally.warm_requests,
            warmup_errors=tally.warm_errors,
            rps=rps,
            p95_us=hist.sparse_percentile(tally.so_far, 95.0),
            p99_us=hist.sparse_percentile(tally.so_far, 99.0),
            open_connections=open_connections,
            queued=queued,
            seconds=tuple(ended),
            measured_elapsed=measured_elapsed,
            parts={prefix: part.progress(current - 1) for prefix, part in self.parts.items()},
        )


def _endpoint_result(step: StepRecord, series: tuple[SecondStats, ...] = ()) -> EndpointResult:
    return EndpointResult(
        counts=step.measured.counts(),
        warmup=step.warmup.counts(),
        corrected=step.corrected,
        uncorrected=step.uncorrected,
        endpoint=step.endpoint,
        series=series,
    )


def journey_result(
    tally: RunTally,
    *,
    measured_limit: float,
    t0: float,
    t_drained: float,
    t_end: float,
    cpu_seconds: float,
    started_at: datetime,
    stopped: bool,
    hit_max_duration: bool,
    setup_seconds: float | None = None,
    setups_given_up: int = 0,
) -> JourneyLoadResult:
    """The run's result from its tally and its clock: `t0` its start, `t_drained` the last
    iteration's end, `t_end` the teardowns' (perf_counter seconds; 0: not reached); the
    setups' wait as `JourneyLoadResult` says."""
    start = t0 or t_end
    # the measured phase ends at `duration`; the iterations then in flight drain after it,
    # and the teardowns follow the drain
    drained = t_drained or t_end
    ran = max(0.0, drained - tally.measure_start) if t0 else 0.0
    measured_seconds = min(ran, measured_limit)
    # the ticker's seconds during the teardowns are no measured iterations'
    last = max((index for index in tally.seconds if index < ran), default=-1)

    def series_of(seconds: dict[int, SecondRecord]) -> tuple[SecondStats, ...]:
        return tuple(
            s.stats(index, min(1.0, ran - index) if index == last else 1.0)
            for index, s in sorted(seconds.items())
            if index < ran
        )

    steps = tuple(_endpoint_result(step, series_of(step.seconds)) for step in tally.all_steps)
    components = {
        name: aggregate_steps([s for s in steps if s.endpoint.component == name])
        for name in dict.fromkeys(s.endpoint.component for s in steps)
    }
    series = series_of(tally.seconds)
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
            for j in tally.journeys
        ),
        iterations=IterationCounts(
            scheduled=tally.scheduled,
            started=tally.started,
            completed=tally.completed,
            late=tally.late,
            dropped=tally.dropped,
            unsent=tally.unsent,
            warmup=tally.warm_started,
            warmup_completed=tally.warm_completed,
            warmup_passed=tally.warm_passed,
            setup_failures=tally.setup_failures,
            teardown_failures=tally.teardown_failures,
            behind=tally.behind,
        ),
        failures=(*tally.failures, *tally.once_failures),
        # as the C engine counts it: the failed requests of the measured steps and of every
        # setup and teardown (`JourneyLoadResult.failures_by_part`)
        failure_count=sum(step.measured.counts().error_total for step in tally.all_steps)
        + sum(step.warmup.counts().error_total for step in tally.once_steps.values()),
        cpu_seconds=cpu_seconds,
        generator_seconds=max(0.0, t_end - start),
        max_lag_us=microseconds(tally.max_lag) if tally.max_lag > 0 else 0,
        measured_seconds=measured_seconds,
        drain_seconds=ran - measured_seconds,
        teardown_seconds=max(0.0, t_end - drained) if t0 else 0.0,
        warmup_failures=tuple(tally.warm_failures),
        wall_seconds=max(0.0, t_end - start),
        started_at=started_at,
        stopped_early=stopped,
        hit_max_duration=hit_max_duration,
        once_steps=tuple(_endpoint_result(step) for step in tally.once_steps.values()),
        setup_seconds=setup_seconds,
        setups_given_up=setups_given_up,
    )
