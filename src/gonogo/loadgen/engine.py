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
Streaming responses (an endpoint with `stream`: "sse", "chunks" or "lines"): the engine
divides the body into events as it reads it, in place, and records per endpoint
(`EndpointResult.stream`, a `StreamStats`): time to the first event (corrected and
uncorrected), every gap between events, and per stream that ended (read to its end, no error
status, whether or not it met its `expect`) its events, duration and
events and bytes per second; and the streams *cut* short (closed, reset or timed out after
the head, before the body's end; also counted as errors of that kind), the first of them
kept as examples (`StreamStats.cuts`: how far each got, when, its last bytes).
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
    "KEPT_CUTS",
    "Aggregate",
    "Counts",
    "Endpoint",
    "EndpointResult",
    "LoadError",
    "LoadInterrupted",
    "LoadResult",
    "LoadSpec",
    "LoadSpecError",
    "PartProgress",
    "ProgressSnapshot",
    "SecondLatency",
    "SecondStats",
    "StreamCut",
    "StreamStats",
    "WorkerStats",
    "auto_workers",
    "build_request",
    "loopback_address",
    "oldest_waiting",
    "run_load",
    "waiting_percentile",
]

import math
import threading
from collections.abc import Callable, Mapping
from typing import Any

from gonogo.loadgen.merge import Progress, build_result
from gonogo.loadgen.native import ERROR_KINDS, load_engine
from gonogo.loadgen.native import engine as _engine
from gonogo.loadgen.results import (
    CONNECTION_ERROR_KINDS,
    KEPT_CUTS,
    Aggregate,
    Counts,
    EndpointResult,
    LoadError,
    LoadInterrupted,
    LoadResult,
    PartProgress,
    ProgressSnapshot,
    SecondLatency,
    SecondStats,
    StreamCut,
    StreamStats,
    WorkerStats,
    oldest_waiting,
    waiting_percentile,
)
from gonogo.loadgen.schedule import Schedule, open_stages, share
from gonogo.loadgen.spec import (
    Endpoint,
    LoadSpec,
    LoadSpecError,
    auto_workers,
    build_request,
    loopback_address,
)
from gonogo.loadgen.workers import Part, fd_limit, pinned, run_processes


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
    progress = Progress(len(parts), on_progress, spec.endpoints)
    if len(parts) == 1:
        return _run_inline(spec, parts[0], progress, stop)
    return run_processes(spec, parts, progress, stop)


def _run_inline(spec: LoadSpec, part: Part, progress: Progress, stop: threading.Event | None) -> LoadResult:
    engine = _engine.Engine(**part.kwargs)
    callback = (lambda report: progress.feed(0, report)) if progress.callback is not None else None
    with fd_limit(part.fds), pinned(part.cpu):
        try:
            engine.run(progress=callback, should_stop=stop.is_set if stop is not None else None)
        except KeyboardInterrupt as exc:
            raise LoadInterrupted(build_result(spec, [(part, engine.results())], True)) from exc
    return build_result(spec, [(part, engine.results())], stop is not None and stop.is_set())


def _split(spec: LoadSpec) -> list[Part]:
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
        if any(e.stream is not None for e in spec.endpoints):
            kwargs["streams"] = [e.stream for e in spec.endpoints]
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
        parts.append(Part(index=i, kwargs=kwargs, cpu=cpu, fds=fds))
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
