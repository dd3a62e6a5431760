"""The soak kind's settings, names, default gates and trend figures: pure logic, fast."""

from __future__ import annotations

import math
import random
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from gonogo.checks.soak import SoakCheck, SoakSettings
from gonogo.checks.soak.resources import default_detect_slope, latency_trend, resource_trends
from gonogo.checks.soak.settings import parse_slope
from gonogo.errors import PlanError
from gonogo.plan.load import parse_plan
from gonogo.plan.model import ResourceLimits, Trends
from gonogo.plan.names import PlanNames, matches
from gonogo.system.resource_trends import series_trend

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SERVICE = """
system:
  services:
    api:
      command: [python, -m, http.server, "{port.api}"]
  base_url: "http://127.0.0.1:{port.api}"
"""


def plan(text: str) -> str:
    return SERVICE + textwrap.dedent(text)


def test_the_tiny_plan_is_valid_and_gets_the_default_gates() -> None:
    loaded = parse_plan(
        plan("checks:\n  soak: {kind: soak, duration: 10m, rate: 50/s, requests: [{path: /health}]}\n"),
        Path("gonogo.yaml"),
    )
    settings = loaded.checks["soak"].settings
    assert isinstance(settings, SoakSettings)
    assert settings.duration == 600 and settings.rate == 50 and settings.warmup is None
    assert settings.requests is not None and settings.requests[0].name == "health"
    gates = {gate.metric: gate.expr.text for gate in loaded.gates if gate.metric.startswith("soak.")}
    assert gates == {
        "soak.*.rss.leak": "== 0",
        "soak.*.fds.leak": "== 0",
        "soak.*.threads.leak": "== 0",
        "soak.*.within_limit": "== 1",
        "soak.latency.leak": "== 0",
        "soak.error_rate": "< 1%",
    }
    # the traffic the soak sends: the load kind's settings, its warm-up first, then the duration
    load = settings.load_settings(30.0)
    assert (load.model, load.rate, load.warmup, load.duration) == ("open", 50.0, 30.0, 600.0)
    assert load.planned_duration == 630.0


def test_validate_knows_the_soak_metrics_and_series() -> None:
    text = plan(
        """
        checks:
          soak:
            kind: soak
            duration: 1h
            rate: 20/s
            requests: [{path: /health}]
            latency_slo: 200ms
        gates:
          soak.api.rss.slope_per_hour: "< 10MB"
          soak.api.fds.duration_to_detect: "< 1h"
          soak.latency.within_limit: "== 1"
          soak.latency.p95: "< 500ms for 10s"
          soak.error_rate: "< 1% for 5s"
        """
    )
    loaded = parse_plan(text, Path("gonogo.yaml"))
    assert {g.metric for g in loaded.gates} >= {"soak.api.rss.slope_per_hour", "soak.latency.p95"}
    # a gate written on the check replaces its default gates
    assert "soak.latency.leak" not in {g.metric for g in loaded.gates}

    refused = {
        "soak.web.rss.leak": "records no metric 'web.rss.leak'",
        "soak.api.rss.growth_rate": "did you mean",
        "soak.api.rss.growth": "per-second series",  # a timeframe on a figure of the whole window
    }
    for metric, message in refused.items():
        rule = '"< 1MB for 5s"' if metric.endswith(".growth") else '"== 0"'
        wrong = text.replace('soak.api.rss.slope_per_hour: "< 10MB"', f"{metric}: {rule}")
        with pytest.raises(PlanError, match=message):
            parse_plan(wrong, Path("gonogo.yaml"))


def test_mistakes_in_the_settings_name_the_field() -> None:
    base = {"duration": "10m", "rate": "50/s", "requests": [{"path": "/health"}]}
    mistakes = {
        "detect": ({"detect": {"rss": "1MB"}}, "rss: '1MB' is not a growth rate; expected e.g. 1MB/h"),
        "detect unit": ({"detect": {"fds": "1MB/h"}}, "is not a growth of fds"),
        "detect resource": ({"detect": {"heap": "1MB/h"}}, "'heap' is not a sampled resource"),
        "both": ({"journeys": {"j": {"steps": [{"name": "s", "request": {"path": "/"}}]}}}, "exactly one of"),
        "duration": ({"duration": "200h"}, "at most 168h"),
        "services": ({"services": ["api", "api"]}, "named twice"),
    }
    for change, message in mistakes.values():
        with pytest.raises(ValidationError, match=message):
            SoakSettings.model_validate({**base, **change})
    soak = "{kind: soak, duration: 1m, rate: 5, services: [apy], requests: [{path: /}]}"
    unknown = r"services\[0\]: 'apy' is not a service of this plan; did you mean 'api'"
    with pytest.raises(PlanError, match=unknown):
        parse_plan(plan(f"checks:\n  soak: {soak}\n"), Path("gonogo.yaml"))


