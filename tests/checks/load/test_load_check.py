"""The load check end to end against a real HTTP server, with the runner's side recorded."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from engine_support import Server, engine_test_server
from recording_context import MakeContext, RecordingContext

from gonogo.checks.base import CheckOutcome
from gonogo.checks.load import LoadCheck, LoadSettings
from gonogo.loadgen import histogram as hist
from gonogo.threshold import parse_threshold
from gonogo.verdict.distributions import distribution_stem, load_distributions


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with engine_test_server() as running:
        yield running


def run(
    make: MakeContext, server: Server, settings: dict[str, Any], **context: Any
) -> tuple[CheckOutcome, RecordingContext]:
    ctx = make(check_name="load", base_url=f"http://127.0.0.1:{server.port}")
    for name, rule in context.get("abort_when", {}).items():
        ctx.abort_when[name] = rule
    outcome = LoadCheck().run(LoadSettings.model_validate(settings), ctx)
    return outcome, ctx


MIX = [
    {"name": "page", "path": "/fixed/100", "component": "api", "weight": 3},
    {"name": "broken", "path": "/status/500", "component": "worker", "weight": 1},
]


def test_an_open_model_run_records_every_figure(recording_context: MakeContext, server: Server) -> None:
    outcome, ctx = run(recording_context, server, {"rate": "200/s", "duration": "2s", "requests": MIX})
    assert outcome.status == "completed", outcome
    assert ctx.value("requests") == pytest.approx(400, abs=4)
    assert ctx.value("endpoint.page.requests") == pytest.approx(300, abs=3)
    assert ctx.value("error_rate") == pytest.approx(0.25, abs=0.01)
    assert ctx.value("errors.5xx") == ctx.value("endpoint.broken.requests")
    # each component's error rate on its own: the worker's route fails, the api's does not
    assert ctx.value("component.worker.error_rate") == 1.0
    assert ctx.value("component.api.error_rate") == 0.0
    assert 0 < ctx.value("latency.p50") <= ctx.value("latency.p99") <= ctx.value("latency.max") < 1
    assert ctx.value("latency_uncorrected.p99") <= ctx.value("latency.p99") * 1.01
    assert ctx.value("rps") == pytest.approx(200, rel=0.05)
    assert ctx.value("generator.valid") == 1 and ctx.value("dropped") == 0
    # the histograms are kept as evidence, and the latency metrics point at them
    document = json.loads(ctx.artifact("load-histograms.json"))
    overall = hist.decode(document["overall"]["corrected"])
    assert overall.get_total_count() == ctx.value("requests")
    assert ctx.metric("latency.p95").artifact is not None
    # the same histograms as the distributions a baseline comparison reads, named like the metrics
    distributions = load_distributions(ctx.artifact("load-histograms.json"))
    assert sum(distributions["latency"].values()) == overall.get_total_count()
    for name in ctx.metrics:
        stem = distribution_stem(name)
        if stem is not None and ".latency" in f".{stem}":
            assert stem in distributions, name
    p50 = sorted(distributions["latency"])[len(distributions["latency"]) // 2]
    assert 0 < p50 < 1  # seconds
    assert "open model, constant arrivals at 200/s" in ctx.metric("requests").source
    # per-second series for gates with a timeframe
    assert len(ctx.series["rps"]) >= 2 and len(ctx.series["latency.p95"]) >= 2
    assert all(rate == pytest.approx(0.25, abs=0.1) for _, rate in ctx.series["error_rate"])
    # the live progress line: rate, errors and p95 so far
    live = [m for m in ctx.progress_messages if m.startswith("load ")]
    assert live and all(" responses/s, " in m and " errors, p95 " in m for m in live), ctx.progress_messages
    assert any("p95 —" not in m for m in live)


def test_a_saturated_generator_makes_the_run_invalid(recording_context: MakeContext, server: Server) -> None:
    outcome, ctx = run(
        recording_context,
        server,
        {"rate": 100, "duration": "2s", "requests": MIX[:1], "generator": {"max_cpu": "0%"}},
    )
    assert outcome.status == "error" and "invalid run" in outcome.message
    assert ctx.value("generator.valid") == 0
    assert "latency.p95" not in ctx.metrics and "latency.p95" not in ctx.series
    assert ctx.value("requests") > 0  # what the server did is still measured


def test_a_server_stall_shows_in_the_latency_and_leaves_the_run_valid(
    recording_context: MakeContext, server: Server
) -> None:
    # The server stops for 500 ms: with 4 connections, ~100 arrivals wait for one and leave
    # late. That wait is the server's doing and is in the corrected latency; the generator kept
    # to its schedule, so the run is valid (it was once reported as the generator's fault).
    with server.stalled(after=1.0, lasting=0.5):
        outcome, ctx = run(
            recording_context,
            server,
            {"rate": 200, "duration": "2500ms", "max_connections": 4, "requests": MIX[:1]},
        )
    assert outcome.status == "completed", outcome
    # (a few arrivals may be the generator's own doing on a busy CI machine, never the stall's)
    assert ctx.value("generator.valid") == 1 and ctx.value("generator.late") < ctx.value("late") / 5
    assert ctx.value("late") >= 50  # 10% of the 500 requests, far over generator.max_late
    assert ctx.value("latency.p99") >= 0.4 > ctx.value("latency_uncorrected.p99")


def test_a_second_in_which_a_stalled_server_answers_nothing_is_in_the_latency_series(
    recording_context: MakeContext, server: Server
) -> None:
    # Stopped from 0.8 s to 2.6 s: second 1 has no response at all. Its p95 point is the age
    # of the requests still waiting at its end, so `< 500ms for 2s` sees seconds 1 and 2 in
    # breach; counting only the responses of each second, it saw one.
    with server.stalled(after=0.8, lasting=1.8):
        outcome, ctx = run(recording_context, server, {"rate": 50, "duration": "4s", "requests": MIX[:1]})
    assert outcome.status == "completed", outcome
    rps = [rate for _, rate in ctx.series["rps"]]
    p95 = ctx.series["latency.p95"]
    assert rps[1] == 0 and len(p95) == len(rps)
    # arrivals of 0.8 s to 2 s, waiting at 2 s (the stall's clock starts before the run's, by as
    # much as the check's set-up takes on a busy machine)
    assert 1.0 <= p95[1][1] <= 1.8
    breach = parse_threshold("< 500ms for 2s").longest_breach([(t.timestamp(), v) for t, v in p95])
    assert breach is not None and breach.seconds >= 2, p95


def test_a_generator_that_falls_behind_makes_the_run_invalid(
    recording_context: MakeContext, server: Server
) -> None:
    ctx = recording_context(check_name="load", base_url=f"http://127.0.0.1:{server.port}")

    def stalling_progress(message: str, *, milestone: bool = False) -> None:  # holds the engine thread
        ctx.progress_messages.append(message)
        time.sleep(0.2)

    ctx.progress = stalling_progress  # type: ignore[method-assign]
    settings = LoadSettings.model_validate({"rate": 200, "duration": "2500ms", "requests": MIX[:1]})
    outcome = LoadCheck().run(settings, ctx)
    assert outcome.status == "error", outcome
    # a loop held back with its CPU idle: said as a stall, not as a generator out of CPU
    assert "the generator's loop stalled (max lag " in outcome.message
    assert "another process took the CPU" in outcome.message and "bottleneck" not in outcome.message
    assert ctx.value("generator.valid") == 0 and ctx.value("generator.late") >= 40
    assert ctx.value("generator.max_lag") >= 0.15
    assert "latency.p95" not in ctx.metrics


def test_an_abort_on_fail_gate_stops_the_load_early(recording_context: MakeContext, server: Server) -> None:
    def too_many_errors(so_far: float | None, per_second: object) -> str | None:
        return "error_rate above 50%" if so_far is not None and so_far > 0.5 else None

    started = time.monotonic()
    outcome, ctx = run(
        recording_context,
        server,
        {"rate": 50, "duration": "20s", "requests": MIX[1:]},
        abort_when={"error_rate": too_many_errors},
    )
    assert time.monotonic() - started < 8
    assert outcome.message.startswith("stopped early: error_rate above 50%")
    assert ctx.value("error_rate") == 1.0


def test_requests_in_flight_at_a_stop_are_counted_unfinished_not_lost(
    recording_context: MakeContext, server: Server
) -> None:
    """A service slow enough that requests are in flight whenever the load stops: an abort
    gate stops plain requests; `max_duration` cuts journeys, on either driver."""
    slow = {"name": "slow", "request": {"path": "/delay/400"}}
    on_python = {**slow, "expect": {"text": {"not_contains": "nothing"}}}  # the C engine cannot judge it
    runs: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({"requests": [{"name": "slow", "path": "/delay/400"}]}, {"error_rate": lambda so_far, _: "stop"}),
        ({"journeys": {"j": {"steps": [slow]}}, "max_duration": "1200ms"}, {}),
        ({"journeys": {"j": {"steps": [on_python]}}, "max_duration": "1200ms"}, {}),
    ]
    for traffic, abort_when in runs:
        outcome, ctx = run(
            recording_context, server, {"rate": 40, "duration": "20s", **traffic}, abort_when=abort_when
        )
        unfinished = ctx.value("unfinished")
        assert unfinished > 0, (traffic, outcome)
        answered = ctx.value("requests") - ctx.value("errors.connection") - ctx.value("errors.timeout")
        histograms = json.loads(ctx.artifact("load-histograms.json"))
        responses = hist.decode(histograms["overall"]["corrected"]).get_total_count()
        assert answered == responses + unfinished, (traffic, outcome)
        assert f"{unfinished:.0f} unfinished (in flight when the run was stopped" in outcome.message, outcome
        endpoint = "endpoint.slow." if "requests" in traffic else "endpoint.j.slow."
        assert ctx.value(endpoint + "unfinished") == unfinished


def test_every_load_stops_by_itself_at_its_bound(recording_context: MakeContext, server: Server) -> None:
    page = [{"name": "page", "path": "/fixed/100"}]
    # a count of requests: exactly that many, however high the rate
    started = time.monotonic()
    outcome, ctx = run(recording_context, server, {"rate": 200, "max_requests": 50, "requests": page})
    assert outcome.status == "completed", outcome
    assert ctx.value("requests") == 50 and time.monotonic() - started < 5
    # a count too large to reach: `max_duration` (1 h by default) stops it regardless
    started = time.monotonic()
    outcome, ctx = run(
        recording_context,
        server,
        {"model": "closed", "users": 2, "max_requests": 10**9, "max_duration": "1500ms", "requests": page},
    )
    assert outcome.status == "completed", outcome
    assert 1.4 < time.monotonic() - started < 6
    assert 0 < ctx.value("requests") < 10**9


def in_breach_for(expr: str) -> Any:
    """An abort rule as the runner applies an `abort_on_fail` gate with a timeframe."""
    threshold = parse_threshold(expr)
    assert threshold.timeframe is not None

    def rule(so_far: float | None, per_second: list[tuple[Any, float]]) -> str | None:
        breach = threshold.longest_breach([(t.timestamp(), value) for t, value in per_second])
        if breach is not None and breach.seconds >= threshold.timeframe:
            return f"{expr} failed ({breach.seconds:.0f} s in breach)"
        return None

    return rule


def test_an_abort_on_fail_gate_with_a_timeframe_stops_a_slow_load(
    recording_context: MakeContext, server: Server
) -> None:
    started = time.monotonic()
    outcome, ctx = run(
        recording_context,
        server,
        {"rate": 20, "duration": "30s", "requests": [{"name": "slow", "path": "/delay/60"}]},
        abort_when={"latency.p95": in_breach_for("< 20ms for 2s")},
    )
    # two measured seconds in breach, each seen once it has ended: stopped after about 3 s
    assert time.monotonic() - started < 8
    assert outcome.message.startswith("stopped early: < 20ms for 2s failed (2 s in breach)"), outcome
    assert ctx.value("latency.p95") >= 0.06 and ctx.value("requests") < 20 * 8
    # a gate it never breaches lets the load run its course
    outcome, ctx = run(
        recording_context,
        server,
        {"rate": 20, "duration": "2s", "requests": [{"name": "slow", "path": "/delay/60"}]},
        abort_when={"latency.p95": in_breach_for("< 5s for 1s")},
    )
    assert outcome.status == "completed" and not outcome.message.startswith("stopped early"), outcome
    assert ctx.value("requests") == 40


def test_setup_variables_reach_the_requests(recording_context: MakeContext, server: Server) -> None:
    settings = {
        "model": "closed",
        "users": 2,
        "max_requests": 20,
        "setup": {
            "steps": [
                {
                    "name": "probe",
                    "request": {"path": "/fixed/7"},
                    "extract": {"size": "header:Content-Length"},
                }
            ]
        },
        "requests": [{"name": "sized", "path": "/fixed/{size}"}],
    }
    outcome, ctx = run(recording_context, server, settings)
    assert outcome.status == "completed", outcome
    assert ctx.value("requests") == 20 and ctx.value("error_rate") == 0
    assert server.stats()["requests"].get("/fixed/7", 0) >= 20


def test_a_failing_setup_sends_no_load(recording_context: MakeContext, server: Server) -> None:
    settings = {
        "rate": 10,
        "duration": "1s",
        "setup": {
            "steps": [{"name": "login", "request": {"path": "/status/500"}, "expect": {"status": 200}}]
        },
        "requests": MIX[:1],
    }
    outcome, ctx = run(recording_context, server, settings)
    assert outcome.status == "error" and "setup journey failed" in outcome.message
    assert ctx.metrics == {}


def test_load_only_goes_to_this_machine(recording_context: MakeContext) -> None:
    ctx = recording_context(check_name="load", base_url="http://192.0.2.1:8080")
    outcome = LoadCheck().run(LoadSettings.model_validate({"rate": 1, "duration": 1, "requests": MIX}), ctx)
    assert outcome.status == "error" and "only loopback addresses" in outcome.message
    assert ctx.metrics == {}
