"""Per-endpoint and per-component per-second series, end to end against the real engine test
server: what the recorder stores, `abort_on_fail` on one endpoint, the error-rate series through
a stall, and the per-step series of both journey drivers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from engine_support import Server, engine_test_server
from recording_context import MakeContext, RecordingContext

from gonogo.checks.base import CheckOutcome
from gonogo.checks.load import LoadCheck, LoadSettings
from gonogo.loadgen.engine import Endpoint, LoadSpec, ProgressSnapshot, run_load
from gonogo.threshold import parse_threshold

Points = list[tuple[datetime, float]]


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with engine_test_server() as running:
        yield running


def run(
    make: MakeContext, server: Server, settings: dict[str, Any], abort_when: dict[str, Any] | None = None
) -> tuple[CheckOutcome, RecordingContext]:
    ctx = make(check_name="load", base_url=f"http://127.0.0.1:{server.port}")
    ctx.abort_when.update(abort_when or {})
    outcome = LoadCheck().run(LoadSettings.model_validate(settings), ctx)
    return outcome, ctx


def in_breach_for(name: str, expr: str) -> Any:
    """An abort rule as the runner applies an `abort_on_fail` gate with a timeframe."""
    threshold = parse_threshold(expr)
    assert threshold.timeframe is not None

    def rule(so_far: float | None, per_second: Points) -> str | None:
        breach = threshold.longest_breach([(t.timestamp(), value) for t, value in per_second])
        if breach is not None and breach.seconds >= threshold.timeframe:
            return f"{name} {expr} failed"
        return None

    return rule


def values(points: Points) -> list[float]:
    return [value for _, value in points]


def test_an_abort_gate_on_one_slow_endpoint_stops_the_load(
    recording_context: MakeContext, server: Server
) -> None:
    # 1 request in 50 is slow: the whole load's p95 stays fast, the slow endpoint's does not
    mix = [
        {"name": "fast", "path": "/fixed/100", "component": "api", "weight": 49},
        {"name": "slow", "path": "/delay/300", "component": "backend", "weight": 1},
    ]
    gates = {
        name: in_breach_for(name, "< 200ms for 2s")
        for name in ("latency.p95", "endpoint.slow.latency.p95", "component.api.latency.p95")
    }
    started = time.monotonic()
    outcome, ctx = run(recording_context, server, {"rate": 100, "duration": "20s", "requests": mix}, gates)
    assert time.monotonic() - started < 10
    assert outcome.message.startswith("stopped early: endpoint.slow.latency.p95 < 200ms for 2s failed"), (
        outcome
    )
    series = ctx.series
    # each endpoint and component has its own series, labelled, every measured second in each
    seconds = len(series["rps"])
    assert seconds >= 2
    for name in ("endpoint.fast.", "endpoint.slow.", "component.api.", "component.backend."):
        assert len(series[f"{name}rps"]) == len(series[f"{name}error_rate"]) == seconds, name
    assert ctx.series_labels["endpoint.slow.latency.p95"] == {"endpoint": "slow"}
    assert ctx.series_labels["component.backend.rps"] == {"component": "backend"}
    assert min(values(series["endpoint.slow.latency.p95"])) >= 0.3
    assert values(series["endpoint.slow.latency.p95"]) == values(series["component.backend.latency.p95"])
    # the whole load's seconds before the stop (the last, cut short, has few responses beside the
    # slow ones still waiting)
    assert max(values(series["latency.p95"])[:-1]) < 0.2
    # the seconds before the stop: 98 fast responses a second, 2 slow ones
    assert all(rps > 80 for rps in values(series["endpoint.fast.rps"])[:-1])
    assert all(rps < 5 for rps in values(series["endpoint.slow.rps"])[:-1])


def test_the_error_rate_series_has_every_second_of_a_stall(
    recording_context: MakeContext, server: Server
) -> None:
    mix = [
        {"name": "ok", "path": "/fixed/100", "component": "api"},
        {"name": "broken", "path": "/status/500", "component": "worker"},
    ]
    # the server stops 1.5 s in, for 2.5 s: requests wait, none is answered
    with server.stalled(after=1.5, lasting=2.5):
        outcome, ctx = run(recording_context, server, {"rate": 20, "duration": "5s", "requests": mix})
    assert outcome.status == "completed", outcome
    series = ctx.series
    seconds = [at for at, _ in series["rps"]]
    assert len(seconds) >= 5
    # a point for every second, answered or not: the stalled ones hold the rate before them
    for name in ("error_rate", "endpoint.broken.error_rate", "endpoint.ok.error_rate"):
        assert [at for at, _ in series[name]] == seconds, name
    assert values(series["endpoint.broken.error_rate"]) == [1.0] * len(seconds)
    assert values(series["endpoint.ok.error_rate"]) == [0.0] * len(seconds)
    stalled = [i for i, (_, rps) in enumerate(series["rps"]) if rps == 0]
    assert stalled and stalled[0] > 0, series["rps"]
    overall = values(series["error_rate"])
    assert overall[0] == pytest.approx(0.5, abs=0.2)
    assert all(overall[i] == overall[i - 1] for i in stalled), overall
    # the stall shows in each endpoint's latency through the requests waiting at each second's end
    for name in ("endpoint.ok.", "endpoint.broken."):
        p95 = dict(series[f"{name}latency.p95"])
        assert all(seconds[i] in p95 for i in stalled), name
        assert max(p95[seconds[i]] for i in stalled) >= 1.0, (name, p95)


@pytest.mark.parametrize("driver", ["c", "python"])
def test_both_journey_drivers_record_per_step_series(
    recording_context: MakeContext, server: Server, driver: str
) -> None:
    page: dict[str, Any] = {"path": "/fixed/100"}
    if driver == "python":
        page["raw"] = True  # a raw request runs on the Python driver
    settings = {
        "rate": 10,
        "duration": "2s",
        "late_threshold": "100ms",
        "journeys": {
            "browse": {
                "steps": [
                    {"name": "page", "request": page},
                    {"name": "slow", "request": {"path": "/delay/300"}},
                ]
            }
        },
        "components": {"browse.slow": "backend"},
    }
    outcome, ctx = run(recording_context, server, settings)
    assert outcome.status == "completed", outcome
    assert ctx.value("generator.fast_path") == (1.0 if driver == "c" else 0.0)
    series = ctx.series
    seconds = len(series["rps"])
    for name in ("endpoint.browse.page.", "endpoint.browse.slow.", "component.backend."):
        assert len(series[f"{name}rps"]) == len(series[f"{name}error_rate"]) == seconds, name
        assert values(series[f"{name}error_rate"]) == [0.0] * seconds
    # each step's responses in its own series, the slow step's 300 ms apart from the page's
    assert all(rps > 0 for rps in values(series["endpoint.browse.slow.rps"])[1:])
    assert min(values(series["endpoint.browse.slow.latency.p95"])) >= 0.3
    assert min(values(series["endpoint.browse.page.latency.p95"])) < 0.2
    assert values(series["component.backend.latency.p99"]) == values(
        series["endpoint.browse.slow.latency.p99"]
    )


def test_two_workers_series_merge_without_loss(server: Server) -> None:
    endpoints = [
        Endpoint(name="a", path="/fixed/100", component="api"),
        Endpoint(name="b", path="/status/500", component="api"),
        Endpoint(name="c", path="/delay/50", component="worker"),
    ]
    spec = LoadSpec(
        host="127.0.0.1", port=server.port, endpoints=endpoints, rate=150, duration=1.5, workers=2
    )
    snapshots: list[ProgressSnapshot] = []
    result = run_load(spec, on_progress=snapshots.append)
    for e in result.endpoints:
        # every response and error of the endpoint is in its series, every latency in its histograms
        assert sum(s.responses for s in e.series) == e.counts.responses > 0, e.endpoint.name
        assert sum(s.error_total for s in e.series) == e.counts.error_total, e.endpoint.name
        assert sum(sum(s.latency.values()) for s in e.series) == e.counts.responses, e.endpoint.name
    # a component's series is its endpoints' added second by second; the run's is all of them
    api = result.components["api"].series
    assert [s.responses for s in api] == [
        sum(s.responses for e in result.endpoints[:2] for s in e.series if s.second == second.second)
        for second in api
    ]
    assert sum(s.error_total for s in api) == result.endpoint("b").counts.error_total
    assert [s.responses for s in result.series] == [
        sum(s.responses for e in result.endpoints for s in e.series if s.second == second.second)
        for second in result.series
    ]
    # progress gives each endpoint's and component's seconds too, as every worker reported them
    parts = {prefix for snap in snapshots for prefix in snap.parts}
    assert {"endpoint.a.", "endpoint.b.", "endpoint.c.", "component.api.", "component.worker."} <= parts
    assert snapshots[-1].parts["endpoint.b."].error_rate == 1.0