def test_journeys_use_what_the_setup_of_each_virtual_user_defines() -> None:
    """As in the load kind: `setup` runs once per user, its token feeds the journeys and the teardown."""
    authorized = {"headers": {"Authorization": "Bearer {token}"}}
    login = {
        "steps": [
            {
                "name": "login",
                "request": {"method": "POST", "path": "/login"},
                "extract": {"token": "json:$.t"},
            }
        ]
    }
    browse = {"browse": {"steps": [{"name": "list", "request": {"path": "/items", **authorized}}]}}
    logout = {"steps": [{"name": "logout", "request": {"method": "POST", "path": "/logout", **authorized}}]}
    soak = SoakSettings.model_validate(
        {"duration": "1m", "rate": "5/s", "setup": login, "journeys": browse, "teardown": logout}
    )
    load = soak.load_settings(warmup=0.0)
    assert load.setup is not None and load.teardown is not None and load.journeys is not None
    with pytest.raises(ValidationError, match=r"\{token\} is not a variable at this point"):
        SoakSettings.model_validate({"duration": "1m", "rate": "5/s", "journeys": browse})


def test_slopes_are_per_hour_in_base_units() -> None:
    assert parse_slope("rss", "1MB/h") == 1e6
    assert parse_slope("rss", "512KiB/min") == 512 * 1024 * 60
    assert parse_slope("fds", "10/h") == 10
    assert parse_slope("threads", "1/s") == 3600
    assert parse_slope("cpu", "5%/h") == pytest.approx(0.05)
    # unnamed requests get names from their path, unique
    settings = SoakSettings.model_validate(
        {
            "duration": 60,
            "rate": 5,
            "requests": [{"path": "/a/1"}, {"path": "/a/1"}, {"method": "POST", "path": "/"}],
        }
    )
    assert [r.name for r in settings.requests or []] == ["a_1", "a_1-2", "post_root"]


def _series(values: list[float], interval: float = 1.0) -> list[tuple[datetime, float]]:
    return [(T0 + timedelta(seconds=i * interval), v) for i, v in enumerate(values)]


