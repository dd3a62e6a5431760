"""`gonogo compare`'s comparison, built from a real store holding two runs' evidence."""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]
from rich.console import Console

from gonogo.errors import UserError
from gonogo.evidence import GateRecord, MetricRecord, Store, VerdictRecord
from gonogo.report.comparison import classify, compare_runs
from gonogo.report.comparison_render import (
    comparison_html,
    comparison_json,
    comparison_markdown,
    print_comparison,
)

T0 = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
HOSTILE = "<script>alert('x')</script></style>\""


def histograms(median_us: float, rng: random.Random) -> bytes:
    corrected = HdrHistogram(1, 60_000_000, 2)
    for _ in range(2000):
        corrected.record_value(int(rng.gauss(median_us, median_us * 0.05)))
    encoded = corrected.encode().decode("ascii")
    pair = {"corrected": encoded, "uncorrected": encoded}
    return json.dumps({"overall": pair, "endpoints": {"list": pair}}).encode()


def journey(name: str, steps: list[tuple[str, bool, int, str]]) -> bytes:
    """Three iterations, each running `steps` (name, ok, status, shape) until one fails."""
    results = []
    for number in (1, 2, 3):
        ran = []
        for step, ok, status, shape in steps:
            ran.append({"step": step, "ok": ok, "latency": 0.01 * number, "status": status, "attempts": 1,
                        "shape": shape})  # fmt: skip
            if not ok:
                break
        results.append({"iteration": number, "ok": all(s["ok"] for s in ran), "duration": 0.05, "steps": ran})
    return json.dumps({"journey": name, "steps": [s[0] for s in steps], "results": results}).encode()


def junit(failing: set[str]) -> bytes:
    failure = '<failure message="no"/>'
    cases = "".join(
        f'<testcase classname="suite" name="{name}">{failure if name in failing else ""}</testcase>'
        for name in ("test_one", "test_two", "test_three")
    )
    return f'<?xml version="1.0"?><testsuite name="s" tests="3">{cases}</testsuite>'.encode()


def record_run(
    store: Store,
    *,
    median_us: float,
    step_ok: bool,
    failing: set[str],
    gate: str,
    seed: int,
    plan: str = "demo",
) -> str:
    run_id = store.begin_run(
        name=plan, plan_path="gonogo.yaml", plan_hash="h" * 64, plan_text="", git_commit=None,
        host="elsewhere", tool_versions={}, owner_pid=1,
    )  # fmt: skip
    for check, kind in (("load", "load"), ("e2e", "journeys"), ("unit", "tests")):
        check_id = store.begin_check(run_id, check, kind)
        store.end_check(check_id, "completed")
    store.add_artifact(run_id, histograms(median_us, random.Random(seed)), name="load-histograms.json",
                       media_type="application/json", check="load")  # fmt: skip
    shape = '{"id":number}' if step_ok else '{"detail":string}'
    steps = [("login", True, 200, '{"token":string}'), ("upload", step_ok, 201 if step_ok else 500, shape)]
    store.add_artifact(run_id, journey(HOSTILE, steps), name="journey-x.json", media_type="application/json",
                       check="e2e")  # fmt: skip
    store.add_artifact(run_id, junit(failing), name="junit.xml", media_type="application/xml", check="unit")
    rps = 100.0 if step_ok else 80.0
    store.add_metric(run_id, MetricRecord("load", "rps", rps, "per_second", "performance", "engine", T0))
    gates = [GateRecord("load.rps", "load.rps", ">= 90/s", "must", gate, 100.0, "per_second", ">= 90/s",
                        "performance", "engine")]  # fmt: skip
    decision = "GO" if gate == "pass" else "NO-GO"
    store.save_verdict(run_id, VerdictRecord(decision, 100.0, 80.0, {"performance": 100.0}, [], gates, T0))  # type: ignore[arg-type]
    store.finish_run(run_id, "completed")
    return run_id


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(f"sqlite:///{tmp_path / 'gonogo.db'}", artifacts_dir=tmp_path / "artifacts")


