"""Journeys under load: the plan's journeys driven at an arrival rate or by virtual users.

API
---
``run_journey_load(settings, base_url, *, files, expand, on_progress=None, stop=None)``
returns a `JourneyLoadResult`; `settings` is a `LoadSettings` with `journeys`. The caller
has already checked that `base_url` is a loopback http:// URL; the journeys `Engine` then
refuses any request to another origin. Ctrl-C (or SIGTERM raised as a KeyboardInterrupt)
raises `JourneyLoadInterrupted`, whose `result` holds what was measured until then and
whose `original` is the interrupt to re-raise, once every request is cancelled.

Two drivers
-----------
The journeys are first compiled into a program for the C engine (`journey_compile`); when
they compile, the C engine runs them (`journey_engine`, on `workers` processes, tens of
thousands of requests per second). When a step uses what the C engine cannot do (multipart,
`raw`, a matcher it cannot judge: the compiler names the journey, step and feature), the
Python driver below runs them instead, and the result says so (`driver`, `fallback_reason`).
Both measure the same way and return the same `JourneyLoadResult`.

Virtual users
-------------
Each virtual user (closed: `users` of them; open: up to `max_connections`, one per
iteration in flight) has its own connection, cookie jar and variables. With `setup`, a
user runs it once before its first iteration (its steps are counted apart, as warm-up, in
`once_steps`); its variables and cookies are where each of its iterations starts. A failed
setup is counted in `IterationCounts.setup_failures`; closed: it is not an iteration, the
user tries again after its think time (at least 10 ms); open: it is also the arrival's
iteration, failed at `setup`, and the next arrival that takes the user tries again. A user's first iteration
is timed from the end of its setup. With `teardown`, each user that was set up runs it once
at the end (not after a stop or `max_duration`), bounded by `request_timeout`: all together,
once the last iteration has ended (after the drain, not in it: `teardown_seconds`).

Traffic (the Python driver)
---------------------------
One asyncio loop in the calling thread; each virtual user has an `httpx.AsyncClient` of one
connection (one shared pool would scan every connection for every request: quadratic in
connections). Each *iteration* runs one journey's steps in order through the journeys
engine (`Engine.run_step`): its own variables (`{iteration}` counts per journey, a fresh
`{uuid}`), its own cookie jar (from the user's setup), extraction feeding later steps,
polls, uploads; it stops at its first failing step. Journeys take turns by smooth weighted
round-robin over `journey_weights` (default 1 each), so the mix is exact over any run, not
random.

*open*: iterations arrive on the schedule the C engine would run (`schedule`: the same
intended times, to the nanosecond): a constant `rate`, or linear `stages` (ramps from 0),
evenly spaced or Poisson (seeded by `seed`), with a warm-up at the initial rate first.
Each arrival has an *intended start time*. At most `max_connections` iterations are in
flight; an arrival that finds them all busy waits in a FIFO queue. It is *late* if it
starts more than `late_threshold` after its intended time, *dropped* if it waited longer
than `request_timeout` (it never starts), *unsent* if the run stopped while it waited.
started + dropped + unsent == scheduled. It is also *behind* if the loop itself reached it
more than `late_threshold` after its time (the generator fell behind), as opposed to
waiting for a slot that slow iterations still held.
*closed*: `users` virtual users, each running iterations back to back with `think_time`
between the end of one and the intended start of the next (`max_connections` does not
apply).

Bounds: the measured phase ends after `duration` (no new iteration starts later; those in
flight finish, in `drain_seconds`, counted but outside `measured_seconds`), or after
`max_requests` measured *iterations*; `max_duration` (warm-up
included) is a hard stop that cancels whatever is in flight. `stop` (a threading.Event,
set by the check's abort gates) ends the run within about 50 ms the same way.

Measurements
------------
A step execution is one *request* in every count (a `poll` step is one request whose
latency runs until its condition held, as in the journeys kind). Its outcome is judged by
the step's `expect`: a 404 the step expects is a success. Failures are counted by kind:
`http_4xx` / `http_5xx` (a response with that status that failed the step), `connect`
(the exchange failed: refused, reset, closed early), `timeout`, `assertion` (a response
that failed `expect`, `poll` or `extract`, or a request that could not be built).

Latency, in µs, in HdrHistograms (`histogram.new_histogram()`), per step, per component
and overall (over all step requests), of every step execution that got a response:

* the *first* step of an iteration twice: *corrected*, from the iteration's intended start
  to its response (what a user arriving on schedule waited: queueing for a free slot and
  generator lag included, i.e. corrected for coordinated omission), and *uncorrected*, from
  its actual send;
* every later step from its own send, in both histograms. Its send time is not scheduled
  by the generator: a user sends it as soon as the previous response is in, so there is no
  intended time it could miss; a server stall before it is already in the earlier step's
  latency and in the iteration's corrected duration. (The loop lag that could delay it is
  measured apart, below.)

Per journey: iterations completed, passed and failed (by step), and the whole-iteration
duration of the successful ones, corrected (from the intended start) and uncorrected (from
the actual start). Late, dropped and unsent iterations are counted on the journey's first
step (the request that was late or never sent). Warm-up iterations (those intended before
the warm-up ended) are counted apart and are in no histogram and no per-second record.

Per second of the measured phase (`SecondStats`): step requests sent, responses and errors
(by completion time), late and dropped iterations, corrected latency (2 significant
digits). The generator measures itself: CPU time of the loop's thread over wall time
(`time.thread_time`: the loop is one thread, so this is the share of the one core it can
use; Python + httpx saturates a core at a few thousand requests per second), and the loop
lag: how late a 20 ms ticker and the arrival scheduler woke. Before the clock starts, the
driver loads httpx's lazily imported async backend and freezes the process's existing
objects out of the garbage collector's sight (`gc.freeze`, undone afterwards): without
that, a first request or a full collection stalls the loop for tens of milliseconds, and
arrivals count as late for reasons that are the generator's, not the server's.
"""