def test_resource_trends_flag_a_leak_and_leave_noise_alone() -> None:
    noise = random.Random(7)
    samples = {
        ("leaky", "rss"): _series([50e6 + 20_000 * i + noise.gauss(0, 100_000) for i in range(300)]),
        ("leaky", "fds"): _series([10 + i // 10 for i in range(300)]),
        ("steady", "rss"): _series([50e6 + noise.gauss(0, 2e6) for _ in range(300)]),
        ("steady", "fds"): _series([12.0] * 300),
        ("short", "rss"): _series([50e6, 51e6, 52e6]),
    }
    trends = Trends(warmup=120, horizon=72 * 3600, confidence=0.95)
    found = resource_trends(
        samples,
        ["leaky", "steady", "short"],
        since=T0,
        until=T0 + timedelta(seconds=299),
        trends=trends,
        limits={"leaky": ResourceLimits(memory=1_000_000_000)},
        fd_limits={"leaky": (1024.0, "RLIMIT_NOFILE"), "steady": (1024.0, "RLIMIT_NOFILE")},
        detect={"rss": 3.6e6},
        fallback_interval=1.0,
    )
    figures = {
        f"{r.name}.{figure.name}": (figure.value, source) for r in found for figure, source in r.figures
    }
    # the soak's window is all measured: the plan's warm-up was before it, not again inside it
    assert figures["leaky.rss.start"][0] == pytest.approx(50e6, rel=0.01)
    assert figures["leaky.rss.leak"][0] == 1
    assert figures["leaky.rss.slope_per_hour"][0] == pytest.approx(72e6, rel=0.05)
    assert figures["leaky.rss.within_limit"][0] == 0  # 72 MB/h reaches 1 GB well before 72 h
    assert "system.services.leaky.limits.memory" in figures["leaky.rss.limit"][1]
    assert figures["leaky.fds.leak"][0] == 1 and figures["leaky.fds.limit"][0] == 1024
    assert figures["steady.rss.leak"][0] == 0 and figures["steady.fds.leak"][0] == 0
    assert figures["steady.fds.within_limit"][0] == 1
    assert "steady.rss.within_limit" not in figures  # no limit, no such figure
    # 1 MB/h (detect.rss) under 2 MB of noise needs longer than a 1 MB/h leak under 100 KB
    steady_needs, source = figures["steady.rss.duration_to_detect"]
    assert steady_needs > figures["leaky.rss.duration_to_detect"][0] > 0
    assert "detect.rss" in source and "in 8 soaks out of 10" in source
    # a flat count still moves in whole steps: no zero-noise "detected at once"
    assert figures["steady.fds.detectable_slope"][0] > 0
    # too few samples: leak 0 is recorded, and says it is no evidence
    assert figures["short.rss.leak"][0] == 0
    assert "not evidence of none" in figures["short.rss.leak"][1]
    assert [name for name in figures if name.startswith("short.")] == ["short.rss.leak", *(
        f"short.{r}.leak" for r in ("fds", "threads", "cpu"))]  # fmt: skip
    declared = SoakCheck.metric_names(
        SoakSettings.model_validate({"duration": 60, "rate": 5, "requests": [{"path": "/"}]}),
        PlanNames(services=frozenset({"leaky", "steady", "short"})),
    )
    assert all(matches(name, declared) for name in figures)


def test_a_growth_that_levels_off_under_steady_load_is_a_warm_up_not_a_leak() -> None:
    # a heap growing to its size: 2.1 MB, most of it in the first minute of a 3-minute soak
    noise = random.Random(3)
    rising = [50e6 + 2.1e6 * (1 - math.exp(-i / 60)) + noise.gauss(0, 12e3) for i in range(180)]
    linear = [50e6 + 2.1e6 * i / 90 + noise.gauss(0, 12e3) for i in range(180)]
    samples = {("warm", "rss"): _series(rising), ("leak", "rss"): _series(linear)}
    found = resource_trends(
        samples,
        ["warm", "leak"],
        since=T0,
        until=T0 + timedelta(seconds=179),
        trends=Trends(warmup=0),
        limits={},
        fd_limits={},
        detect={},
        fallback_interval=1.0,
    )
    summaries = {r.name: r.summary for r in found}
    leaks = {r.name: f.value for r in found for f, _ in r.figures if f.name == "leak"}
    assert leaks["warm.rss"] == 0 and leaks["leak.rss"] == 1
    assert "growth slowed to" in summaries["warm.rss"] and "in the later half" in summaries["warm.rss"]
    # the whole-run trend of the same series, not under steady load, still calls it growth
    whole = series_trend("warm rss", _series(rising), since=T0, settings=Trends(warmup=0), unit="bytes")
    assert whole.trend is not None and whole.trend.significant


def test_the_latency_trend_and_the_default_detect_slopes() -> None:
    growing = _series([0.010 + 0.001 * i for i in range(120)])
    result = latency_trend(growing, since=T0, trends=Trends(warmup=0), slo=0.050)
    figures = {figure.name: figure.value for figure, _ in result.figures}
    assert figures["leak"] == 1 and figures["within_limit"] == 0 and figures["limit"] == 0.050
    assert "duration_to_detect" not in figures  # latency has no `detect`
    flat = latency_trend(_series([0.010, 0.012, 0.009] * 40), since=T0, trends=Trends(warmup=0), slo=None)
    assert {figure.name: figure.value for figure, _ in flat.figures}["leak"] == 0
    # with a limit: the growth that reaches it from the start by the horizon
    assert default_detect_slope(100.0, 1100.0, 10 * 3600) == (
        100.0,
        "default: reaches the limit from the start in 10 h",
    )
    slope, why = default_detect_slope(100e6, None, 10 * 3600)
    assert slope == pytest.approx(1e6) and why == "default: grows 10% of the start in 10 h"
    assert default_detect_slope(2000.0, 1000.0, 3600)[0] is None  # already past the limit
    assert math.isclose(parse_slope("rss", "1MB/h"), 1e6)


def test_a_soak_refuses_a_streaming_request_it_would_not_report() -> None:
    with pytest.raises(ValidationError, match="a soak records no figure per request"):
        SoakSettings.model_validate(
            {"duration": "10m", "rate": 5, "requests": [{"path": "/v1", "stream": "sse"}]}
        )