def test_a_slower_run_with_a_failing_step_differs_and_says_how(store: Store) -> None:
    a = record_run(store, median_us=10_000, step_ok=True, failing=set(), gate="pass", seed=1)
    b = record_run(store, median_us=12_000, step_ok=False, failing={"test_two"}, gate="fail", seed=2)

    comparison = compare_runs(store, a, b)

    assert comparison.regressed and not comparison.warnings
    latency = {change.distribution: change for change in comparison.latencies if change.check == "load"}
    slowed = latency["endpoint.list.latency"]
    assert slowed.classification == "slower" and slowed.low > 0 and slowed.p_value < 0.001
    assert 0.17 < (slowed.relative_shift or 0) < 0.23 and slowed.effect_size > 0.9
    upload = next(step for step in comparison.steps if step.step == "upload")
    assert upload.differences == [
        "passed (3/3) in A, failed (0/3) in B",
        "status 500 in B, never in A",
        "status 201 in A, never in B",
        'response shape in B, never in A: {"detail":string}',
        'response shape in A, never in B: {"id":number}',
    ]
    assert next(step for step in comparison.steps if step.step == "login").differences == []
    assert [(t.test, t.a, t.b) for t in comparison.tests] == [("suite::test_two", "passed", "failed")]
    assert comparison.tests_compared == 3
    (gate,) = comparison.changed_gates
    assert (gate.metric, gate.a_status, gate.b_status) == ("load.rps", "pass", "fail")
    (rps,) = [metric for metric in comparison.metrics if metric.name == "load.rps"]
    assert rps.difference == -20.0 and rps.relative == pytest.approx(-0.2)

    document = json.loads(comparison_json(comparison))
    assert document["schema"] == "gonogo.compare/1" and document["regressed"] is True
    assert document["summary"]["slower"] == len(comparison.slower) >= 2
    assert document["summary"]["functional_differences"] == 6


def test_two_unchanged_runs_are_the_same(store: Store) -> None:
    a = record_run(store, median_us=10_000, step_ok=True, failing={"test_one"}, gate="pass", seed=1)
    b = record_run(store, median_us=10_000, step_ok=True, failing={"test_one"}, gate="pass", seed=3)

    comparison = compare_runs(store, a, b)

    assert not comparison.regressed and comparison.functional_differences == []
    assert {change.classification for change in comparison.latencies} <= {
        "no significant difference",
        "significant but within tolerance",
    }
    assert "functional parity; 0 slower" in comparison_markdown(comparison)


def test_a_significant_shift_within_the_tolerance_is_not_slower() -> None:
    assert classify(0.0001, 0.0003, 0.0002, 1e-6, 0.010, tolerance=0.05, confidence=0.95) == (
        "significant but within tolerance"
    )
    assert classify(0.0001, 0.0003, 0.0002, 1e-6, 0.001, tolerance=0.05, confidence=0.95) == "slower"
    assert classify(-0.0003, -0.0001, -0.0002, 1e-6, 0.001, tolerance=0.05, confidence=0.95) == "faster"
    # an interval that excludes 0 on three values each, with p 0.08: not significant
    assert classify(0.0001, 0.0003, 0.0002, 0.08, 0.001, tolerance=0.05, confidence=0.95) == (
        "no significant difference"
    )


def test_hostile_names_are_text_in_html_and_markdown(store: Store) -> None:
    a = record_run(store, median_us=10_000, step_ok=True, failing=set(), gate="pass", seed=1)
    b = record_run(store, median_us=10_000, step_ok=False, failing=set(), gate="pass", seed=2)
    comparison = compare_runs(store, a, b)

    html = comparison_html(comparison)
    assert "<script>" not in html and '</style>"' not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&lt;/style&gt;&#34;" in html
    assert html.count("<style>") == 1 and html.count("</style>") == 1
    # in Markdown a `<` that could open a tag is backslash-escaped, no HTML entity
    markdown = comparison_markdown(comparison)
    assert re.search(r"(?<!\\)<(script|/style)", markdown) is None and "&lt;" not in markdown
    assert "\\<script>alert('x')\\</script>\\</style>\"" in markdown


def test_every_format_reads_as_people_write(store: Store) -> None:
    a = record_run(store, median_us=10_000, step_ok=True, failing=set(), gate="pass", seed=1)
    b = record_run(store, median_us=12_000, step_ok=True, failing=set(), gate="not_measured", seed=2)
    comparison = compare_runs(store, a, b)

    markdown = comparison_markdown(comparison)
    assert "| < 1e-300 |" in markdown  # the p-value of a 20% slowdown over 2000 values each underflows
    assert "| load.rps | >= 90/s | pass (100.0/s) | not measured |" in markdown
    html = comparison_html(comparison)
    assert "<td>2026-12-07 " in html and " UTC</td>" in html and "+00:00" not in html
    assert "<td>not measured</td>" in html and "not_measured" not in html


def test_nothing_in_common_is_refused_and_other_plans_are_warned_about(store: Store, tmp_path: Path) -> None:
    a = record_run(store, median_us=10_000, step_ok=True, failing=set(), gate="pass", seed=1)
    b = record_run(store, median_us=10_000, step_ok=True, failing=set(), gate="pass", seed=2, plan="other")
    assert "different plans: 'demo' (A) and 'other' (B)" in compare_runs(store, a, b).warnings[0]
    empty = store.begin_run(
        name="empty", plan_path="x.yaml", plan_hash="e" * 64, plan_text="", git_commit=None,
        host="elsewhere", tool_versions={}, owner_pid=1,
    )  # fmt: skip
    store.finish_run(empty, "completed")
    with pytest.raises(UserError, match="nothing in common to compare"):
        compare_runs(store, a, empty)


