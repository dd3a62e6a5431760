"""The load engine: open-model (arrival rate) and closed-model (virtual users) HTTP/1.1 load
with latency corrected for coordinated omission. The hot loop is C (`_engine`); this module
describes a run, splits it over worker processes and merges what they measured.

API
---
``run_load(spec, *, on_progress=None, stop=None) -> LoadResult``

* `spec` (`LoadSpec`): target (`host` must be a loopback address literal, 127.0.0.0/8 or
  ::1, or "localhost"; anything else is refused), `endpoints` (method, path, headers, body,
  integer weight; requests are serialized once here and sent byte for byte), the model and
  its bounds. `validate()` raises `LoadSpecError` naming the field.
* `on_progress(ProgressSnapshot)` is called about once per second from the calling thread.
* `stop` (`threading.Event`): set it from another thread to end the run early (within
  about 50 ms); the result then has `stopped_early` set.
* Ctrl-C (SIGINT) raises `LoadInterrupted` (a `KeyboardInterrupt`) whose `result` holds
  everything measured so far, after every socket is closed and every worker process is
  gone.

Models
------
*open*: arrivals follow a schedule: a constant `rate` for `duration`, or linear ramps
`stages=[(seconds, target_rate), ...]` starting at `rate` (0 if None); deterministic spacing,
or Poisson (`poisson=True`, seeded by `seed`). Each request has an *intended* send time. If no
connection is free at that time it waits in a FIFO queue (at most `max_queue`);
`max_connections` caps concurrency. A request sent more than `late_threshold` after its
intended time is *late*; it is also *behind* when the generator's loop itself reached its
arrival that late (the generator fell behind its schedule), rather than the request waiting
for a connection the server still held. A request that waited longer than `timeout` to be
sent, or found the queue full, is *dropped* and counted. requests + dropped (+ unsent, if
stopped early) == scheduled, always.
*closed*: `users` virtual users, one keep-alive connection each; a user sends its next
request `think_time` after its previous response (at least 10 ms after a failed connect);
a send the loop reached more than `late_threshold` after that time is *behind*.

Bounds: `duration` and/or `max_requests` (requests of the measured phase). A `warmup`
(seconds, at the initial rate, or with all users) runs first; its requests are counted
apart (`warmup` counts) and are in no histogram and no per-second record.

Measurements
------------
Latency of every response, in microseconds, twice: *corrected* from the intended send time
(what a user arriving on schedule waited: includes queueing in the generator, wrk2-style)
and *uncorrected* from the moment the request was handed to a connection (connection set-up
included when a new one was needed). Both are HdrHistograms (see `histogram`), per endpoint,
per component and overall. Responses of any status are in the histograms; failed requests
(connection errors, timeouts) are not, they are counted by kind: `http_4xx`, `http_5xx`,
`refused`, `connect`, `reset`, `closed` (server closed before the response was complete),
`timeout`, `protocol` (unparseable response), `assertion` (a response that failed its
endpoint's `expect`, see `expect`; with `expect`, an expected 4xx/5xx is no error). A
keep-alive connection the server had already closed is retried once on a new connection
before anything is counted.
Per-second series of the measured phase (`SecondStats`, second 0 starts when the warm-up
ends): requests sent, responses, errors by kind, late, dropped, max scheduling lag, and a
2-significant-digit corrected-latency histogram (per-second percentiles). Generator
self-measurement per worker: thread CPU time (user + system), wall time, utilisation, and
the max scheduling lag (how late the loop woke for a scheduled send).

Workers
-------
`workers=1` runs on the calling thread. `workers>1` starts one process per worker (the
`spawn` start method: safe in a process that has threads), each with `rate / workers` (open)
or its share of the users (closed), of `max_connections` and of `max_requests`, all starting
at one common instant so their seconds line up; `cpus` pins worker i to `cpus[i % len]`.
Results are merged without loss: histograms bucket by bucket, series second by second.
Workers never outlive the caller: daemon processes, killed in a `finally`, and given
PR_SET_PDEATHSIG so that even a SIGKILL of the caller takes them down. `workers=0` picks one
worker per usable core, but no more than the load needs (one per 25,000 requests/s of peak
rate, or per 500 users).
"""

