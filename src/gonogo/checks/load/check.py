"""The `load` check kind: open- or closed-model HTTP load on the plan's own system.

Two kinds of traffic: `requests` (a weighted mix of plain requests, sent by the C engine,
`engine.run_load`) or `journeys` (multi-step iterations of the plan's journeys, driven by
`journey_load.run_journey_load`). Both end up in the same shapes (`Aggregate`, `Counts`,
`SecondStats`), and one recorder turns them into the same metric names, so the same gates
work on either; journeys add their `journey.<name>.*` figures. Driving the traffic
(setup, progress, abort gates) is `gonogo.loadgen.drive`'s, shared with the soak kind.

Latency is measured from each request's intended send time (corrected for coordinated
omission) and from its actual send time, losslessly in HdrHistograms kept as evidence.
A run during which the generator itself was the bottleneck (its CPU near its cores'
limit, or too many requests or iterations sent late) is *invalid*: its latency figures
are not the server's, so none is recorded and the check ends in error. Only loopback
targets are loaded. Metrics: docs/metrics.md.
"""

from __future__ import annotations

__all__ = ["LoadCheck", "build_endpoint", "run_setup"]

import json
from collections.abc import Mapping
from dataclasses import asdict
from datetime import timedelta

from gonogo.checks.base import ArtifactRef, CheckContext, CheckKind, CheckOutcome, MetricPatterns, PlanNames
from gonogo.journey.once import run_setup
from gonogo.loadgen import histogram as hist
from gonogo.loadgen.drive import Measured, asserted_prefixes, drive_load, per_second
from gonogo.loadgen.endpoints import build_endpoint
from gonogo.loadgen.engine import KEPT_CUTS, Aggregate, Counts, EndpointResult, StreamStats
from gonogo.loadgen.expect import KEPT_FAILURES
from gonogo.loadgen.journey_compile import driver_line
from gonogo.loadgen.journey_load import ASSERTION, JourneyLoadResult, sum_counts
from gonogo.loadgen.settings import LoadSettings
from gonogo.units import Unit, format_value

_PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p99_9": 99.9}


class LoadCheck(CheckKind[LoadSettings]):
    kind = "load"
    series_metrics = frozenset(
        f"{prefix}{figure}"
        for prefix in ("", "endpoint.*.", "component.*.")
        for figure in ("rps", "error_rate", "latency.p95", "latency.p99")
    )
    # what `LoadWatch` follows while the load runs, for `abort_on_fail`
    live_metrics = frozenset(
        f"{prefix}{figure}"
        for prefix in ("", "endpoint.*.", "component.*.")
        for figure in ("error_rate", "latency.p95", "latency.p99")
    )
    Settings = LoadSettings

    @classmethod
    def metric_names(cls, settings: LoadSettings, plan: PlanNames) -> MetricPatterns:
        return _metric_names(settings)

    @classmethod
    def describe(cls, settings: LoadSettings) -> str | None:
        return driver_line(settings)  # journeys: the C engine, or the Python driver and why

    def run(self, settings: LoadSettings, ctx: CheckContext) -> CheckOutcome:
        return drive_load(settings, ctx, lambda measured: _Recorder(ctx, settings, measured).record())


