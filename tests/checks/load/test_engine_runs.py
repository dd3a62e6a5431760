"""The load engine against a real HTTP server on 127.0.0.1: schedules, parsing, keep-alive,
coordinated omission, drops, errors by kind and the closed model. Nothing here is timed as
a pass/fail on speed; rates are low enough for a slow machine."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from engine_support import Server, engine_test_server, free_port

import gonogo.loadgen._engine as _engine
from gonogo.loadgen import histogram as hist
from gonogo.loadgen.engine import (
    Endpoint,
    LoadResult,
    LoadSpec,
    LoadSpecError,
    ProgressSnapshot,
    run_load,
)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with engine_test_server() as s:
        yield s


def spec(server: Server, endpoints: list[Endpoint], **kw: object) -> LoadSpec:
    return LoadSpec(host="127.0.0.1", port=server.port, endpoints=endpoints, **kw)  # type: ignore[arg-type]


def assert_consistent(result: LoadResult) -> None:
    """Invariants of every run: nothing silently skipped, histograms hold every response."""
    total = result.total
    assert total.requests == total.responses + total.connection_errors + total.timeouts + total.unfinished
    assert result.overall.corrected.get_total_count() == total.responses
    assert result.overall.uncorrected.get_total_count() == total.responses
    assert sum(s.requests for s in result.series) == total.requests
    assert sum(s.responses for s in result.series) == total.responses
    assert sum(s.dropped for s in result.series) == total.dropped
    assert sum(sum(s.latency.values()) for s in result.series) == total.responses
    for e in result.endpoints:
        assert e.corrected.get_total_count() == e.counts.responses
        assert sum(e.counts.status.values()) == e.counts.responses


def test_open_model_rate_mix_status_and_keep_alive(server: Server) -> None:
    before = server.stats()
    endpoints = [
        Endpoint("fixed", path="/fixed", weight=3, component="api"),
        Endpoint("chunked", path="/chunked/5000/9", weight=2, component="api"),
        Endpoint("head", method="HEAD", path="/fixed/5000", weight=1, component="api"),
        Endpoint("missing", path="/status/404", weight=1, component="errors"),
        Endpoint("broken", path="/status/500", weight=1, component="errors"),
        Endpoint("empty", path="/status/204", weight=1, component="errors"),
        Endpoint("post", method="POST", path="/echo", body=b"hello" * 100, weight=1, component="api"),
    ]
    snapshots: list[ProgressSnapshot] = []
    result = run_load(
        spec(server, endpoints, rate=400.0, duration=2.5, warmup=0.5, max_connections=20),
        on_progress=snapshots.append,
    )
    after = server.stats()
    assert_consistent(result)
    total = result.total
    assert total.scheduled == 1000  # rate x duration, exactly: deterministic arrivals
    assert total.requests == 1000 and total.dropped == 0
    assert total.responses == 1000
    assert result.warmup_total.requests == 200 and result.warmup_total.responses == 200
    # the weighted sequence gives every endpoint its share to within one request
    for e in result.endpoints:
        assert abs(e.counts.requests - 1000 * e.endpoint.weight / 10) <= 1, e.endpoint.name
    assert result.endpoint("missing").counts.status == {404: result.endpoint("missing").counts.requests}
    assert result.endpoint("broken").counts.errors["http_5xx"] == result.endpoint("broken").counts.requests
    assert result.endpoint("missing").counts.errors["http_4xx"] == result.endpoint("missing").counts.requests
    assert result.endpoint("empty").counts.status == {204: result.endpoint("empty").counts.requests}
    for name in ("fixed", "chunked", "head", "post"):
        counts = result.endpoint(name).counts
        assert counts.status == {200: counts.requests} and counts.error_total == 0, name
    assert total.connection_errors == 0 and total.timeouts == 0
    assert result.components["errors"].counts.requests == sum(
        result.endpoint(n).counts.requests for n in ("missing", "broken", "empty")
    )
    # every request reached the server, over a handful of keep-alive connections
    served = sum(after["requests"].values()) - sum(before["requests"].values())
    assert served == 1200
    new_connections = after["connections"] - before["connections"] - 1  # minus the /stats request
    assert new_connections == result.workers[0].connections_opened
    assert new_connections <= 20
    # warm-up kept apart; the series covers the measured 2.5 s
    assert [s.second for s in result.series][:3] == [0, 1, 2]
    assert 2.4 < result.measured_seconds < 4
    assert snapshots and snapshots[-1].requests > 0
    assert result.workers[0].cpu_seconds > 0 and result.workers[0].wall_seconds >= 2.9


def test_parser_handles_every_framing(server: Server) -> None:
    endpoints = [
        Endpoint("continue", path="/continue"),
        Endpoint("split", path="/split"),
        Endpoint("http10", path="/http10"),
        Endpoint("until-close", path="/until-close"),
        Endpoint("close", path="/close"),
        Endpoint("big-chunks", path="/chunked/400000/3"),
        Endpoint("big-length", path="/fixed/600000"),
        Endpoint("head-chunked", method="HEAD", path="/chunked/100/2"),
        Endpoint("not-modified", path="/status/304"),
    ]
    result = run_load(spec(server, endpoints, model="closed", users=3, max_requests=90, timeout=5.0))
    assert_consistent(result)
    assert result.total.requests == 90
    assert result.total.responses == 90, result.total
    assert result.total.error_total == 0
    for e in result.endpoints:
        assert e.counts.responses == 10, e.endpoint.name
    assert result.endpoint("not-modified").counts.status == {304: 10}
    # Connection: close, HTTP/1.0 and read-until-close each cost a new connection
    assert result.workers[0].connections_opened >= 30


def test_coordinated_omission_is_corrected() -> None:
    with engine_test_server() as server, server.stalled(after=1.5, lasting=0.5):
        result = run_load(
            spec(server, [Endpoint("fixed", path="/fixed")], rate=500.0, duration=4.0, max_connections=4)
        )
    assert_consistent(result)
    assert result.total.requests == 2000 and result.total.error_total == 0
    corrected = hist.percentiles(result.overall.corrected, [50, 95, 99])
    uncorrected = hist.percentiles(result.overall.uncorrected, [50, 95, 99])
    # 250 of the 2000 arrivals fall in the 500 ms stall and wait out its remainder: the top
    # 1% (20) waited at least ~460 ms and the top 5% (100) at least ~300 ms.
    assert corrected[99] >= 400_000, corrected
    assert corrected[95] >= 250_000, corrected
    # A closed-loop view only sees the few requests in flight when the server stopped.
    assert uncorrected[99] < 150_000, uncorrected
    assert result.overall.uncorrected.get_max_value() >= 300_000
    assert result.total.late >= 100
    assert result.max_lag_us < 100_000  # the generator itself kept up
    assert max(s.percentile(99) or 0 for s in result.series) >= 400_000


def test_requests_waiting_too_long_are_dropped_and_counted(server: Server) -> None:
    # one connection, 100 ms per response: capacity 10/s for 40/s of arrivals
    result = run_load(
        spec(
            server,
            [Endpoint("slow", path="/delay/100")],
            rate=40.0,
            duration=2.0,
            max_connections=1,
            timeout=0.3,
        )
    )
    assert_consistent(result)
    total = result.total
    assert total.scheduled == 80
    assert total.requests + total.dropped == 80
    assert total.dropped > 30 and total.late > 0
    assert total.unsent == 0 and total.error_total == 0


def test_a_full_queue_drops_at_once(server: Server) -> None:
    result = run_load(
        spec(
            server,
            [Endpoint("slow", path="/delay/200")],
            rate=50.0,
            duration=1.0,
            max_connections=1,
            max_queue=2,
        )
    )
    assert_consistent(result)
    assert result.total.requests + result.total.dropped == 50
    assert result.total.dropped >= 35


def test_timeouts_resets_and_early_closes_counted_by_kind(server: Server) -> None:
    endpoints = [
        Endpoint("hang", path="/hang"),
        Endpoint("reset", path="/reset"),
        Endpoint("eof", path="/eof"),
        Endpoint("ok", path="/fixed"),
    ]
    result = run_load(spec(server, endpoints, rate=40.0, duration=1.0, max_connections=50, timeout=0.3))
    assert_consistent(result)
    assert result.endpoint("hang").counts.errors["timeout"] == 10
    assert (
        result.endpoint("reset").counts.errors["reset"] + result.endpoint("reset").counts.errors["closed"]
        == 10
    )
    assert result.endpoint("eof").counts.errors["closed"] == 10
    assert result.endpoint("ok").counts.responses == 10
    assert result.total.error_total == 30
    assert result.total.error_rate == 0.75


def test_refused_connections_counted(server: Server) -> None:
    port = free_port()  # nothing listens there
    endpoints = [Endpoint("nothing", path="/")]
    result = run_load(LoadSpec(host="127.0.0.1", port=port, endpoints=endpoints, rate=100.0, duration=0.5))
    assert_consistent(result)
    assert result.total.requests == 50
    assert result.total.errors["refused"] == 50
    # IPv6 loopback is allowed too (nothing listens there either)
    result = run_load(LoadSpec(host="::1", port=port, endpoints=endpoints, model="closed", max_requests=5))
    assert result.total.errors["refused"] + result.total.errors["connect"] == 5


@pytest.mark.parametrize("host", ["10.0.0.1", "8.8.8.8", "example.com", "::ffff:8.8.8.8", "2001:db8::1"])
def test_non_loopback_hosts_are_refused(host: str) -> None:
    with pytest.raises(LoadSpecError, match="host"):
        run_load(LoadSpec(host=host, port=80, endpoints=[Endpoint("x")], rate=1.0, duration=1.0))


@pytest.mark.parametrize("host", ["10.0.0.1", "192.168.1.1", "::2", "0.0.0.0"])
def test_the_c_engine_refuses_non_loopback_itself(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        _engine.Engine(host, 80, [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"], [1], stages=[(1.0, 1.0, 1.0)])


def test_bad_specs_name_the_field() -> None:
    e = [Endpoint("x")]
    cases: list[tuple[dict[str, object], str]] = [
        ({"rate": None, "duration": 1.0}, "rate"),
        ({"rate": 10.0}, "duration"),
        ({"rate": 10.0, "duration": -1.0}, "duration"),
        ({"rate": 10.0, "duration": 1.0, "timeout": 0.0}, "timeout"),
        ({"model": "closed", "users": 0, "duration": 1.0}, "users"),
        ({"model": "closed", "users": 2}, "duration"),
        ({"stages": [(1.0, 0.0)]}, "stages"),
    ]
    for kw, field in cases:
        with pytest.raises(LoadSpecError, match=field):
            LoadSpec(host="127.0.0.1", port=80, endpoints=e, **kw).validate()  # type: ignore[arg-type]
    bad = [Endpoint("x", path="no-slash"), Endpoint("y", headers={"X": "a\r\nb"}), Endpoint("z", weight=0)]
    for endpoint in bad:
        with pytest.raises(LoadSpecError, match="endpoint"):
            LoadSpec(host="127.0.0.1", port=80, endpoints=[endpoint], rate=1.0, duration=1.0).validate()


def test_ramping_stages_follow_the_schedule(server: Server) -> None:
    # 0 -> 200/s over 2 s, then 200/s for 1 s: 200 + 200 = 400 arrivals
    result = run_load(spec(server, [Endpoint("fixed", path="/fixed")], stages=[(2.0, 200.0), (1.0, 200.0)]))
    assert_consistent(result)
    assert result.total.scheduled == 400
    per_second = [s.requests for s in result.series]
    assert per_second[0] < per_second[1] < per_second[2]  # ramping: ~50, ~150, 200
    assert abs(per_second[2] - 200) <= 2


def test_poisson_arrivals_average_the_rate(server: Server) -> None:
    result = run_load(
        spec(server, [Endpoint("fixed", path="/fixed")], rate=300.0, duration=1.5, poisson=True, seed=5)
    )
    assert_consistent(result)
    assert 450 * 0.85 < result.total.scheduled < 450 * 1.15  # Poisson(450): sd 21
    again = run_load(
        spec(server, [Endpoint("fixed", path="/fixed")], rate=300.0, duration=1.5, poisson=True, seed=5)
    )
    assert again.total.scheduled == result.total.scheduled  # seeded: the same schedule


def test_closed_model_with_think_time(server: Server) -> None:
    # 4 users, 50 ms responses, 100 ms think time: 4 / 0.15 s = 26.7 requests/s
    result = run_load(
        spec(
            server,
            [Endpoint("slow", path="/delay/50")],
            model="closed",
            users=4,
            think_time=0.1,
            duration=3.0,
        )
    )
    assert_consistent(result)
    rps = result.total.responses / 3.0
    assert 26.7 * 0.8 < rps < 26.7 * 1.1, rps
    assert result.workers[0].connections_opened == 4
    p50 = hist.percentiles(result.overall.uncorrected, [50])[50]
    assert 50_000 <= p50 < 80_000


def test_stop_event_ends_the_run_early(server: Server) -> None:
    stop = threading.Event()
    timer = threading.Timer(0.5, stop.set)
    timer.start()
    started = time.monotonic()
    try:
        result = run_load(
            spec(server, [Endpoint("fixed", path="/fixed")], rate=200.0, duration=30.0), stop=stop
        )
    finally:
        timer.cancel()
    assert time.monotonic() - started < 5
    assert result.stopped_early
    assert 50 <= result.total.requests <= 400
    assert result.total.scheduled == result.total.requests + result.total.dropped + result.total.unsent