from __future__ import annotations

__all__ = [
    "CONNECTION_ERROR_KINDS",
    "ERROR_KINDS",
    "Aggregate",
    "Counts",
    "Endpoint",
    "EndpointResult",
    "LoadError",
    "LoadInterrupted",
    "LoadResult",
    "LoadSpec",
    "LoadSpecError",
    "ProgressSnapshot",
    "SecondLatency",
    "SecondStats",
    "WorkerStats",
    "auto_workers",
    "build_request",
    "loopback_address",
    "run_load",
    "waiting_percentile",
]

import contextlib
import ipaddress
import math
import multiprocessing
import os
import re
import resource
import signal
import threading
import time
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, Literal

import gonogo.loadgen.histogram as hist
from gonogo.errors import GonogoError
from gonogo.loadgen.expect import KEPT_FAILURES, AssertionFailure, ResponseExpect
from gonogo.loadgen.histogram import HdrHistogram
from gonogo.loadgen.native import ERROR_KINDS, load_engine
from gonogo.loadgen.native import engine as _engine
from gonogo.loadgen.schedule import Schedule, open_stages, share

CONNECTION_ERROR_KINDS: tuple[str, ...] = ("refused", "connect", "reset", "closed", "protocol")

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_USERS_PER_WORKER = 500
_RATE_PER_WORKER = 25_000.0
_READY_TIMEOUT = 60.0  # seconds for worker processes to start
_START_DELAY_NS = 100_000_000  # common start: this long after the last worker is ready
_STOP_GRACE = 3.0  # seconds for stopped workers to hand back what they measured


class LoadSpecError(GonogoError, ValueError):
    """A load spec that cannot run; the message names the field."""


class LoadError(GonogoError, RuntimeError):
    """The run could not be completed (a worker process failed)."""


class LoadInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run. `result` holds what was measured until then."""

    def __init__(self, result: LoadResult) -> None:
        super().__init__("load run interrupted")
        self.result = result


# --------------------------------------------------------------------------------------
# The spec


@dataclass(frozen=True)
class Endpoint:
    """One request of the mix. `weight`: its integer share of the requests."""

    name: str
    method: str = "GET"
    path: str = "/"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    weight: int = 1
    component: str = ""
    expect: ResponseExpect | None = None  # checked on every response (see `expect`)


@dataclass(frozen=True)
class LoadSpec:
    """What to run. Times in seconds, rates in requests per second."""

    host: str
    port: int
    endpoints: Sequence[Endpoint]
    model: Literal["open", "closed"] = "open"
    rate: float | None = None
    stages: Sequence[tuple[float, float]] = ()
    poisson: bool = False
    seed: int = 0
    users: int = 1
    think_time: float = 0.0
    duration: float | None = None
    max_requests: int | None = None
    warmup: float = 0.0
    max_connections: int = 100
    max_queue: int | None = None  # None: as many arrivals as fit in one timeout at peak rate
    timeout: float = 10.0
    late_threshold: float = 0.010
    workers: int = 1  # 0: auto
    cpus: Sequence[int] | None = None
    host_header: str | None = None  # None: host:port

    def validate(self) -> None:
        """Raise `LoadSpecError` if the spec cannot run."""
        loopback_address(self.host)
        if not 1 <= self.port <= 65535:
            raise LoadSpecError(f"port: {self.port} is not between 1 and 65535")
        if not self.endpoints:
            raise LoadSpecError("endpoints: at least one is required")
        names = [e.name for e in self.endpoints]
        if len(set(names)) != len(names):
            raise LoadSpecError("endpoints: names must be unique")
        for e in self.endpoints:
            build_request(e, self._host_header())
            problems = e.expect.problems(e.method) if e.expect is not None else []
            if problems:
                raise LoadSpecError(f"endpoint {e.name!r}: expect: " + "; ".join(problems))
        if self.model not in ("open", "closed"):
            raise LoadSpecError(f"model: {self.model!r} is not 'open' or 'closed'")
        if self.duration is not None and not (self.duration > 0 and math.isfinite(self.duration)):
            raise LoadSpecError("duration: must be a positive number of seconds")
        if self.max_requests is not None and self.max_requests < 1:
            raise LoadSpecError("max_requests: must be at least 1")
        if not (self.warmup >= 0 and math.isfinite(self.warmup)):
            raise LoadSpecError("warmup: must be >= 0 seconds")
        if not (self.timeout > 0 and math.isfinite(self.timeout)):
            raise LoadSpecError("timeout: must be > 0 seconds")
        if not self.late_threshold >= 0:
            raise LoadSpecError("late_threshold: must be >= 0 seconds")
        if self.workers < 0:
            raise LoadSpecError("workers: must be >= 0 (0: automatic)")
        if self.max_queue is not None and self.max_queue < 0:
            raise LoadSpecError("max_queue: must be >= 0")
        if self.model == "closed":
            if self.users < 1:
                raise LoadSpecError("users: the closed model needs at least 1")
            if not self.think_time >= 0:
                raise LoadSpecError("think_time: must be >= 0 seconds")
            if self.duration is None and self.max_requests is None:
                raise LoadSpecError("duration: a duration or max_requests is required")
            return
        if self.max_connections < 1:
            raise LoadSpecError("max_connections: must be at least 1")
        if self.rate is not None and not (self.rate >= 0 and math.isfinite(self.rate)):
            raise LoadSpecError("rate: must be >= 0 requests per second")
        for i, stage in enumerate(self.stages):
            seconds, target = stage
            if not (seconds > 0 and math.isfinite(seconds)) or not (target >= 0 and math.isfinite(target)):
                raise LoadSpecError(f"stages[{i}]: needs a positive duration and a target rate >= 0")
        if not self.stages:
            if not self.rate:
                raise LoadSpecError("rate: the open model needs a rate > 0 (or stages)")
            if self.duration is None and self.max_requests is None:
                raise LoadSpecError("duration: a duration or max_requests is required")
        elif self._peak_rate() <= 0:
            raise LoadSpecError("stages: every target rate is 0")
        if self.warmup > 0 and self._initial_rate() <= 0:
            raise LoadSpecError("warmup: the initial rate is 0, so the warm-up would send nothing")

    def _host_header(self) -> str:
        if self.host_header is not None:
            return self.host_header
        address = loopback_address(self.host)
        shown = self.host if self.host == "localhost" else f"[{address}]" if ":" in address else address
        return f"{shown}:{self.port}"

    def _initial_rate(self) -> float:
        if self.rate is not None:
            return self.rate
        return self.stages[0][1] if self.stages else 0.0

    def _peak_rate(self) -> float:
        rates = [self.rate or 0.0, *(target for _, target in self.stages)]
        return max(rates)


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


def loopback_address(host: str) -> str:
    """The loopback address literal to connect to; refuses anything else."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise LoadSpecError(
            f"host: {host!r} is not an IP address literal (load only goes to this machine: "
            "127.0.0.0/8, ::1 or localhost)"
        ) from None
    if not address.is_loopback:
        raise LoadSpecError(
            f"host: refusing to send load to {host}: only loopback addresses (127.0.0.0/8, ::1) are allowed"
        )
    return str(address)


def build_request(endpoint: Endpoint, host_header: str) -> bytes:
    """The request as sent on the wire: HTTP/1.1, keep-alive, Host, the endpoint's headers
    (which may override Host), and Content-Length when there is a body."""
    where = f"endpoint {endpoint.name!r}"
    if not _TOKEN.match(endpoint.method):
        raise LoadSpecError(f"{where}: method {endpoint.method!r} is not an HTTP token")
    if not endpoint.path.startswith("/") or any(c in endpoint.path for c in " \r\n\t\0"):
        raise LoadSpecError(f"{where}: path {endpoint.path!r} must start with / and have no spaces")
    if not isinstance(endpoint.weight, int) or endpoint.weight < 1:
        raise LoadSpecError(f"{where}: weight must be an integer >= 1")
    lines = [f"{endpoint.method} {endpoint.path} HTTP/1.1"]
    given = {name.lower() for name in endpoint.headers}
    if "host" not in given:
        lines.append(f"Host: {host_header}")
    for name, value in endpoint.headers.items():
        if not _TOKEN.match(name):
            raise LoadSpecError(f"{where}: header name {name!r} is not an HTTP token")
        if any(c in value for c in "\r\n\0"):
            raise LoadSpecError(f"{where}: header {name!r} has a line break in its value")
        if name.lower() in ("content-length", "transfer-encoding"):
            raise LoadSpecError(f"{where}: header {name!r} is set by the engine")
        lines.append(f"{name}: {value}")
    body = endpoint.body
    if body is not None or endpoint.method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body or b'')}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + (body or b"")


