"""Gates, score and decision, on metric records as the store returns them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gonogo.evidence import CheckRecord, MetricRecord, SampleSeries
from gonogo.plan.model import GateSpec, Score
from gonogo.threshold import parse_threshold
from gonogo.verdict import decide, evaluate_gates


def metric(full_name: str, value: float, unit: str = "ratio", dimension: str = "tests") -> MetricRecord:
    check, name = full_name.split(".", 1)
    return MetricRecord(check, name, value, unit, dimension, f"source of {full_name}", datetime.now(UTC))


def gate(name: str, expr: str, severity: str = "must", dimension: str | None = None) -> GateSpec:
    return GateSpec(metric=name, expr=parse_threshold(expr), severity=severity, dimension=dimension)  # type: ignore[arg-type]


def test_pass_fail_warn_and_not_measured() -> None:
    metrics = [
        metric("unit.pass_rate", 1.0),
        metric("unit.coverage.lines", 0.7, dimension="coverage"),
        metric("e2e.latency.p95", 0.8, unit="seconds", dimension="performance"),
    ]
    results = evaluate_gates(
        [
            gate("unit.pass_rate", ">= 99%"),
            gate("unit.coverage.lines", ">= 80%"),
            gate("e2e.latency.p95", "< 500ms", "should"),
            gate("load.error_rate", "< 1%"),
        ],
        metrics,
    )
    assert [r.status for r in results] == ["pass", "fail", "warn", "not_measured"]
    assert results[0].source == "source of unit.pass_rate"
    assert results[1].dimension == "coverage"
    assert results[3].value is None and results[3].source == "check load recorded no metric"


def test_globs_expand_to_every_matching_metric_and_report_no_match() -> None:
    metrics = [metric("a.success_rate", 1.0), metric("b.success_rate", 0.5), metric("b.other", 0.0)]
    results = evaluate_gates([gate("*.success_rate", ">= 100%"), gate("zz.*", "== 0")], metrics)
    assert [(r.metric, r.status) for r in results] == [
        ("a.success_rate", "pass"),
        ("b.success_rate", "fail"),
        ("zz.*", "not_measured"),
    ]


def test_the_last_measurement_of_a_metric_counts() -> None:
    results = evaluate_gates(
        [gate("unit.pass_rate", ">= 99%")], [metric("unit.pass_rate", 0.5), metric("unit.pass_rate", 1.0)]
    )
    assert results[0].status == "pass" and results[0].value == 1.0


def test_a_unit_mismatch_fails_and_says_why() -> None:
    (result,) = evaluate_gates([gate("e2e.latency", "< 2s")], [metric("e2e.latency", 0.1, unit="ratio")])
    assert result.status == "fail" and "threshold is in seconds" in result.source


def test_a_relative_gate_without_baseline_is_not_a_pass() -> None:
    (result,) = evaluate_gates(
        [gate("e2e.p95", "<= +10% baseline")], [metric("e2e.p95", 0.1, unit="seconds")]
    )
    assert result.status == "not_measured" and "no baseline" in result.source


def test_score_counts_measured_dimensions_only() -> None:
    results = evaluate_gates(
        [
            gate("unit.pass_rate", ">= 99%"),  # tests: pass
            gate("unit.coverage", ">= 90%", dimension="coverage"),  # coverage: fail
            gate("e2e.p95", "< 1s", "should", dimension="performance"),  # performance: warn
            gate("sec.findings", "== 0", dimension="security"),  # not measured
        ],
        [
            metric("unit.pass_rate", 1.0),
            metric("unit.coverage", 0.5, dimension="coverage"),
            metric("e2e.p95", 2.0, unit="seconds", dimension="performance"),
        ],
    )
    verdict = decide(results, Score(weights={"tests": 2, "coverage": 1, "performance": 1, "security": 5}))
    assert verdict.dimensions["tests"] == 100
    assert verdict.dimensions["coverage"] == 0
    assert verdict.dimensions["performance"] == 50
    assert verdict.dimensions["security"] is None  # never counted as 100
    assert verdict.score == pytest.approx((2 * 100 + 0 + 50) / 4)
    assert verdict.decision == "NO-GO"
    assert any("unit.coverage = 50% fails >= 90%" in r for r in verdict.reasons)
    assert any("sec.findings == 0: not measured" in r for r in verdict.reasons)


def test_go_needs_every_must_gate_and_the_minimum_score() -> None:
    passing = evaluate_gates([gate("unit.pass_rate", ">= 99%")], [metric("unit.pass_rate", 1.0)])
    assert decide(passing, Score(minimum=80)).decision == "GO"
    warned = evaluate_gates(
        [gate("unit.pass_rate", ">= 99%"), gate("unit.flaky", "== 0", "should")],
        [metric("unit.pass_rate", 1.0), metric("unit.flaky", 2, unit="count")],
    )
    low = decide(warned, Score(minimum=80))
    assert low.score == pytest.approx(75) and low.decision == "NO-GO"
    assert any("below the minimum 80" in r for r in low.reasons)
    assert decide(warned, Score(minimum=70)).decision == "GO"


def test_nothing_to_decide_on_is_no_go() -> None:
    assert decide([], Score()).decision == "NO-GO"
    unmeasured = evaluate_gates([gate("unit.pass_rate", ">= 99%", "should")], [])
    verdict = decide(unmeasured, Score())
    assert verdict.decision == "NO-GO" and verdict.score is None


def test_run_problems_make_it_no_go() -> None:
    passing = evaluate_gates([gate("unit.pass_rate", ">= 99%")], [metric("unit.pass_rate", 1.0)])
    verdict = decide(passing, Score(), run_problems=["the run was interrupted"])
    assert verdict.decision == "NO-GO" and verdict.reasons == ["the run was interrupted"]


def test_a_timeframe_gate_fails_only_on_a_long_enough_breach() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)

    def per_second(values: list[float]) -> list[tuple[datetime, float]]:
        return [(start + timedelta(seconds=i), v) for i, v in enumerate(values)]

    def series(values: list[float]) -> dict[str, SampleSeries]:
        points = [(start + timedelta(seconds=i), v) for i, v in enumerate(values)]
        return {"load.latency.p95": SampleSeries("load.latency.p95", {"check": "load"}, "seconds", points)}

    p95 = metric("load.latency.p95", 0.3, unit="seconds", dimension="performance")
    gates = [gate("load.latency.p95", "< 500ms for 5s"), gate("load.latency.p95", "< 500ms for 3s", "should")]
    short = series([0.2] * 10 + [0.9, 0.8, 0.95, 0.7] + [0.2] * 10)
    results = evaluate_gates(gates, [p95], short)
    assert [r.status for r in results] == ["pass", "warn"]
    # judged on the series: the worst it held for the timeframe, the whole run's figure beside it
    assert results[0].value == 0.2 and results[1].value == 0.8
    assert results[0].source.startswith("held ≥ 200.0 ms for 5 s; longest breach 4 s from second 10")
    assert "whole run 300.0 ms" in results[0].source
    long = series([0.2] * 10 + [0.9] * 6)
    assert evaluate_gates(gates, [p95], long)[0].status == "fail"
    (missing,) = evaluate_gates(gates[:1], [p95])
    assert missing.status == "not_measured" and "no per-second series" in missing.source
    # no whole-run figure (no request answered): the series, of waiting ages, still judges
    (waiting,) = evaluate_gates(gates[:1], [], long)
    assert waiting.status == "fail" and waiting.value == 0.9 and "no whole-run figure" in waiting.source


def test_a_missing_metric_says_which_check_should_have_recorded_it_and_why_it_did_not() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    ran = [CheckRecord("crud", "load", "completed", "0 iterations", at, at)]
    metrics = [
        metric("crud.iterations", 0, unit="count"),
        metric("crud.requests", 51, unit="count"),
        metric("crud.unfinished", 51, unit="count"),
        metric("crud.endpoint.notes.read.requests", 0, unit="count"),
    ]
    gates = [
        gate("crud.success_rate", ">= 99%"),
        gate("crud.latency.p95", "< 1s"),
        gate("crud.endpoint.notes.read.latency.p95", "< 1s"),
        gate("soak.error_rate", "< 1%"),
    ]
    success, latency, read, soak = (r.source for r in evaluate_gates(gates, metrics, checks=ran))
    assert success.startswith(
        "check crud ran (completed) and recorded no value of success_rate: no iteration"
    )
    assert "none of its 51 requests got a response (51 in flight when the load stopped)" in latency
    assert "none of its requests was sent in the measured phase" in read
    assert soak == "check soak did not run"
