"""Folding what the engines (one per worker) report into the caller's shapes: their
once-a-second progress reports into `ProgressSnapshot`s (`Progress`), and their raw results
into one `LoadResult` without loss (`build_result`: histograms bucket by bucket, series
second by second, the run's and each endpoint's; a component's series is its endpoints').
"""

from __future__ import annotations

__all__ = ["PartSeconds", "Progress", "build_result"]

from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import gonogo.loadgen.histogram as hist
from gonogo.loadgen.expect import KEPT_FAILURES
from gonogo.loadgen.native import ERROR_KINDS
from gonogo.loadgen.native import engine as _engine
from gonogo.loadgen.results import (
    KEPT_CUTS,
    Aggregate,
    Counts,
    EndpointResult,
    LoadResult,
    PartProgress,
    ProgressSnapshot,
    SecondLatency,
    SecondStats,
    StreamCut,
    StreamStats,
    WorkerStats,
    merge_seconds,
    oldest_waiting,
    waiting_percentile,
)
from gonogo.loadgen.spec import Endpoint, LoadSpec

if TYPE_CHECKING:  # workers.py uses this module
    from gonogo.loadgen.workers import Part


class Progress:
    """Folds the workers' once-a-second reports into snapshots for the caller."""

    def __init__(
        self,
        workers: int,
        callback: Callable[[ProgressSnapshot], None] | None,
        endpoints: Sequence[Endpoint] = (),
    ) -> None:
        self.callback = callback
        # per endpoint (by index) the metric prefixes its seconds count for
        self.prefixes = [(f"endpoint.{e.name}.", f"component.{e.component}.") for e in endpoints]
        self.parts: dict[str, PartSeconds] = {}
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
        self.outcomes: dict[int, tuple[int, int]] = {}  # and the outcomes and errors in it
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
                done = _second(record)
                outcomes, errors = self.outcomes.get(done.second, (0, 0))
                self.outcomes[done.second] = (outcomes + done.outcomes, errors + done.error_total)
                answered, waiting = self.pending.setdefault(record["second"], ({}, {}))
                for source, target in ((pairs, answered), (array("I", record["pending"]), waiting)):
                    for j in range(0, len(source), 2):
                        target[source[j]] = target.get(source[j], 0) + source[j + 1]
            self.last_second[worker] = max(self.last_second[worker], record["second"])
        if self.callback is not None:
            for index, record in report.get("endpoint_records", ()):
                second = _second(record)
                for prefix in self.prefixes[index]:
                    self.parts.setdefault(prefix, PartSeconds()).add(second)
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
                outcomes, errors = self.outcomes.pop(second, (0, 0))
                done.append(SecondLatency(second, p95, p99, oldest_waiting(waiting), outcomes, errors))
        self.emitted_second = max(self.emitted_second, complete)
        return tuple(done)

    def _parts(self) -> dict[str, PartProgress]:
        """Each endpoint's and component's seconds that every worker has reported."""
        complete = min(self.last_second)
        return {prefix: part.progress(complete) for prefix, part in self.parts.items()}

    def _snapshot(self) -> ProgressSnapshot:
        reports = [r for r in self.latest if r is not None]
        measured = [r["measured"] for r in reports]
        warmup = [r["warmup"] for r in reports]
        elapsed = max(r["elapsed"] for r in reports)
        responses = sum(m["responses"] for m in measured) + sum(w["responses"] for w in warmup)
        span = elapsed - self.last_elapsed
        rps = (responses - self.last_responses) / span if span > 0 else 0.0
        self.last_responses, self.last_elapsed = responses, elapsed
        measuring = [r["measured_s"] for r in reports if r.get("measured_s", -1.0) >= 0]
        return ProgressSnapshot(
            elapsed=elapsed,
            warming_up=any(r["in_warmup"] for r in reports),
            requests=sum(m["sent"] for m in measured),
            responses=sum(m["responses"] for m in measured),
            errors=sum(sum(m["errors"]) for m in measured),
            late=sum(m["late"] for m in measured),
            dropped=sum(m["dropped"] for m in measured),
            warmup_requests=sum(w["sent"] for w in warmup),
            warmup_errors=sum(sum(w["errors"]) for w in warmup),
            rps=rps,
            p95_us=self._percentile(95.0),
            p99_us=self._percentile(99.0),
            open_connections=sum(r["open_connections"] for r in reports),
            queued=sum(r["queued"] for r in reports),
            seconds=self._complete_seconds(),
            measured_elapsed=max(measuring) if measuring and len(measuring) == len(reports) else None,
            journeys=_journey_counts(reports),
            parts=self._parts(),
        )