def auto_workers(spec: LoadSpec) -> int:
    """Worker processes for `workers=0`: one per usable core, no more than the load needs."""
    cores = len(os.sched_getaffinity(0))
    if spec.model == "closed":
        needed = math.ceil(spec.users / _USERS_PER_WORKER)
    else:
        needed = math.ceil(spec._peak_rate() / _RATE_PER_WORKER)
    return max(1, min(cores, needed))


# --------------------------------------------------------------------------------------
# Results


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
    """Counts and latency histograms (µs) of a set of endpoints."""

    counts: Counts
    warmup: Counts
    corrected: HdrHistogram
    uncorrected: HdrHistogram


@dataclass(frozen=True)
class EndpointResult(Aggregate):
    endpoint: Endpoint
    # the first responses of the measured phase that failed `endpoint.expect` (at most
    # KEPT_FAILURES per worker process, KEPT_FAILURES in all)
    failures: tuple[AssertionFailure, ...] = ()


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
    rps: float  # responses per second since the previous snapshot (both phases)
    p95_us: int | None  # corrected, measured phase so far (2 significant digits)
    p99_us: int | None
    open_connections: int
    queued: int
    # the measured seconds that ended since the previous snapshot, in order: the per-second
    # series an `abort_on_fail` gate with a timeframe (`< 500ms for 10s`) watches
    seconds: tuple[SecondLatency, ...] = ()


# --------------------------------------------------------------------------------------
# Splitting a spec over workers


@dataclass(frozen=True)
class _Part:
    index: int
    kwargs: dict[str, Any]
    cpu: int | None
    fds: int


def _split(spec: LoadSpec) -> list[_Part]:
    workers = spec.workers or auto_workers(spec)
    if spec.model == "closed":
        workers = min(workers, spec.users)
    if spec.max_requests is not None:
        workers = min(workers, spec.max_requests)
    if spec.model == "open":
        workers = min(workers, spec.max_connections)
    host_header = spec._host_header()
    requests = [build_request(e, host_header) for e in spec.endpoints]
    weights = [e.weight for e in spec.endpoints]
    total_weight = sum(weights)
    peak = spec._peak_rate()
    if spec.max_queue is not None:
        max_queue = spec.max_queue
    else:
        max_queue = min(max(1024, math.ceil(peak * spec.timeout) + 1), 10_000_000)

    schedules = _schedule(spec).split(workers) if spec.model == "open" else []

    parts = []
    for i in range(workers):
        kwargs: dict[str, Any] = {
            "host": loopback_address(spec.host),
            "port": spec.port,
            "requests": requests,
            "weights": weights,
            "closed": spec.model == "closed",
            "poisson": spec.poisson,
            "seed": (spec.seed + i) & 0xFFFFFFFFFFFFFFFF,
            "warmup": spec.warmup,
            "timeout": spec.timeout,
            "late_threshold": spec.late_threshold,
            "sequence_offset": i * total_weight // workers,
        }
        if any(e.expect is not None for e in spec.endpoints):
            kwargs["expects"] = [e.expect.engine_form() if e.expect else None for e in spec.endpoints]
        if spec.max_requests is not None:
            kwargs["max_requests"] = share(spec.max_requests, workers, i)
        if spec.model == "closed":
            users = share(spec.users, workers, i)
            kwargs.update(users=users, think_time=spec.think_time, duration=spec.duration or 0.0)
            fds = users
        else:
            connections = share(spec.max_connections, workers, i)
            kwargs.update(schedules[i].engine_form())  # stages, seed, arrival offset: the split's
            kwargs.update(max_connections=connections, max_queue=share(max_queue, workers, i))
            fds = connections
        cpu = spec.cpus[i % len(spec.cpus)] if spec.cpus else None
        parts.append(_Part(index=i, kwargs=kwargs, cpu=cpu, fds=fds))
    return parts


