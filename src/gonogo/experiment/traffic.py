"""Background load for an experiment: the load engine on its own thread, and its figures per window.

The engine keeps a record per second of requests, errors, dropped requests and a latency
histogram; a window's figures (before, during, after the fault) are summed from the seconds
whose middle falls inside it.
"""

from __future__ import annotations

__all__ = [
    "FIRST_FIGURES_WAIT",
    "BackgroundTraffic",
    "WindowFigures",
    "background_load_spec",
    "start_background_traffic",
]

import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from gonogo.checks.base import CheckContext
from gonogo.experiment.settings import BackgroundLoad
from gonogo.loadgen import histogram as hist
from gonogo.loadgen.endpoints import build_endpoint
from gonogo.loadgen.engine import (
    LoadResult,
    LoadSpec,
    LoadSpecError,
    ProgressSnapshot,
    SecondLatency,
    SecondStats,
    oldest_waiting,
    run_load,
)


@dataclass(frozen=True)
class WindowFigures:
    attempted: int  # requests sent + requests dropped (never sent, the generator gave up)
    succeeded: int
    errors: int
    p95: float | None  # seconds, corrected for coordinated omission
    p99: float | None

    @property
    def availability(self) -> float | None:
        return self.succeeded / self.attempted if self.attempted else None

    @property
    def error_rate(self) -> float | None:
        return 1.0 - self.succeeded / self.attempted if self.attempted else None


def background_load_spec(
    load: BackgroundLoad, base_url: str, variables: dict[str, Any], ctx: CheckContext, seconds: float
) -> LoadSpec:
    """The engine's spec for the plan's background `load` on `base_url`, lasting at most `seconds`
    (the experiment stops it sooner); raises LoadSpecError for a target the engine cannot load."""
    target = urlsplit(base_url)
    if target.scheme != "http":
        raise LoadSpecError(f"the load engine speaks plain HTTP/1.1; {base_url} is not http://")
    return LoadSpec(
        host=target.hostname or "",
        port=target.port or 80,
        endpoints=[build_endpoint(request, variables, ctx) for request in load.requests],
        model="open",
        rate=load.rate,
        duration=seconds,
        max_connections=load.max_connections,
        timeout=load.request_timeout,
        workers=1,
        host_header=target.netloc,
    )


FIRST_FIGURES_WAIT = 10.0  # seconds the load may take to report its first second


def start_background_traffic(
    load: BackgroundLoad, base_url: str, variables: dict[str, Any], ctx: CheckContext, seconds: float
) -> BackgroundTraffic | str:
    """The plan's background `load`, started and flowing (its first second reported, so a steady
    state is judged on traffic already there), or why it cannot run. It stops by itself after
    `seconds` if nobody stops it before."""
    try:
        spec = background_load_spec(load, base_url, variables, ctx, seconds)
        spec.validate()
    except LoadSpecError as error:
        return f"the background load cannot run: {error}"
    traffic = BackgroundTraffic(spec)
    traffic.start()
    try:
        deadline = time.monotonic() + FIRST_FIGURES_WAIT
        while traffic.recent(1.0) is None and time.monotonic() < deadline:
            time.sleep(0.05)
    except BaseException:
        traffic.stop()
        raise
    return traffic


_NOTHING_YET = ProgressSnapshot(
    elapsed=0.0,
    warming_up=False,
    requests=0,
    responses=0,
    errors=0,
    late=0,
    dropped=0,
    warmup_requests=0,
    rps=0.0,
    p95_us=None,
    p99_us=None,
    open_connections=0,
    queued=0,
)