class PartSeconds:
    """An endpoint's or component's seconds as they are reported (by several workers: a
    second may come in parts), summed so far: what its `PartProgress` says."""

    def __init__(self) -> None:
        self.requests = self.outcomes = self.errors = 0
        self.latency: dict[int, int] = {}
        self.pending: dict[int, list[SecondStats]] = {}  # reported by some worker, maybe not all

    def add(self, second: SecondStats) -> None:
        self.requests += second.requests
        self.outcomes += second.outcomes
        self.errors += second.error_total
        for index, count in second.latency.items():
            self.latency[index] = self.latency.get(index, 0) + count
        self.pending.setdefault(second.second, []).append(second)

    def progress(self, complete: int) -> PartProgress:
        ended = [self.pending.pop(s) for s in sorted(self.pending) if s <= complete]
        return PartProgress(
            requests=self.requests,
            outcomes=self.outcomes,
            errors=self.errors,
            latency=dict(self.latency),
            seconds=merge_seconds(ended),
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


def _aggregate(results: Sequence[Aggregate], series: tuple[SecondStats, ...] | None = None) -> Aggregate:
    """The sum of `results`; its series `series`, or theirs merged."""
    return Aggregate(
        counts=_sum_counts([r.counts for r in results]),
        warmup=_sum_counts([r.warmup for r in results]),
        corrected=hist.merge(r.corrected for r in results),
        uncorrected=hist.merge(r.uncorrected for r in results),
        series=merge_seconds(r.series for r in results) if series is None else series,
    )


def _second(record: Mapping[str, Any]) -> SecondStats:
    """An engine's record of one second (the run's or an endpoint's)."""
    return SecondStats(
        second=record["second"],
        span=record["span"],
        requests=record["sent"],
        responses=record["responses"],
        late=record["late"],
        dropped=record["dropped"],
        errors=dict(zip(ERROR_KINDS, record["errors"], strict=True)),
        max_lag_us=record["max_lag_us"],
        latency=_sparse(record["hist"]),
        waiting=_sparse(record["pending"]),
    )


def _sparse(data: bytes) -> dict[int, int]:
    pairs = array("I", data)
    return dict(zip(pairs[0::2], pairs[1::2], strict=True))


def _stream(endpoint: str, raws: Sequence[Mapping[str, Any]]) -> StreamStats:
    """One endpoint's streams, summed over the workers (histograms bucket by bucket; the
    first KEPT_CUTS cut streams, taken worker by worker)."""

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
            cuts=tuple(_cut(endpoint, cut) for cut in raw["cuts"]),
        )

    merged = StreamStats.merged([one(raw) for raw in raws])
    return replace(merged, cuts=merged.cuts[:KEPT_CUTS])


def _cut(endpoint: str, raw: Sequence[Any]) -> StreamCut:
    """An engine's kept cut stream: (error, status, events, bytes, after_us, quiet_us, at_us, tail)."""
    error, status, events, size, after_us, quiet_us, at_us, tail = raw
    return StreamCut(
        endpoint=endpoint,
        error=error,
        status=status,
        events=events,
        bytes=size,
        after_send=after_us / 1e6,
        since_last_event=quiet_us / 1e6 if quiet_us >= 0 else None,
        at=at_us / 1e6,
        tail=tail.decode("utf-8", "replace"),
    )


def build_result(
    spec: LoadSpec, raws: Sequence[tuple[Part, Mapping[str, Any]]], stopped_early: bool
) -> LoadResult:
    # each worker's endpoint records by endpoint: (index, record) pairs in endpoint order
    by_endpoint: list[dict[int, list[SecondStats]]] = []
    for _, raw in raws:
        mine: dict[int, list[SecondStats]] = {}
        for index, record in raw.get("endpoint_series", ()):
            mine.setdefault(index, []).append(_second(record))
        by_endpoint.append(mine)
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
                series=merge_seconds(worker.get(j, ()) for worker in by_endpoint),
                stream=_stream(endpoint.name, [e["stream"] for e in per_worker])
                if endpoint.stream is not None
                else None,
            )
        )
    components: dict[str, Aggregate] = {}
    for name in dict.fromkeys(e.endpoint.component for e in endpoints):
        components[name] = _aggregate([e for e in endpoints if e.endpoint.component == name])
    series = merge_seconds([_second(record) for record in raw["series"]] for _, raw in raws)
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
        overall=_aggregate(endpoints, series),
        components=components,
        series=series,
        workers=workers,
        measured_seconds=max(0, max(ends, default=0) - min(measure_starts, default=0)) / 1e9,
        wall_seconds=max(0, max(ends, default=0) - min(starts, default=0)) / 1e9,
        stopped_early=stopped,
        raw=tuple(raw for _, raw in raws),
    )