def _schedule(spec: LoadSpec) -> Schedule:
    """The open model's arrivals of the whole load (before its split over workers)."""
    return Schedule(
        tuple(open_stages(spec.rate, spec.stages, spec.duration, spec.warmup)),
        poisson=spec.poisson,
        seed=spec.seed,
        warmup=spec.warmup,
        max_measured=spec.max_requests,
    )


@contextlib.contextmanager
def _fd_limit(needed: int) -> Iterator[None]:
    """Raise the soft open-files limit for the run if the connections need it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed + 64
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        try:
            yield
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    else:
        yield


@contextlib.contextmanager
def _pinned(cpu: int | None) -> Iterator[None]:
    """Pin the calling thread to one CPU for the run (Linux: affinity is per thread)."""
    if cpu is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


# --------------------------------------------------------------------------------------
# Progress


class _Progress:
    """Folds the workers' once-a-second reports into snapshots for the caller."""

    def __init__(self, workers: int, callback: Callable[[ProgressSnapshot], None] | None) -> None:
        self.callback = callback
        self.latest: list[dict[str, Any] | None] = [None] * workers
        self.reports = [0] * workers
        self.emitted = 0
        self.latency = [0] * _engine.counts_len(hist.SERIES_SIGNIFICANT_FIGURES)
        self.latency_total = 0
        self.last_responses = 0
        self.last_elapsed = 0.0
        # seconds some worker has reported and not every one yet: second -> sparse latency of
        # its responses, and of the requests waiting at its end
        self.pending: dict[int, tuple[dict[int, int], dict[int, int]]] = {}
        self.last_second = [-1] * workers  # the last second each worker reported
        self.emitted_second = -1

    def feed(self, worker: int, report: dict[str, Any]) -> None:
        self.latest[worker] = report
        self.reports[worker] += 1
        for record in report["records"]:
            pairs = array("I", record["hist"])
            for j in range(0, len(pairs), 2):
                self.latency[pairs[j]] += pairs[j + 1]
                self.latency_total += pairs[j + 1]
            if self.callback is not None:
                answered, waiting = self.pending.setdefault(record["second"], ({}, {}))
                for source, target in ((pairs, answered), (array("I", record["pending"]), waiting)):
                    for j in range(0, len(source), 2):
                        target[source[j]] = target.get(source[j], 0) + source[j + 1]
            self.last_second[worker] = max(self.last_second[worker], record["second"])
        if self.callback is not None and min(self.reports) > self.emitted:
            self.emitted = min(self.reports)
            self.callback(self._snapshot())

    def _percentile(self, p: float) -> int | None:
        if not self.latency_total:
            return None
        return hist.sparse_percentile([(i, c) for i, c in enumerate(self.latency) if c], p)

    def _complete_seconds(self) -> tuple[SecondLatency, ...]:
        """The seconds every worker has reported since the last call, with their percentiles."""
        complete = min(self.last_second)
        done = []
        for second in sorted(s for s in self.pending if s <= complete):
            answered, waiting = self.pending.pop(second)
            if second > self.emitted_second:
                p95, p99 = (waiting_percentile(answered, waiting, p) for p in (95.0, 99.0))
                done.append(SecondLatency(second, p95, p99, oldest_waiting(waiting)))
        self.emitted_second = max(self.emitted_second, complete)
        return tuple(done)

    def _snapshot(self) -> ProgressSnapshot:
        reports = [r for r in self.latest if r is not None]
        measured = [r["measured"] for r in reports]
        warmup = [r["warmup"] for r in reports]
        elapsed = max(r["elapsed"] for r in reports)
        responses = sum(m["responses"] for m in measured) + sum(w["responses"] for w in warmup)
        span = elapsed - self.last_elapsed
        rps = (responses - self.last_responses) / span if span > 0 else 0.0
        self.last_responses, self.last_elapsed = responses, elapsed
        return ProgressSnapshot(
            elapsed=elapsed,
            warming_up=any(r["in_warmup"] for r in reports),
            requests=sum(m["sent"] for m in measured),
            responses=sum(m["responses"] for m in measured),
            errors=sum(sum(m["errors"]) for m in measured),
            late=sum(m["late"] for m in measured),
            dropped=sum(m["dropped"] for m in measured),
            warmup_requests=sum(w["sent"] for w in warmup),
            rps=rps,
            p95_us=self._percentile(95.0),
            p99_us=self._percentile(99.0),
            open_connections=sum(r["open_connections"] for r in reports),
            queued=sum(r["queued"] for r in reports),
            seconds=self._complete_seconds(),
        )