_COUNTS = (
    "requests",
    "rps",
    "error_rate",
    "errors",
    "errors.4xx",
    "errors.5xx",
    "errors.connection",
    "errors.timeout",
    "late",
    "dropped",
    "unfinished",
)
_LATENCY = [
    f"{name}.{suffix}"
    for name in ("latency", "latency_uncorrected")
    for suffix in (*_PERCENTILES, "max", "mean")
]
# A journey's iterations: `_spread` without `with_extra`.
_DURATION = [
    f"{name}.{suffix}"
    for name in ("duration", "duration_uncorrected")
    for suffix in ("p50", "p95", "p99", "max")
]
_WARMUP_ERRORS = ("4xx", "5xx", "connection", "timeout")  # and `assertion`, as the measured phase's
_ONCE = ("requests", "errors")  # of the users' `setup` and `teardown` steps, with journeys
_GENERATOR = ("generator.cpu", "generator.max_lag", "generator.late", "generator.valid")
# Streaming responses (requests with `stream`): counts, then spreads of times (seconds) and of
# per-stream rates, whose slow end (p5, min) is what a slow stream shows.
_STREAM_COUNTS = ("streams", "cut", "cut_rate", "events", "bytes")
_STREAM_TIMES = ("first_event", "first_event_uncorrected", "between_events", "duration")
_STREAM_TIME_SUFFIXES = ("p50", "p95", "p99", "max")
_STREAM_RATES = ("events_per_second", "bytes_per_second")
_STREAM_RATE_SUFFIXES = ("min", "p5", "p50")
_STREAM = [
    *(f"stream.{name}" for name in _STREAM_COUNTS),
    *(f"stream.{name}.{suffix}" for name in _STREAM_TIMES for suffix in _STREAM_TIME_SUFFIXES),
    *(f"stream.{name}.{suffix}" for name in _STREAM_RATES for suffix in _STREAM_RATE_SUFFIXES),
    *(f"stream.events_per_stream.{suffix}" for suffix in ("min", "p50", "max")),
]


# What `load-journey-failures.json`'s `failures` and `warmup_failures` hold, by driver: the C
# engine knows neither a failed request's iteration nor its filled-in URL, and counts the
# requests without a response without keeping them (docs/metrics.md)
_KEPT_ARE = {
    "python": "examples: each record is one failed request, its iteration, its URL as sent",
    "c": (
        "per step: the step's first failing responses (iteration 0: unknown; url as written, "
        "placeholders unfilled), then one summary per step and kind of the requests without a "
        "response (attempts: how many; message: what happened); warm-up failures are summaries"
    ),
}


def _metric_names(settings: LoadSettings) -> list[str]:
    """Every metric `_Recorder` can record for these settings (docs/metrics.md)."""
    journeys = settings.journeys or {}
    steps = [(name, step.name) for name, journey in journeys.items() for step in journey.steps]
    requests = settings.requests or []
    figures = [*_COUNTS, *_LATENCY]
    if journeys:
        endpoints = [f"{journey}.{step}" for journey, step in steps]
        components = {settings.component_of(journey, step) for journey, step in steps}
    else:
        endpoints = [request.name for request in requests]
        components = {request.component for request in requests}
    prefixes = ["", *(f"endpoint.{name}." for name in endpoints), *(f"component.{c}." for c in components)]
    names = [prefix + figure for prefix in prefixes for figure in figures]
    names += [prefix + "errors.assertion" for prefix in asserted_prefixes(settings)]
    streaming = [request for request in requests if request.stream is not None] if not journeys else []
    if streaming:
        stream_prefixes = [
            "",
            *(f"endpoint.{request.name}." for request in streaming),
            *(f"component.{c}." for c in dict.fromkeys(request.component for request in streaming)),
        ]
        names += [prefix + figure for prefix in stream_prefixes for figure in _STREAM]
    names += ["warmup.requests", "warmup.errors", *(f"warmup.errors.{kind}" for kind in _WARMUP_ERRORS)]
    if "" in asserted_prefixes(settings):
        names.append("warmup.errors.assertion")
    names += _GENERATOR
    if journeys:
        names += ["iterations", "success_rate", "generator.fast_path"]
        once = {"setup": settings.setup, "teardown": settings.teardown}
        names += [f"{part}.{figure}" for part, steps in once.items() if steps for figure in _ONCE]
        if settings.setup is not None and settings.model == "closed":  # the measured phase waits for them
            names += ["setup.seconds", "setup.given_up"]
        for name in journeys:
            names += [f"journey.{name}.{figure}" for figure in ("iterations", "failures", "success_rate")]
            names += [f"journey.{name}.{figure}" for figure in _DURATION]
    return names


def _streams(measured: Measured) -> dict[str, StreamStats]:
    """The streaming requests' figures by metric prefix: each endpoint's, each component's
    and all of them (only where some request streams)."""
    streams = [
        (a.endpoint, a.stream) for _, a in measured.endpoints if isinstance(a, EndpointResult) and a.stream
    ]
    if not streams:
        return {}
    found = {f"endpoint.{endpoint.name}.": stream for endpoint, stream in streams}
    for component in dict.fromkeys(endpoint.component for endpoint, _ in streams):
        found[f"component.{component}."] = StreamStats.merged(
            [stream for endpoint, stream in streams if endpoint.component == component]
        )
    found[""] = StreamStats.merged([stream for _, stream in streams])
    return found


