"""report.html without a browser: the JSON the charts read is inert inside a <script>, the
page shows hostile names escaped, and the percentile spectrum reads a histogram right."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gonogo.evidence import (
    CheckRecord,
    MetricRecord,
    RunRecord,
    SampleSeries,
    SignoffRequirement,
    Store,
    VerdictRecord,
)
from gonogo.evidence.findings import FINDINGS_MEDIA_TYPE
from gonogo.evidence.test_outcomes import RecordedOutcome
from gonogo.report import collect, render
from gonogo.report.details import spectrum_points
from gonogo.report.document import RunReport
from gonogo.report.html import render_html, script_json
from gonogo.verdict.flaky import RunOutcomes, find_flaky

HOSTILE = "</script><script>window.__pwned=1</script><!-- & \"quotes' </style>"
T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_script_json_cannot_close_its_script_element() -> None:
    value = {"label": HOSTILE, "values": [1.5, float("nan"), None, float("inf")], "\u2028": "\u2029"}
    text = str(script_json(value))
    assert not set("<>&") & set(text)
    assert "\u2028" not in text and "\u2029" not in text
    assert json.loads(text) == {"label": HOSTILE, "values": [1.5, None, None, None], "\u2028": "\u2029"}


def test_the_spectrum_reads_percentiles_in_nines() -> None:
    points = spectrum_points({0.001: 90, 0.01: 9, 0.1: 1})  # 100 requests
    assert points[0] == (0.0, 0.001)
    by_percentile = {round(p, 6): value for p, value in points}
    assert by_percentile[90.0] == 0.001
    assert by_percentile[99.0] == 0.01  # the last percentile 100 requests can tell
    assert max(by_percentile) == 99.0
    assert [value for _, value in points] == sorted(value for _, value in points)
    assert spectrum_points({}) == []


def _report(samples: list[SampleSeries]) -> RunReport:
    run = RunRecord(
        id="20260102-030405-abcdef", name="demo", plan_path="/p/gonogo.yaml", plan_hash="ab" * 32,
        git_commit=None, host="h", tool_versions={}, started_at=T0, ended_at=T0 + timedelta(seconds=9),
        status="completed", message="", owner_pid=1, decision="NO-GO",
    )  # fmt: skip
    verdict = VerdictRecord(
        decision="NO-GO", score=10.0, minimum_score=80, dimensions={"tests": 10.0},
        reasons=[f"unit.failed: {HOSTILE}"], gates=[], decided_at=T0,
    )  # fmt: skip
    check = CheckRecord("burst", "load", "completed", f"failing: {HOSTILE}", T0, T0)
    return RunReport(
        run=run, checks=[check], metrics=[], artifacts=[], events=[], resources=[],
        verdict=verdict, samples=samples,
    )  # fmt: skip


def test_hostile_names_are_text_in_the_page_and_in_the_chart_data() -> None:
    points = [(T0 + timedelta(seconds=s), 0.01 * (s + 1)) for s in range(5)]
    series = SampleSeries(
        "burst.endpoint.x.latency.p95", {"check": "burst", "endpoint": HOSTILE}, "seconds", points
    )
    page = render_html(_report([series]))
    assert HOSTILE not in page
    assert f"failing: {HOSTILE}" in html.unescape(page)  # there, as escaped text
    data = re.search(r'<script type="application/json" id="gonogo-charts">(.*?)</script>', page, re.S)
    assert data is not None and "<" not in data.group(1)
    charts = json.loads(data.group(1))
    assert [s["label"] for s in charts[0]["series"]] == [f"{HOSTILE} p95"]
    # Only the page's own two scripts may run: each is pinned by its sha256.
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page)
    assert policy is not None
    assert html.unescape(policy.group(1)).count("'sha256-") == 2
    assert "default-src 'none'" in html.unescape(policy.group(1))


def test_long_series_are_folded(tmp_path: Path) -> None:
    points = [(T0 + timedelta(seconds=s), float(s % 7)) for s in range(3000)]
    series = SampleSeries("burst.latency.p95", {"check": "burst"}, "seconds", points)
    page = render_html(_report([series]))
    data = re.search(r'id="gonogo-charts">(.*?)</script>', page, re.S)
    assert data is not None
    chart = json.loads(data.group(1))[0]
    assert len(chart["x"]) <= 600 and max(chart["series"][0]["values"]) == 6.0  # latency: the max
    assert "3000 points shown as" in page


def test_the_trend_reads_the_plans_earlier_runs(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'gonogo.db'}", artifacts_dir=tmp_path / "artifacts") as store:
        ids = []
        for number in range(3):
            run_id = store.begin_run(
                name="demo", plan_path="/p", plan_hash="ab" * 32, plan_text="name: demo\n",
                git_commit=None, host="h", tool_versions={}, owner_pid=1,
            )  # fmt: skip
            check_id = store.begin_check(run_id, "burst", "load")

            for name, value, unit in (
                ("latency.p95", 0.01 * (number + 1), "seconds"),
                ("rps", 50.0, "per_second"),
            ):
                store.add_metric(run_id, MetricRecord("burst", name, value, unit, "performance", "s", T0))
            store.end_check(check_id, "completed")
            store.save_verdict(
                run_id,
                VerdictRecord("GO", 90.0 + number, 80, {}, [], [], T0),
            )
            store.finish_run(run_id, "completed")
            ids.append(run_id)
        report = collect(store, ids[-1])
        page = render(report, "html")
    assert [p.run_id for p in report.trend] == ids
    assert [p.latency_p95 for p in report.trend] == [0.01, 0.02, 0.03]
    data = re.search(r'id="gonogo-charts">(.*?)</script>', page, re.S)
    assert data is not None
    runs_charts = [chart for chart in json.loads(data.group(1)) if chart["kind"] == "runs"]
    assert [chart["title"] for chart in runs_charts] == ["score", "burst.latency.p95", "burst.rps"]
    # to the second, and (begun within milliseconds here) told apart by the end of the run id
    labels = runs_charts[0]["labels"]
    assert len(set(labels)) == 3
    for label, point in zip(labels, report.trend, strict=True):
        assert label.startswith(f"{point.started_at:%m-%d %H:%M:%S}")
    assert runs_charts[0]["tips"][-1].endswith(f" UTC, run {ids[-1]}")


def test_a_run_without_a_verdict_says_so() -> None:
    report = _report([])
    page = render_html(RunReport(**{**report.__dict__, "verdict": None}))
    assert "No verdict was reached for this run." in page and 'id="gates"' not in page


def test_journeys_of_a_load_show_where_they_failed(tmp_path: Path) -> None:
    failure = {
        "journey": "checkout", "iteration": 0, "step": "pay", "method": "POST", "url": "/pay",
        "status": 502, "message": "expected status 200, got 502", "response_excerpt": HOSTILE,
        "response_size": 10, "attempts": 1, "at": T0.isoformat(), "kind": "assertion",
    }  # fmt: skip
    document = {"failed_at": {"checkout": {"pay": 3}, "browse": {}}, "failures": [failure]}
    with Store.open(f"sqlite:///{tmp_path / 'gonogo.db'}", artifacts_dir=tmp_path / "artifacts") as store:
        run_id = store.begin_run(
            name="demo", plan_path="/p", plan_hash="ab" * 32, plan_text="name: demo\n",
            git_commit=None, host="h", tool_versions={}, owner_pid=1,
        )  # fmt: skip
        store.begin_check(run_id, "shop", "load")
        content = json.dumps(document).encode()
        store.add_artifact(run_id, content, name="load-journey-failures.json", check="shop")
        for name, value in (("journey.checkout.iterations", 40.0), ("journey.checkout.failures", 3.0)):
            store.add_metric(run_id, MetricRecord("shop", name, value, "count", "reliability", "s", T0))
        report = collect(store, run_id)
        page = render(report, "html")
    checkout = next(j for j in report.journeys if j.name == "checkout")
    assert (checkout.iterations, checkout.failed, checkout.failed_at) == (40, 3, {"pay": 3})
    assert [j.name for j in report.journeys] == ["browse", "checkout"]
    assert "pay (3)" in page
    assert HOSTILE not in page and HOSTILE in html.unescape(page)


def test_findings_flaky_tests_and_signoffs_are_shown(tmp_path: Path) -> None:
    finding = {
        "rule": "authz", "title": f"GET /admin answers without credentials {HOSTILE}", "severity": "high",
        "category": "authorization", "operation": "GET /admin", "request": "GET /admin HTTP/1.1",
        "response": HOSTILE, "reproduction": "curl http://127.0.0.1/admin", "fix": "require a token",
        "source": "security-authz.json",
    }  # fmt: skip
    ignored = {**finding, "severity": "low", "title": "accepted", "ignored_because": "known, ticket 7"}
    flaky = find_flaky(
        [
            RunOutcomes(f"run-{number}", {("unit", HOSTILE): RecordedOutcome(outcome, 0, False)})
            for number, outcome in enumerate(["passed", "failed", "passed"])
        ]
    ).to_json()
    with Store.open(f"sqlite:///{tmp_path / 'gonogo.db'}", artifacts_dir=tmp_path / "artifacts") as store:
        run_id = store.begin_run(
            name="demo", plan_path="/p", plan_hash="ab" * 32, plan_text="name: demo\n",
            git_commit=None, host="h", tool_versions={}, owner_pid=1,
        )  # fmt: skip
        store.begin_check(run_id, "sec", "security")
        findings = json.dumps({"findings": [finding], "ignored": [ignored]}).encode()
        store.add_artifact(
            run_id, findings, name="security-findings.json", media_type=FINDINGS_MEDIA_TYPE, check="sec"
        )
        store.add_artifact(run_id, json.dumps(flaky).encode(), name="flaky-tests.json")
        store.save_verdict(
            run_id,
            VerdictRecord("GO", 90.0, 80, {}, [], [], T0, signoff=SignoffRequirement(["qa"], 7)),
        )
        report = collect(store, run_id)
        page = render(report, "html")
    assert HOSTILE not in page
    text = html.unescape(page)
    assert 'id="findings"' in page and "require a token" in text and "known, ticket 7" in text
    assert 'id="flaky"' in page and "100%" in text and "✓✗✓" in text and report.flaky_tests
    assert "pending: qa" in text