class BackgroundTraffic:
    """Runs `spec` (open model, no warm-up, long enough) until `stop()`."""

    def __init__(self, spec: LoadSpec) -> None:
        self._spec = spec
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gonogo-chaos-load", daemon=True)
        self._lock = threading.Lock()
        self._snapshots: list[tuple[float, ProgressSnapshot]] = []
        self._seconds: list[SecondLatency] = []  # as reported, for `answered_after` before the end
        self.started_at = 0.0  # time.monotonic() of the engine's second 0
        self.result: LoadResult | None = None
        self.error: BaseException | None = None

    def start(self) -> None:
        self.started_at = time.monotonic()
        self._thread.start()

    def _run(self) -> None:
        try:
            self.result = run_load(self._spec, on_progress=self._snapshot, stop=self._stop)
        except BaseException as error:  # reported by stop(); the experiment must still roll back
            self.error = error

    def _snapshot(self, snap: ProgressSnapshot) -> None:
        with self._lock:
            self._snapshots.append((time.monotonic(), snap))
            self._seconds.extend(snap.seconds)

    def latest(self) -> ProgressSnapshot | None:
        with self._lock:
            return self._snapshots[-1][1] if self._snapshots else None

    def recent(self, seconds: float) -> dict[str, float] | None:
        """error_rate, availability and rps over about the last `seconds`, from live snapshots."""
        with self._lock:
            if not self._snapshots:
                return None
            # The engine's start is a snapshot of nothing sent yet (at the time its first snapshot
            # counts from), so the first second's figures are there once that second is reported,
            # not a second later: every experiment waited for two snapshots before its steady state.
            first_at, first = self._snapshots[0]
            points = [(first_at - first.elapsed, _NOTHING_YET), *self._snapshots]
            now, last = points[-1]
            first_at, first = next(((at, s) for at, s in points if now - at <= seconds + 0.5), points[-2])
        if first is last:
            first_at, first = points[-2]
        sent = last.requests - first.requests
        attempted = sent + last.dropped - first.dropped
        errors = last.errors - first.errors
        if attempted <= 0:
            return None
        availability = max(0.0, (attempted - errors - (last.dropped - first.dropped)) / attempted)
        return {
            "error_rate": 1.0 - availability,
            "availability": availability,
            "rps": (last.responses - first.responses) / max(now - first_at, 1e-3),
        }

    def stop(self) -> LoadResult | None:
        self._stop.set()
        self._thread.join(timeout=self._spec.timeout + 30)
        if self.error is not None and not isinstance(self.error, KeyboardInterrupt):
            raise RuntimeError(f"the background load failed: {self.error}") from self.error
        return self.result

    def first_error_after(self, at: float) -> float | None:
        """time.monotonic() of the first second at or after `at` with a failed request."""
        if self.result is None:
            return None
        for second in self.result.series:
            start = self.started_at + second.second
            if start + second.span > at and (second.error_total or second.dropped):
                return max(start, at)
        return None

    def answered_after(self, at: float) -> float | None:
        """time.monotonic() from which every answer counted was to a request intended after
        `at`: the end of the first second, ending after `at`, at whose end no request intended
        before `at` was still waiting. Requests sent during a fault and answered after it (a
        dependency's 1 s timeout) belong to the fault, not to what follows. Known live, from
        the seconds reported so far; None until then."""
        if self.result is not None:
            seconds = [(s.second + s.span, oldest_waiting(s.waiting)) for s in self.result.series]
        else:
            with self._lock:
                seconds = [(s.second + 1.0, s.oldest_waiting_us) for s in self._seconds]
        for offset, oldest in seconds:
            end = self.started_at + offset
            if end > at and (oldest is None or oldest < (end - at) * 1e6):
                return end
        return None

    def window(self, start: float, end: float) -> WindowFigures:
        """Figures of the seconds whose middle lies in [start, end) (time.monotonic())."""
        seconds = [s for s in self._series() if start <= self.started_at + s.second + s.span / 2 < end]
        return _figures(seconds)

    def overall(self) -> WindowFigures:
        return _figures(list(self._series()))

    def _series(self) -> tuple[SecondStats, ...]:
        return self.result.series if self.result is not None else ()


def _figures(seconds: list[SecondStats]) -> WindowFigures:
    sent = sum(s.requests for s in seconds)
    dropped = sum(s.dropped for s in seconds)
    errors = sum(s.error_total for s in seconds)
    latency: Counter[int] = Counter()
    for second in seconds:
        latency.update(second.latency)
    p95 = hist.sparse_percentile(latency, 95.0)
    p99 = hist.sparse_percentile(latency, 99.0)
    return WindowFigures(
        attempted=sent + dropped,
        succeeded=max(0, sent - errors),
        errors=errors + dropped,
        p95=p95 / 1e6 if p95 is not None else None,
        p99=p99 / 1e6 if p99 is not None else None,
    )
