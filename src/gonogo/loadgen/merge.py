"""Folding what the engines (one per worker) report into the caller's shapes: their
once-a-second progress reports into `ProgressSnapshot`s (`Progress`), and their raw results
into one `LoadResult` without loss (`build_result`: histograms bucket by bucket, series
second by second).
"""

from __future__ import annotations

__all__ = ["Progress", "build_result"]

from array import array
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import gonogo.loadgen.histogram as hist
from gonogo.loadgen.expect import KEPT_FAILURES
from gonogo.loadgen.native import ERROR_KINDS
from gonogo.loadgen.native import engine as _engine
from gonogo.loadgen.results import (
    Aggregate,
    Counts,
    EndpointResult,
    LoadResult,
    ProgressSnapshot,
    SecondLatency,
    SecondStats,
    StreamStats,
    WorkerStats,
    oldest_waiting,
    waiting_percentile,
)
from gonogo.loadgen.spec import LoadSpec

if TYPE_CHECKING:  # workers.py uses this module
    from gonogo.loadgen.workers import Part


class Progress:
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
            journeys=_journey_counts(reports),
        )


def _journey_counts(reports: Sequence[Mapping[str, Any]]) -> dict[str, int] | None:
    """The program-mode counts of every worker, summed (None: not journeys)."""
    parts = [r["journeys"] for r in reports if "journeys" in r]
    if not parts:
        return None
    return {key: sum(int(part[key]) for part in parts) for key in parts[0]}


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


def _stream(raws: Sequence[Mapping[str, Any]]) -> StreamStats:
    """One endpoint's streams, summed over the workers (histograms bucket by bucket)."""

    def one(raw: Mapping[str, Any]) -> StreamStats:
        return StreamStats(
            streams=raw["streams"],
            cut=raw["cut"],
            events=raw["events"],
            bytes=raw["bytes"],
            first_event=hist.from_counts(*raw["first_event"]),
            first_event_uncorrected=hist.from_counts(*raw["first_event_uncorrected"]),
            between_events=hist.from_counts(*raw["between_events"]),
            events_per_stream=hist.from_counts(*raw["events_per_stream"]),
            duration=hist.from_counts(*raw["duration"]),
            milli_events_per_second=hist.from_counts(*raw["milli_events_per_second"]),
            bytes_per_second=hist.from_counts(*raw["bytes_per_second"]),
        )

    return StreamStats.merged([one(raw) for raw in raws])


def build_result(
    spec: LoadSpec, raws: Sequence[tuple[Part, Mapping[str, Any]]], stopped_early: bool
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
                stream=_stream([e["stream"] for e in per_worker]) if endpoint.stream is not None else None,
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