# --------------------------------------------------------------------------------------
# Running


def run_load(
    spec: LoadSpec,
    *,
    on_progress: Callable[[ProgressSnapshot], None] | None = None,
    stop: threading.Event | None = None,
    program: Mapping[str, object] | None = None,
) -> LoadResult:
    """Run the load described by `spec` and return what it measured (see the module doc).

    With `program` (a journey program's engine form, `gonogo.loadgen.program`), the engines
    run it instead of the endpoints' requests: the endpoints then stand for its steps (one
    each, in order, with the step's `expect`), `max_requests` counts iterations, and each
    worker's virtual users are numbered on from the previous worker's (`user_offset`), and
    worker i of n numbers its iterations i+1, i+1+n, ... (`iteration_offset`, `_stride`)."""
    spec.validate()
    load_engine()  # EngineNotBuilt, saying how to build it, before anything starts
    parts = _split(spec)
    if program is not None:
        offset = 0
        for number, part in enumerate(parts):
            numbering = {"user_offset": offset, "iteration_offset": number, "iteration_stride": len(parts)}
            part.kwargs.update(requests=[], weights=[], program={**program, **numbering})
            offset += part.kwargs["users"] if spec.model == "closed" else part.kwargs["max_connections"]
    progress = _Progress(len(parts), on_progress)
    if len(parts) == 1:
        return _run_inline(spec, parts[0], progress, stop)
    return _run_processes(spec, parts, progress, stop)


def _run_inline(spec: LoadSpec, part: _Part, progress: _Progress, stop: threading.Event | None) -> LoadResult:
    engine = _engine.Engine(**part.kwargs)
    callback = (lambda report: progress.feed(0, report)) if progress.callback is not None else None
    with _fd_limit(part.fds), _pinned(part.cpu):
        try:
            engine.run(progress=callback, should_stop=stop.is_set if stop is not None else None)
        except KeyboardInterrupt as exc:
            raise LoadInterrupted(_build_result(spec, [(part, engine.results())], True)) from exc
    return _build_result(spec, [(part, engine.results())], stop is not None and stop.is_set())


def _worker_main(conn: Connection, part: _Part, parent: int) -> None:
    """A worker process: run one part, report progress and the result through `conn`."""
    # The parent handles Ctrl-C and stops the workers through the pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _engine.set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)
    try:
        if part.cpu is not None:
            os.sched_setaffinity(0, {part.cpu})
        engine = _engine.Engine(**part.kwargs)
        with _fd_limit(part.fds):
            conn.send(("ready", None))
            message, start_ns = conn.recv()
            if message != "go":
                conn.send(("result", None, None))
                return
            error: str | None = None
            try:
                engine.run(
                    progress=lambda report: conn.send(("progress", report)),
                    should_stop=conn.poll,  # any message from the parent means stop
                    start_ns=start_ns,
                )
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
        conn.send(("result", engine.results(), error))
    except (BrokenPipeError, EOFError):  # the parent is gone
        os._exit(1)
    except Exception as exc:
        with contextlib.suppress(OSError):
            conn.send(("error", f"{type(exc).__name__}: {exc}", None))