from __future__ import annotations

__all__ = [
    "ASSERTION",
    "IterationCounts",
    "JourneyLoadInterrupted",
    "JourneyLoadResult",
    "JourneyTotals",
    "journey_schedule",
    "run_journey_load",
    "sum_counts",
]

import dataclasses
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from gonogo.loadgen.journey_driver import PythonDriver, journey_schedule
from gonogo.loadgen.journey_results import (
    ASSERTION,
    IterationCounts,
    JourneyLoadInterrupted,
    JourneyLoadResult,
    JourneyTotals,
    Progress,
    sum_counts,
)
from gonogo.loadgen.native import load_engine
from gonogo.loadgen.settings import LoadSettings


def run_journey_load(
    settings: LoadSettings,
    base_url: str,
    *,
    files: Mapping[str, Path],
    expand: Callable[[str], str],
    on_progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> JourneyLoadResult:
    """Run the journeys of `settings` under load against `base_url`: on the C engine when they
    compile (`journey_compile`), else on the Python driver (see the module doc), the result
    saying which (`driver`) and why (`fallback_reason`)."""
    load_engine()  # EngineNotBuilt, saying how to build it: both drivers need the extension
    from gonogo.loadgen.journey_compile import Fallback, compile_journeys  # they import this module
    from gonogo.loadgen.journey_engine import run_compiled

    compiled = compile_journeys(settings, base_url, files=files, expand=expand)
    if not isinstance(compiled, Fallback):
        return run_compiled(settings, compiled, base_url, on_progress=on_progress, stop=stop)
    driver = PythonDriver(settings, base_url, files=files, expand=expand, on_progress=on_progress, stop=stop)
    try:
        result = driver.run()
    except JourneyLoadInterrupted as interrupted:
        interrupted.result = dataclasses.replace(interrupted.result, fallback_reason=compiled.reason)
        raise
    return dataclasses.replace(result, fallback_reason=compiled.reason)
