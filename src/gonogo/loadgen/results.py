"""What a load run measured (`LoadResult`): counts by outcome, HdrHistograms of latency and
per-second series per endpoint, per component and overall, and the generator's own figures;
and the progress snapshots of a run in flight. See `engine` for how each is measured.
"""

from __future__ import annotations

__all__ = [
    "CONNECTION_ERROR_KINDS",
    "ERROR_KINDS",
    "KEPT_CUTS",
    "Aggregate",
    "Counts",
    "EndpointResult",
    "LoadError",
    "LoadInterrupted",
    "LoadResult",
    "PartProgress",
    "ProgressSnapshot",
    "SecondLatency",
    "SecondStats",
    "StreamCut",
    "StreamStats",
    "WorkerStats",
    "merge_seconds",
    "oldest_waiting",
    "waiting_percentile",
]

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gonogo.loadgen.histogram as hist
from gonogo.errors import GonogoError
from gonogo.loadgen.expect import AssertionFailure
from gonogo.loadgen.histogram import HdrHistogram
from gonogo.loadgen.native import ERROR_KINDS
from gonogo.loadgen.spec import Endpoint, LoadSpec

CONNECTION_ERROR_KINDS: tuple[str, ...] = ("refused", "connect", "reset", "closed", "protocol")
KEPT_CUTS = 5  # cut streams kept as examples per endpoint (the engine's KEEP_CUTS, per worker)


class LoadError(GonogoError, RuntimeError):
    """The run could not be completed (a worker process failed)."""


class LoadInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run. `result` holds what was measured until then."""

    def __init__(self, result: LoadResult) -> None:
        super().__init__("load run interrupted")
        self.result = result


@dataclass(frozen=True)
class Counts:
    """What happened to the requests of one endpoint (or a sum of them) in one phase.

    `requests`: sent; `responses`: complete responses (any status); `errors`: by kind (every
    kind of ERROR_KINDS present); `unfinished`: sent but without outcome because the run was
    stopped; `unsent`: scheduled but still queued when the run was stopped. `late`: sent more
    than `late_threshold` after the intended time, for whatever reason; `behind`: those the
    generator's own loop handled that late (open: the arrival; closed: the user's next send),
    as opposed to requests that waited for a free connection while the server held them all.
    """

    requests: int = 0
    responses: int = 0
    late: int = 0
    dropped: int = 0
    behind: int = 0
    unfinished: int = 0
    unsent: int = 0
    errors: Mapping[str, int] = field(default_factory=lambda: dict.fromkeys(ERROR_KINDS, 0))
    status: Mapping[int, int] = field(default_factory=dict)

    @property
    def scheduled(self) -> int:
        """Requests the schedule asked for: sent, dropped or never sent."""
        return self.requests + self.dropped + self.unsent

    @property
    def error_total(self) -> int:
        return sum(self.errors.values())

    @property
    def connection_errors(self) -> int:
        return sum(self.errors[k] for k in CONNECTION_ERROR_KINDS)

    @property
    def timeouts(self) -> int:
        return self.errors["timeout"]

    @property
    def error_rate(self) -> float | None:
        """Failed requests (4xx, 5xx, connection errors, timeouts) over requests with an outcome."""
        done = self.requests - self.unfinished
        return self.error_total / done if done else None

    def __add__(self, other: Counts) -> Counts:
        status = dict(self.status)
        for code, n in other.status.items():
            status[code] = status.get(code, 0) + n
        return Counts(
            requests=self.requests + other.requests,
            responses=self.responses + other.responses,
            late=self.late + other.late,
            dropped=self.dropped + other.dropped,
            behind=self.behind + other.behind,
            unfinished=self.unfinished + other.unfinished,
            unsent=self.unsent + other.unsent,
            errors={k: self.errors[k] + other.errors[k] for k in ERROR_KINDS},
            status=dict(sorted(status.items())),
        )


@dataclass(frozen=True)
class Aggregate:
    """Counts and latency histograms (µs) of a set of endpoints, and their per-second series:
    only the seconds with something in them (a request sent, an outcome, one waiting at the
    second's end); `LoadResult.series` has every measured second."""

    counts: Counts
    warmup: Counts
    corrected: HdrHistogram
    uncorrected: HdrHistogram
    series: tuple[SecondStats, ...] = field(default=(), kw_only=True)


@dataclass(frozen=True)
class StreamCut:
    """A stream cut short, kept as an example: which endpoint's, how (`error`: closed, reset
    or timeout), its status, what it had received (`events`, body `bytes`, and the `tail`:
    its last body bytes, at most 160, as text), and when, in seconds: `after_send` from the
    send to the cut, `since_last_event` from its last event to the cut (None: it had none),
    `at` from the start of the measured phase."""

    endpoint: str
    error: str
    status: int
    events: int
    bytes: int
    after_send: float
    since_last_event: float | None
    at: float
    tail: str

    def summary(self) -> str:
        quiet = (
            f", its last event {self.since_last_event * 1000:.0f} ms before"
            if self.since_last_event is not None
            else ", no event before"
        )
        return (
            f"{self.endpoint}: stream cut short ({self.error}) {self.after_send:.2f}s after its send, "
            f"{self.at:.1f}s into the measured phase: status {self.status}, {self.events} event(s), "
            f"{self.bytes} body bytes received{quiet}"
        )


@dataclass(frozen=True)
class StreamStats:
    """The streaming responses of one endpoint (or a sum of them), measured phase.

    Events are what the endpoint's `stream` kind says (an SSE event, a chunk, a line). Times
    in µs: `first_event` from the request's intended send time (corrected for coordinated
    omission, like `Aggregate.corrected`), `first_event_uncorrected` from its actual send,
    `between_events` every gap between consecutive events of a response (0 for events that
    arrived in one read); first events and gaps are recorded as they arrive, those of
    responses later cut or failed included. `streams`: streams that *ended*, read to their
    end with a status that is no error (no 4xx/5xx, or one the `expect` allows), whether or
    not they met the rest of their `expect` (a stream that ends cleanly but early, without
    the terminator its `expect` asks for, is one, with its few events); `events` and `bytes`
    (body bytes, chunk framing excluded) are theirs, as are the per-stream histograms:
    `events_per_stream`, `duration` (from the first body byte to the end),
    `milli_events_per_second` (events per second times 1000, so slow streams keep their
    digits) and `bytes_per_second` over that span (only streams with a span > 0: a body read
    at once has no rate). `cut`: streams whose connection closed, was reset or timed out
    after the response's head and before the body's end (those requests also count as
    errors of that kind); `cuts`: the first of them (at most KEPT_CUTS per endpoint).
    """

    streams: int
    cut: int
    events: int
    bytes: int
    first_event: HdrHistogram
    first_event_uncorrected: HdrHistogram
    between_events: HdrHistogram
    events_per_stream: HdrHistogram
    duration: HdrHistogram
    milli_events_per_second: HdrHistogram
    bytes_per_second: HdrHistogram
    cuts: tuple[StreamCut, ...] = ()

    HISTOGRAMS: ClassVar[tuple[str, ...]] = (
        "first_event",
        "first_event_uncorrected",
        "between_events",
        "events_per_stream",
        "duration",
        "milli_events_per_second",
        "bytes_per_second",
    )

    @property
    def cut_rate(self) -> float | None:
        """Cut streams over streams that began and did not end in an error status: over
        ended + cut."""
        begun = self.streams + self.cut
        return self.cut / begun if begun else None

    @classmethod
    def merged(cls, parts: Sequence[StreamStats]) -> StreamStats:
        """The sum of `parts` (at least one), histograms bucket by bucket."""
        if len(parts) == 1:
            return parts[0]
        return cls(
            streams=sum(p.streams for p in parts),
            cut=sum(p.cut for p in parts),
            events=sum(p.events for p in parts),
            bytes=sum(p.bytes for p in parts),
            first_event=hist.merge(p.first_event for p in parts),
            first_event_uncorrected=hist.merge(p.first_event_uncorrected for p in parts),
            between_events=hist.merge(p.between_events for p in parts),
            events_per_stream=hist.merge(p.events_per_stream for p in parts),
            duration=hist.merge(p.duration for p in parts),
            milli_events_per_second=hist.merge(p.milli_events_per_second for p in parts),
            bytes_per_second=hist.merge(p.bytes_per_second for p in parts),
            cuts=tuple(cut for p in parts for cut in p.cuts),
        )


@dataclass(frozen=True)
class EndpointResult(Aggregate):
    endpoint: Endpoint
    # the first responses of the measured phase that failed `endpoint.expect` (at most
    # KEPT_FAILURES per worker process, KEPT_FAILURES in all)
    failures: tuple[AssertionFailure, ...] = ()
    stream: StreamStats | None = None  # `endpoint.stream` set: what its streams measured


@dataclass(frozen=True)
class SecondStats:
    """One second of the measured phase (the last one may be partial: `span` < 1)."""

    second: int
    span: float
    requests: int
    responses: int
    late: int
    dropped: int
    errors: Mapping[str, int]
    max_lag_us: int
    latency: Mapping[int, int]  # corrected latency: counts index -> count, 2 significant digits
    # the requests still unanswered at the second's end (sent or queued): their age then,
    # from their intended time, in the same form
    waiting: Mapping[int, int] = field(default_factory=dict)

    @property
    def error_total(self) -> int:
        return sum(self.errors.values())

    def percentile(self, p: float) -> int | None:
        """Corrected latency (µs) at percentile p of this second's responses; None if none."""
        return hist.sparse_percentile(self.latency, p)

    def percentile_with_waiting(self, p: float) -> int | None:
        """`percentile(p)`, or higher if it counts the requests still waiting at the second's
        end at their age so far (a lower bound of their latency): a second in which a stalled
        server answered little or nothing shows its users' wait. None if neither exists."""
        return waiting_percentile(self.latency, self.waiting, p)

    def histogram(self) -> HdrHistogram:
        return hist.from_sparse(self.latency.items())

    @property
    def outcomes(self) -> int:
        """Requests that ended in this second: responses (4xx/5xx and failed `expect`s included)
        and the errors that come without one (connection errors, timeouts)."""
        return self.responses + sum(n for kind, n in self.errors.items() if kind not in _WITH_RESPONSE)


# the error kinds that are responses (the rest come without one)
_WITH_RESPONSE = frozenset({"http_4xx", "http_5xx", "assertion"})


def merge_seconds(parts: Iterable[Iterable[SecondStats]]) -> tuple[SecondStats, ...]:
    """Several series second by second, without loss: counts added, latency histograms added
    bucket by bucket, the span and max lag the largest (a component's series from its
    endpoints'; the workers' series of one endpoint)."""
    merged: dict[int, SecondStats] = {}
    for series in parts:
        for s in series:
            m = merged.get(s.second)
            if m is None:
                merged[s.second] = s
                continue
            merged[s.second] = SecondStats(
                second=s.second,
                span=max(m.span, s.span),
                requests=m.requests + s.requests,
                responses=m.responses + s.responses,
                late=m.late + s.late,
                dropped=m.dropped + s.dropped,
                errors={k: m.errors.get(k, 0) + s.errors.get(k, 0) for k in {**m.errors, **s.errors}},
                max_lag_us=max(m.max_lag_us, s.max_lag_us),
                latency=_add_sparse(m.latency, s.latency),
                waiting=_add_sparse(m.waiting, s.waiting),
            )
    return tuple(merged[second] for second in sorted(merged))


def _add_sparse(a: Mapping[int, int], b: Mapping[int, int]) -> dict[int, int]:
    total = dict(a)
    for index, count in b.items():
        total[index] = total.get(index, 0) + count
    return dict(sorted(total.items()))


@dataclass(frozen=True)
class WorkerStats:
    """The generator measuring itself: one worker's thread CPU and wall time."""

    index: int
    cpu_user_seconds: float
    cpu_system_seconds: float
    wall_seconds: float
    max_lag_us: int
    connections_opened: int
    retries: int
    cpu: int | None

    @property
    def cpu_seconds(self) -> float:
        return self.cpu_user_seconds + self.cpu_system_seconds

    @property
    def cpu_utilisation(self) -> float:
        return self.cpu_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0


@dataclass(frozen=True)
class LoadResult:
    """Everything a run measured. Latencies in µs."""

    spec: LoadSpec
    endpoints: tuple[EndpointResult, ...]
    overall: Aggregate
    components: Mapping[str, Aggregate]
    series: tuple[SecondStats, ...]
    workers: tuple[WorkerStats, ...]
    measured_seconds: float  # from the end of the warm-up to the last outcome
    wall_seconds: float  # the whole run, warm-up included
    stopped_early: bool  # `stop` was set or the run was interrupted
    # each worker's `Engine.results()` as is (a journey program's per-journey figures are there)
    raw: tuple[Mapping[str, Any], ...] = field(default=(), repr=False, compare=False)

    @property
    def total(self) -> Counts:
        return self.overall.counts

    @property
    def warmup_total(self) -> Counts:
        return self.overall.warmup

    @property
    def cpu_seconds(self) -> float:
        return sum(w.cpu_seconds for w in self.workers)

    @property
    def max_lag_us(self) -> int:
        return max((w.max_lag_us for w in self.workers), default=0)

    @property
    def throughput(self) -> float:
        """Responses per second of the measured phase."""
        return self.total.responses / self.measured_seconds if self.measured_seconds > 0 else 0.0

    def endpoint(self, name: str) -> EndpointResult:
        for e in self.endpoints:
            if e.endpoint.name == name:
                return e
        raise KeyError(name)


@dataclass(frozen=True)
class SecondLatency:
    """Corrected latency (µs, 2 significant digits) of one second of the measured phase, as
    `SecondStats.percentile_with_waiting` gives it."""

    second: int  # from the end of the warm-up, as `SecondStats.second`
    p95_us: int | None  # None: no response completed in that second, and none was waiting
    p99_us: int | None
    # at most this old (µs from its intended time) was the oldest request waiting at the
    # second's end; None when none was
    oldest_waiting_us: int | None = None
    outcomes: int = 0  # requests that ended in that second (`SecondStats.outcomes`) …
    errors: int = 0  # … and the errors among them


@dataclass(frozen=True)
class PartProgress:
    """An endpoint's or a component's measured phase so far, from the seconds every worker has
    reported (so up to a second behind the whole run's figures)."""

    requests: int
    outcomes: int  # requests with an outcome (`SecondStats.outcomes`) …
    errors: int  # … and the errors among them
    latency: Mapping[int, int]  # corrected latency of the responses, sparse 2-digit histogram
    seconds: tuple[SecondStats, ...]  # the part's seconds that ended since the previous snapshot

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.outcomes if self.outcomes else None

    def percentile(self, p: float) -> int | None:
        return hist.sparse_percentile(self.latency, p)


@dataclass(frozen=True)
class ProgressSnapshot:
    """About once per second during a run."""

    elapsed: float  # seconds since the run started, warm-up included
    warming_up: bool
    requests: int  # measured phase, so far
    responses: int
    errors: int
    late: int
    dropped: int
    warmup_requests: int
    rps: float  # responses per second since the previous snapshot (both phases, setups, teardowns)
    p95_us: int | None  # corrected, measured phase so far (2 significant digits)
    p99_us: int | None
    open_connections: int
    queued: int
    # the measured seconds that ended since the previous snapshot, in order: the per-second
    # series an `abort_on_fail` gate with a timeframe (`< 500ms for 10s`) watches
    seconds: tuple[SecondLatency, ...] = ()
    # the warm-up's failed requests so far (by the journeys' drivers: also the users' setups)
    warmup_errors: int = 0
    # seconds since the measured phase started (None: not started). Closed-model journeys with
    # a setup start it once every user's setup has ended, which may be past the warm-up
    measured_elapsed: float | None = None
    # journeys on the C engine, summed over the workers: completed, warmup_completed,
    # in_flight, users_set_up, setting_up, setup_failures, has_setup (0 or 1); None otherwise
    journeys: Mapping[str, int] | None = None
    # per endpoint and per component, by metric prefix ("endpoint.<name>.", "component.<c>.")
    parts: Mapping[str, PartProgress] = field(default_factory=dict)


def waiting_percentile(latency: Mapping[int, int], waiting: Mapping[int, int], p: float) -> int | None:
    """The larger of the percentile p of `latency` and of `latency` with `waiting` added
    (sparse 2-digit histograms, see `SecondStats.percentile_with_waiting`)."""
    answered = hist.sparse_percentile(latency, p)
    if not waiting:
        return answered
    both = dict(latency)
    for index, count in waiting.items():
        both[index] = both.get(index, 0) + count
    with_waiting = hist.sparse_percentile(both, p)
    assert with_waiting is not None
    return with_waiting if answered is None else max(answered, with_waiting)


def oldest_waiting(waiting: Mapping[int, int]) -> int | None:
    """The highest age (µs) the oldest of the requests waiting at a second's end can have
    (`SecondStats.waiting`); None when none was waiting."""
    if not waiting:
        return None
    figures = hist.SERIES_SIGNIFICANT_FIGURES
    return hist.highest_equivalent_value(hist.value_at_index(max(waiting), figures), figures)