def _run_processes(
    spec: LoadSpec, parts: list[_Part], progress: _Progress, stop: threading.Event | None
) -> LoadResult:
    ctx = multiprocessing.get_context("spawn")
    processes: list[multiprocessing.process.BaseProcess] = []
    conns: list[Connection] = []
    raws: list[dict[str, Any] | None] = [None] * len(parts)
    stopping = False

    def stop_all() -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            for c in conns:
                with contextlib.suppress(OSError):
                    c.send(("stop", 0))

    def pump(deadline: float | None, until: str) -> None:
        """Handle messages until every worker said `until` ("ready" or "result")."""
        seen = [False] * len(parts)
        while not all(seen):
            if stop is not None and stop.is_set() and until == "result":
                stop_all()
            timeout = 0.1 if deadline is None else max(0.0, min(0.1, deadline - time.monotonic()))
            if deadline is not None and time.monotonic() >= deadline:
                raise LoadError(f"load workers did not {'start' if until == 'ready' else 'finish'} in time")
            waiting = {c: i for i, c in enumerate(conns) if not seen[i]}
            for ready in wait(list(waiting), timeout=timeout):
                assert isinstance(ready, Connection)
                i = waiting[ready]
                try:
                    message = ready.recv()
                except EOFError:
                    code = processes[i].exitcode
                    raise LoadError(f"load worker {i} exited unexpectedly (exit code {code})") from None
                kind = message[0]
                if kind == "error":
                    raise LoadError(f"load worker {i} failed: {message[1]}")
                if kind == "progress":
                    progress.feed(i, message[1])
                elif kind == until:
                    seen[i] = True
                    if kind == "result":
                        if message[2]:
                            raise LoadError(f"load worker {i} failed: {message[2]}")
                        raws[i] = message[1]

    started = False
    try:
        for part in parts:
            parent_end, child_end = ctx.Pipe(duplex=True)
            process = ctx.Process(
                target=_worker_main,
                args=(child_end, part, os.getpid()),
                name=f"gonogo-load-worker-{part.index}",
                daemon=True,
            )
            processes.append(process)
            conns.append(parent_end)
            process.start()
            child_end.close()
        pump(time.monotonic() + _READY_TIMEOUT, "ready")
        start_ns = time.monotonic_ns() + _START_DELAY_NS
        for c in conns:
            c.send(("go", start_ns))
        started = True
        pump(None, "result")
        return _build_result(
            spec, [(p, r) for p, r in zip(parts, raws, strict=True) if r is not None], stopping
        )
    except KeyboardInterrupt as exc:
        if started:  # the workers hand back what they measured
            stop_all()
            with contextlib.suppress(LoadError, OSError):
                pump(time.monotonic() + _STOP_GRACE, "result")
        got = [(p, r) for p, r in zip(parts, raws, strict=True) if r is not None]
        raise LoadInterrupted(_build_result(spec, got, True)) from exc
    finally:
        for worker in processes:
            if worker.is_alive():
                worker.kill()
        for worker in processes:
            worker.join(5)
        for c in conns:
            c.close()


# --------------------------------------------------------------------------------------
# Building the result from the engines' raw data


def _counts(raw: Mapping[str, Any]) -> Counts:
    return Counts(
        requests=raw["sent"],
        responses=raw["responses"],
        late=raw["late"],
        dropped=raw["dropped"],
        behind=raw["behind"],
        unfinished=raw["unfinished"],
        unsent=raw["unsent"],
        errors=dict(zip(ERROR_KINDS, raw["errors"], strict=True)),
        status=dict(sorted(raw["status"].items())),
    )


def _sum_counts(items: Sequence[Counts]) -> Counts:
    total = Counts()
    for c in items:
        total = total + c
    return total


def _aggregate(results: Sequence[Aggregate]) -> Aggregate:
    return Aggregate(
        counts=_sum_counts([r.counts for r in results]),
        warmup=_sum_counts([r.warmup for r in results]),
        corrected=hist.merge(r.corrected for r in results),
        uncorrected=hist.merge(r.uncorrected for r in results),
    )