def _latency_summary(overall: Aggregate) -> str:
    """The p95 latency for the outcome: of the complete responses, the only requests the
    latency histograms hold; saying so, and how many others there were, when some request
    ended without a response (a timeout, a connection error, a stream cut short)."""
    p95 = hist.percentiles(overall.corrected, [95.0]).get(95.0)
    if p95 is None:
        return ""
    said = f", latency p95 {format_value(p95 / 1e6, 'seconds')}"
    counts = overall.counts
    without = counts.requests - counts.responses - counts.unfinished
    if without > 0:
        said += (
            f" of the {counts.responses} complete responses; {without} request(s) ended without one"
            " (in error_rate, not in latency)"
        )
    return said


class _Recorder:
    """Turns what a load measured into metrics, per-second series and evidence files."""

    def __init__(self, ctx: CheckContext, settings: LoadSettings, measured: Measured) -> None:
        self.ctx = ctx
        self.settings = settings
        self.m = measured
        self.measured_from = measured.measured_from
        self.window = (self.measured_from, self.measured_from + timedelta(seconds=measured.measured_seconds))
        self.source = measured.source
        self.streams = _streams(measured)

    def record(self) -> CheckOutcome:
        m = self.m
        journeys = m.journeys
        histograms = self._store_histograms(journeys)
        self.failures = self._store_assertion_failures()
        cuts = self._store_stream_cuts()
        if m.measured_nothing and journeys is not None:
            # zero requests, errors or unfinished of a phase that never began are no measurement:
            # only what did run (the setups, the warm-up) is recorded, and its gates not measured
            said = self._once_steps(journeys) + self._warmup(m.overall.warmup)
            self._store_failures(journeys)
            details = [f"setup: {f.summary()}" for f in journeys.warmup_failures[:5]]
            return CheckOutcome("error", f"nothing measured: {m.measured_nothing}{said}", details)
        invalid = self._generator()
        self._counts("", m.overall.counts, m.measured_seconds)
        summary_of_warmup = self._warmup(m.overall.warmup)
        if not invalid:
            self._latency("", m.overall, histograms)
        for name, aggregate in m.endpoints:
            prefix = f"endpoint.{name}."
            self._counts(prefix, aggregate.counts, m.measured_seconds)
            if not invalid:
                self._latency(prefix, aggregate, histograms)
        for component, aggregate in m.components.items():
            prefix = f"component.{component}."
            self._counts(prefix, aggregate.counts, m.measured_seconds)
            if not invalid:
                self._latency(prefix, aggregate, histograms)
        for prefix, stream in self.streams.items():
            self._stream(prefix, stream, histograms, cuts, with_times=not invalid)
        self._series(with_latency=not invalid)
        total = m.overall.counts
        rate = total.responses / m.measured_seconds if m.measured_seconds > 0 else 0.0
        # the rate is of responses (a request counts once answered): said so, so that "300
        # requests in 15.9s" next to a lower rate does not read as a wrong division
        summary = (
            f"{total.requests} requests, {total.responses} responses in {m.measured_seconds:.1f}s "
            f"({rate:.0f} responses/s), error rate {format_value(total.error_rate, 'ratio')}, "
            f"{total.late} late, {total.dropped} dropped"
        )
        if total.unfinished:  # otherwise they would read as lost: sent, with no outcome
            summary += f", {total.unfinished} unfinished (in flight when the run was stopped, no outcome)"
        if not invalid:
            # next to the requests it is of, before the setup, teardown and warm-up parts: at the
            # end it would read as theirs
            summary += _latency_summary(m.overall)
            streams = self.streams.get("")
            if streams is not None:
                first = hist.percentiles(streams.first_event, [95.0]).get(95.0)
                if first is not None:
                    summary += f", first event p95 {format_value(first / 1e6, 'seconds')}"
                summary += f", {streams.cut} stream(s) cut short"
                if streams.cut:
                    summary += " (the first ones in load-stream-cuts.json)"
        if journeys is not None:
            summary = self._journeys(journeys, histograms, with_duration=not invalid) + ", " + summary
            summary += self._once_steps(journeys)
        failed = total.errors[ASSERTION]
        if m.failures is not None and failed:
            summary += (
                f", {failed} response(s) failed their expect (the first ones in load-assertion-failures.json)"
            )
        summary += summary_of_warmup
        if m.note:
            summary += f"; {m.note}"
        if invalid:
            return CheckOutcome(
                "error",
                f"invalid run: {invalid}; {summary}",
                [invalid, *(f.summary() for f in (m.failures or [])[:5])],
            )
        details = []
        if journeys is not None:
            details += [f.summary() for f in journeys.failures[:5]]
            details += [f"warm-up: {f.summary()}" for f in journeys.warmup_failures[:5]]
        details += self._first_cuts()  # before the expect's failures: only 5 details are shown
        details += [f.summary() for f in (m.failures or [])[:5]]
        return CheckOutcome("completed", summary, details)

    def _metric(
        self,
        name: str,
        value: float | None,
        unit: Unit,
        dimension: str,
        artifact: ArtifactRef | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        if value is None:
            return  # not measured: never recorded as zero
        self.ctx.record_metric(
            name,
            value,
            unit,
            dimension=dimension,
            source=self.source,
            artifact=artifact,
            window=self.window,
            labels=labels,
        )

    def _counts(self, prefix: str, counts: Counts, seconds: float) -> None:
        self._metric(f"{prefix}requests", counts.requests, "count", "performance")
        self._metric(
            f"{prefix}rps", counts.responses / seconds if seconds > 0 else None, "per_second", "performance"
        )
        self._metric(f"{prefix}error_rate", counts.error_rate, "ratio", "reliability")
        self._metric(f"{prefix}errors", counts.error_total, "count", "reliability")
        self._metric(f"{prefix}errors.4xx", counts.errors["http_4xx"], "count", "reliability")
        self._metric(f"{prefix}errors.5xx", counts.errors["http_5xx"], "count", "reliability")
        self._metric(f"{prefix}errors.connection", counts.connection_errors, "count", "reliability")
        self._metric(f"{prefix}errors.timeout", counts.timeouts, "count", "reliability")
        if prefix in self.m.asserted:  # responses that failed their request's (or step's) `expect`
            self._metric(
                f"{prefix}errors.assertion", counts.errors[ASSERTION], "count", "reliability", self.failures
            )
        self._metric(f"{prefix}late", counts.late, "count", "performance")
        self._metric(f"{prefix}dropped", counts.dropped, "count", "performance")
        # sent, and still without an outcome when a stop cut the run: requests = outcomes + these
        self._metric(f"{prefix}unfinished", counts.unfinished, "count", "performance")

    def _stream(
        self,
        prefix: str,
        stream: StreamStats,
        artifact: ArtifactRef,
        cuts: ArtifactRef | None,
        *,
        with_times: bool,
    ) -> None:
        """A streaming request's (or a sum's) figures; the times only `with_times` (a valid run)."""
        name = f"{prefix}stream."
        self._metric(f"{name}streams", stream.streams, "count", "performance")
        self._metric(f"{name}cut", stream.cut, "count", "reliability", cuts)
        self._metric(f"{name}cut_rate", stream.cut_rate, "ratio", "reliability", cuts)
        self._metric(f"{name}events", stream.events, "count", "performance")
        self._metric(f"{name}bytes", stream.bytes, "bytes", "performance")
        counts = stream.events_per_stream
        if counts.get_total_count():
            values = hist.percentiles(counts, [50.0])
            self._metric(
                f"{name}events_per_stream.min", counts.get_min_value(), "count", "performance", artifact
            )
            self._metric(f"{name}events_per_stream.p50", values[50.0], "count", "performance", artifact)
            self._metric(
                f"{name}events_per_stream.max", counts.get_max_value(), "count", "performance", artifact
            )
        if not with_times:
            return
        for figure in _STREAM_TIMES:
            self._spread(f"{name}{figure}", getattr(stream, figure), artifact, with_extra=False)
        for figure, histogram, scale in (
            ("events_per_second", stream.milli_events_per_second, 1000.0),
            ("bytes_per_second", stream.bytes_per_second, 1.0),
        ):
            if not histogram.get_total_count():
                continue
            values = hist.percentiles(histogram, [5.0, 50.0])
            slow_end = {"min": histogram.get_min_value(), "p5": values[5.0], "p50": values[50.0]}
            for suffix in _STREAM_RATE_SUFFIXES:
                value = slow_end[suffix] / scale
                self._metric(f"{name}{figure}.{suffix}", value, "per_second", "performance", artifact)

    def _latency(self, prefix: str, aggregate: Aggregate, artifact: ArtifactRef) -> None:
        self._spread(f"{prefix}latency", aggregate.corrected, artifact, with_extra=True)
        self._spread(f"{prefix}latency_uncorrected", aggregate.uncorrected, artifact, with_extra=True)

    def _spread(
        self,
        name: str,
        histogram: hist.HdrHistogram,
        artifact: ArtifactRef,
        *,
        with_extra: bool,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        """Percentiles, max (and p90, p99.9 and mean `with_extra`) of a histogram in µs."""
        if not histogram.get_total_count():
            return
        wanted = _PERCENTILES if with_extra else {k: _PERCENTILES[k] for k in ("p50", "p95", "p99")}
        values = hist.percentiles(histogram, list(wanted.values()))
        for suffix, percentile in wanted.items():
            self._metric(
                f"{name}.{suffix}", values[percentile] / 1e6, "seconds", "performance", artifact, labels
            )
        self._metric(
            f"{name}.max", histogram.get_max_value() / 1e6, "seconds", "performance", artifact, labels
        )
        if with_extra:
            self._metric(
                f"{name}.mean", histogram.get_mean_value() / 1e6, "seconds", "performance", artifact, labels
            )

    def _journeys(self, result: JourneyLoadResult, histograms: ArtifactRef, *, with_duration: bool) -> str:
        """Record the iterations' figures; a summary of them."""
        self.ctx.record_metric(
            "generator.fast_path",
            1.0 if result.driver == "c" else 0.0,
            "number",
            dimension="performance",
            source=(
                "the journeys ran on the C engine"
                if result.driver == "c"
                else f"the journeys ran on the Python driver: {result.fallback_reason}"
            ),
            window=self.window,
        )
        failures = self._store_failures(result)
        completed = sum(j.iterations for j in result.journeys)
        passed = sum(j.passed for j in result.journeys)
        self._metric("iterations", completed, "count", "performance", failures)
        if completed:
            self._metric("success_rate", passed / completed, "ratio", "reliability", failures)
        for journey in result.journeys:
            prefix, labels = f"journey.{journey.name}.", {"journey": journey.name}
            self._metric(f"{prefix}iterations", journey.iterations, "count", "performance", failures, labels)
            self._metric(
                f"{prefix}failures",
                journey.iterations - journey.passed,
                "count",
                "reliability",
                failures,
                labels,
            )
            self._metric(
                f"{prefix}success_rate", journey.success_rate, "ratio", "reliability", failures, labels
            )
            if with_duration:
                self._spread(
                    f"{prefix}duration", journey.duration, histograms, with_extra=False, labels=labels
                )
                self._spread(
                    f"{prefix}duration_uncorrected",
                    journey.duration_uncorrected,
                    histograms,
                    with_extra=False,
                    labels=labels,
                )
        seconds = self.m.measured_seconds
        per_second = f" ({completed / seconds:.1f}/s)" if seconds > 0 else ""
        success = f", success rate {format_value(passed / completed, 'ratio')}" if completed else ""
        unfinished = result.iterations.unfinished
        cut = f", {unfinished} more cut short by the stop" if unfinished else ""
        return f"{completed} iterations{per_second} of {len(result.journeys)} journey(s){success}{cut}"

    def _warmup(self, counts: Counts) -> str:
        """Record the warm-up's requests and failures by kind (in no other figure); what they
        were, for the summary, if any failed."""
        self._metric("warmup.requests", counts.requests, "count", "performance")
        kinds = {
            "4xx": counts.errors["http_4xx"],
            "5xx": counts.errors["http_5xx"],
            "connection": counts.connection_errors,
            "timeout": counts.timeouts,
        }
        if "" in self.m.asserted:
            kinds["assertion"] = counts.errors[ASSERTION]
        self._metric("warmup.errors", counts.error_total, "count", "reliability")
        for kind, number in kinds.items():
            self._metric(f"warmup.errors.{kind}", number, "count", "reliability")
        if not counts.error_total:
            return ""
        failed = ", ".join(f"{number} {kind}" for kind, number in kinds.items() if number)
        kept = " (examples in load-journey-failures.json)" if self.m.journeys is not None else ""
        return f"; warm-up: {counts.requests} requests, {counts.error_total} failed ({failed}){kept}"

    def _once_steps(self, result: JourneyLoadResult) -> str:
        """Record the requests of the users' setups and teardowns (in no other count); what
        they were, for the summary."""
        said = ""
        set_up = False
        for part, steps in (("setup", self.settings.setup), ("teardown", self.settings.teardown)):
            if steps is None:
                continue
            counts = sum_counts([s.warmup for s in result.once_steps if s.endpoint.component == part])
            self._metric(f"{part}.requests", counts.requests, "count", "performance")
            self._metric(f"{part}.errors", counts.error_total, "count", "reliability")
            said += f"; {part}: {counts.requests} requests, {counts.error_total} failed"
            if counts.unfinished:
                said += f", {counts.unfinished} in flight when the run was cut"
            if part == "setup":
                set_up = counts.responses > counts.error_total  # a setup request succeeded
            elif not counts.requests and set_up:
                said += " (the run ended before the users' teardowns: what their setups created remains)"
        if self.settings.setup is not None and self.settings.model == "closed":
            # how long the measured phase waited for every user's setup (None: it never began)
            self._metric("setup.seconds", result.setup_seconds, "seconds", "performance")
            self._metric("setup.given_up", result.setups_given_up, "count", "reliability")
        return said

    def _store_failures(self, result: JourneyLoadResult) -> ArtifactRef:
        document = {
            "failures_total": result.failure_count,
            "failures_by_part": result.failures_by_part,  # they add up to failures_total
            "kept": len(result.failures),
            "kept_are": _KEPT_ARE[result.driver],
            "failed_at": {j.name: dict(j.failed_at) for j in result.journeys},
            "iterations": {
                **asdict(result.iterations),
                "unfinished": result.iterations.unfinished,
                "warmup_unfinished": result.iterations.warmup_unfinished,
            },
            "warmup_failures_by_step": {s.endpoint.name: s.warmup.error_total for s in result.steps},
            "warmup_failures": [asdict(failure) for failure in result.warmup_failures],
            "drain_seconds": result.drain_seconds,
            "teardown_seconds": result.teardown_seconds,  # after the drain, never inside it
            "setup_seconds": result.setup_seconds,  # closed model: until every user's setup ended
            "setups_given_up": result.setups_given_up,
            "failures": [asdict(failure) for failure in result.failures],
        }
        return self.ctx.store_artifact(
            json.dumps(document, indent=1, ensure_ascii=False).encode(),
            name="load-journey-failures.json",
            media_type="application/json",
        )

    def _store_assertion_failures(self) -> ArtifactRef | None:
        """Requests with an `expect`: the first failing responses of each, as evidence."""
        failures = self.m.failures
        if failures is None:
            return None
        document = {
            "failures_total": {name: a.counts.errors[ASSERTION] for name, a in self.m.endpoints},
            "http_errors_total": {
                name: a.counts.errors["http_4xx"] + a.counts.errors["http_5xx"]
                for name, a in self.m.endpoints
            },
            "kept": len(failures),
            "kept_per_endpoint": KEPT_FAILURES,
            "failures": [asdict(failure) for failure in failures],
        }
        return self.ctx.store_artifact(
            json.dumps(document, indent=1, ensure_ascii=False).encode(),
            name="load-assertion-failures.json",
            media_type="application/json",
        )

    def _store_stream_cuts(self) -> ArtifactRef | None:
        """Requests with `stream`: the first streams of each that were cut short, as evidence."""
        endpoints = [
            (prefix, stream) for prefix, stream in self.streams.items() if prefix.startswith("endpoint.")
        ]
        if not endpoints:
            return None
        kept = [cut for _, stream in endpoints for cut in stream.cuts]
        document = {
            "cut_total": {prefix.removeprefix("endpoint.").rstrip("."): s.cut for prefix, s in endpoints},
            "kept": len(kept),
            "kept_per_endpoint": KEPT_CUTS,
            "cuts": [asdict(cut) for cut in kept],
        }
        return self.ctx.store_artifact(
            json.dumps(document, indent=1, ensure_ascii=False).encode(),
            name="load-stream-cuts.json",
            media_type="application/json",
        )

    def _first_cuts(self) -> list[str]:
        """The first cut stream of each streaming request that had one, for the outcome's details."""
        return [
            stream.cuts[0].summary()
            for prefix, stream in self.streams.items()
            if prefix.startswith("endpoint.") and stream.cuts
        ]

    def _generator(self) -> str | None:
        """Record how hard the generator worked; why the run is invalid, if it is."""
        m = self.m
        if m.cpu is not None:
            self._metric("generator.cpu", m.cpu, "ratio", "performance")
        self._metric("generator.max_lag", m.max_lag_us / 1e6, "seconds", "performance")
        # Only the generator's own lateness (see `Measured.generator_problems`).
        self._metric("generator.late", m.behind, "count", "performance")
        problems = m.generator_problems(self.settings.generator)
        self._metric("generator.valid", 0.0 if problems else 1.0, "number", "performance")
        if not problems:
            return None
        return "; ".join(problems) + ": the generator did not keep its schedule, so latency is not reported"

    def _store_histograms(self, journeys: JourneyLoadResult | None) -> ArtifactRef:
        m = self.m

        def both(aggregate: Aggregate) -> dict[str, str]:
            return {
                "corrected": hist.encode(aggregate.corrected),
                "uncorrected": hist.encode(aggregate.uncorrected),
            }

        document: dict[str, object] = {
            "format": "HdrHistogram V2 compressed base64; values in microseconds",
            "overall": both(m.overall),
            "endpoints": {name: both(aggregate) for name, aggregate in m.endpoints},
            "components": {name: both(a) for name, a in m.components.items()},
        }
        streams = self.streams
        if streams:  # µs, except events_per_stream (a count) and the rates (milli-events/s, bytes/s)
            document["streams"] = {
                prefix.rstrip(".") or "overall": {
                    figure: hist.encode(getattr(stream, figure)) for figure in StreamStats.HISTOGRAMS
                }
                for prefix, stream in streams.items()
            }
        if journeys is not None:  # whole iterations (successful ones), from intended and actual start
            document["journeys"] = {
                j.name: {
                    "corrected": hist.encode(j.duration),
                    "uncorrected": hist.encode(j.duration_uncorrected),
                }
                for j in journeys.journeys
            }
        return self.ctx.store_artifact(
            json.dumps(document, indent=1).encode(),
            name="load-histograms.json",
            media_type="application/json",
        )

    def _series(self, *, with_latency: bool) -> None:
        """The per-second series of the whole load, of each endpoint and of each component."""
        parts: list[tuple[str, Aggregate | None, dict[str, str]]] = [("", None, {})]
        parts += [(f"endpoint.{name}.", a, {"endpoint": name}) for name, a in self.m.endpoints]
        parts += [(f"component.{c}.", a, {"component": c}) for c, a in self.m.components.items()]
        for prefix, part, labels in parts:
            series = per_second(self.m, part)
            self.ctx.record_series(f"{prefix}rps", "per_second", series.rps, labels=labels)
            self.ctx.record_series(f"{prefix}error_rate", "ratio", series.error_rate, labels=labels)
            if with_latency:
                self.ctx.record_series(f"{prefix}latency.p95", "seconds", series.p95, labels=labels)
                self.ctx.record_series(f"{prefix}latency.p99", "seconds", series.p99, labels=labels)