def test_the_terminal_names_what_is_slower_and_what_differs(store: Store) -> None:
    a = record_run(store, median_us=10_000, step_ok=True, failing=set(), gate="pass", seed=1)
    b = record_run(store, median_us=12_000, step_ok=False, failing=set(), gate="fail", seed=2)
    console = Console(record=True, width=200)
    print_comparison(compare_runs(store, a, b), console)
    text = console.export_text()
    assert "load.endpoint.list.latency is slower by +1.98 ms (+19.8%), interval [+1.92 ms, +1.98 ms]" in text
    assert "upload: passed (3/3) in A, failed (0/3) in B" in text and HOSTILE in text
    assert "Gates whose status differs" in text and "load.rps" in text
    assert text.rstrip().endswith("1 gate(s) changed status")


def test_thousands_of_distinct_values_are_bucketed_not_left_out(store: Store) -> None:
    rng = random.Random(5)
    runs = []
    for scale in (1.0, 1.2):
        run_id = store.begin_run(
            name="fine", plan_path="x.yaml", plan_hash="f" * 64, plan_text="", git_commit=None,
            host="elsewhere", tool_versions={}, owner_pid=1,
        )  # fmt: skip
        store.end_check(store.begin_check(run_id, "e2e", "journeys"), "completed")
        results = [
            {"iteration": n, "ok": True, "duration": 0.1, "steps": [
                {"step": "get", "ok": True, "latency": scale * rng.lognormvariate(-4, 0.3), "status": 200,
                 "attempts": 1, "shape": "empty"}]}
            for n in range(2500)
        ]  # fmt: skip
        document = {"journey": "j", "steps": ["get"], "results": results}
        store.add_artifact(run_id, json.dumps(document).encode(), name="journey-j.json", check="e2e")
        store.finish_run(run_id, "completed")
        runs.append(run_id)

    comparison = compare_runs(store, *runs)

    step = next(change for change in comparison.latencies if change.distribution == "j.get.latency")
    assert step.a_count == step.b_count == 2500 and comparison.notes == []
    assert step.classification == "slower" and 0.15 < (step.relative_shift or 0) < 0.25


def test_stored_test_outcomes_are_read_before_the_junit_reports(store: Store) -> None:
    runs: list[str] = []
    before = {"t1": ("passed", False), "t2": ("passed", False)}
    after = {"t1": ("failed", True), "t2": ("error", False)}
    for outcomes in (before, after):
        run_id = record_run(store, median_us=10_000, step_ok=True, failing=set(), gate="pass", seed=len(runs))
        tests = [{"id": test, "outcome": outcome, "reruns": int(rerun), "passed_on_rerun": rerun, "cases": 1}
                 for test, (outcome, rerun) in outcomes.items()]  # fmt: skip
        document = json.dumps({"format": 1, "tests": tests}).encode()
        store.add_artifact(run_id, document, name="test-outcomes.json", check="unit")
        runs.append(run_id)

    comparison = compare_runs(store, *runs)

    # t1 failed once and passed on its rerun: passed; t2's error is a failure
    assert [(t.test, t.a, t.b) for t in comparison.tests] == [("t2", "passed", "failed")]
    assert comparison.tests_compared == 2


def test_many_distributions_at_once_are_judged_on_holm_adjusted_p_values() -> None:
    """Between two identical runs, one of 35 distributions reads p = 0.044 by chance (the
    example's unchanged pair did): adjusted for the 35 it is no difference; p = 1e-40 still is."""
    from gonogo.report.comparison import LatencyChange, _holm

    def change(name: str, p: float, shift: float) -> LatencyChange:
        return LatencyChange(
            check="load", distribution=name, a_count=500, b_count=500, a_median=0.010, b_median=0.011,
            p_value=p, shift=shift, low=shift / 2, high=shift * 2, effect_size=0.6,
            classification="no significant difference",
        )  # fmt: skip

    quiet = [change(f"endpoint.e{i}.latency", 0.5, 0.0001) for i in range(33)]
    judged = _holm(
        [change("chance", 0.044, 0.001), change("real", 1e-40, 0.002), *quiet],
        tolerance=0.05,
        confidence=0.95,
    )
    by_name = {c.distribution: c for c in judged}
    assert by_name["chance"].classification == "no significant difference"
    assert by_name["chance"].p_adjusted == 1.0  # 0.044 x 34, at most 1
    assert by_name["real"].classification == "slower" and by_name["real"].p_adjusted == pytest.approx(35e-40)
    assert all(c.p_adjusted <= 1.0 for c in judged)