def _build_result(
    spec: LoadSpec, raws: Sequence[tuple[_Part, Mapping[str, Any]]], stopped_early: bool
) -> LoadResult:
    endpoints = []
    for j, endpoint in enumerate(spec.endpoints):
        per_worker = [raw["endpoints"][j] for _, raw in raws]
        corrected = [hist.from_counts(*e["corrected"]) for e in per_worker]
        uncorrected = [hist.from_counts(*e["uncorrected"]) for e in per_worker]
        expect = endpoint.expect
        failures = (
            tuple(expect.failure(endpoint.name, f) for e in per_worker for f in e["failures"])[:KEPT_FAILURES]
            if expect is not None
            else ()
        )
        endpoints.append(
            EndpointResult(
                endpoint=endpoint,
                counts=_sum_counts([_counts(e["measured"]) for e in per_worker]),
                warmup=_sum_counts([_counts(e["warmup"]) for e in per_worker]),
                corrected=corrected[0] if len(corrected) == 1 else hist.merge(corrected),
                uncorrected=uncorrected[0] if len(uncorrected) == 1 else hist.merge(uncorrected),
                failures=failures,
            )
        )
    components: dict[str, Aggregate] = {}
    for name in dict.fromkeys(e.endpoint.component for e in endpoints):
        components[name] = _aggregate([e for e in endpoints if e.endpoint.component == name])

    seconds: dict[int, dict[str, Any]] = {}
    for _, raw in raws:
        for record in raw["series"]:
            s = seconds.setdefault(
                record["second"],
                {"span": 0.0, "sent": 0, "responses": 0, "late": 0, "dropped": 0, "max_lag_us": 0,
                 "errors": [0] * len(ERROR_KINDS), "latency": {}, "waiting": {}},
            )  # fmt: skip
            s["span"] = max(s["span"], record["span"])
            for key in ("sent", "responses", "late", "dropped"):
                s[key] += record[key]
            s["max_lag_us"] = max(s["max_lag_us"], record["max_lag_us"])
            s["errors"] = [a + b for a, b in zip(s["errors"], record["errors"], strict=True)]
            for source, target in (("hist", s["latency"]), ("pending", s["waiting"])):
                pairs = array("I", record[source])
                for k in range(0, len(pairs), 2):
                    target[pairs[k]] = target.get(pairs[k], 0) + pairs[k + 1]
    series = tuple(
        SecondStats(
            second=second,
            span=s["span"],
            requests=s["sent"],
            responses=s["responses"],
            late=s["late"],
            dropped=s["dropped"],
            errors=dict(zip(ERROR_KINDS, s["errors"], strict=True)),
            max_lag_us=s["max_lag_us"],
            latency=dict(sorted(s["latency"].items())),
            waiting=dict(sorted(s["waiting"].items())),
        )
        for second, s in sorted(seconds.items())
    )
    workers = tuple(
        WorkerStats(
            index=part.index,
            cpu_user_seconds=raw["cpu_user_s"],
            cpu_system_seconds=raw["cpu_sys_s"],
            wall_seconds=raw["wall_s"],
            max_lag_us=raw["max_lag_us"],
            connections_opened=raw["connections_opened"],
            retries=raw["retries"],
            cpu=part.cpu,
        )
        for part, raw in raws
    )
    starts = [raw["start_ns"] for _, raw in raws]
    measure_starts = [raw["measure_start_ns"] for _, raw in raws]
    ends = [raw["end_ns"] for _, raw in raws]
    stopped = stopped_early or any(raw["stopped"] for _, raw in raws)
    return LoadResult(
        spec=spec,
        endpoints=tuple(endpoints),
        overall=_aggregate(endpoints),
        components=components,
        series=series,
        workers=workers,
        measured_seconds=max(0, max(ends, default=0) - min(measure_starts, default=0)) / 1e9,
        wall_seconds=max(0, max(ends, default=0) - min(starts, default=0)) / 1e9,
        stopped_early=stopped,
        raw=tuple(raw for _, raw in raws),
    )
