"""Relative gates against a baseline, on runs as the store keeps them: the load check's
histograms stored as `load-histograms.json`, read back with `run_distributions`, compared with
Mann-Whitney U and the Hodges-Lehmann shift; other figures against the baseline runs' median."""

from __future__ import annotations

import json
import os
import re
import socket
import textwrap
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from hashlib import sha256
from pathlib import Path

import numpy as np
import pytest

from gonogo.evidence import BaselineChoice, MetricRecord, Store
from gonogo.loadgen import histogram as hist
from gonogo.plan.model import GateSpec
from gonogo.threshold import parse_threshold
from gonogo.verdict import evaluate_gates
from gonogo.verdict.baseline import (
    Baseline,
    BaselineComparison,
    BaselineRow,
    BaselineRun,
    gather_baseline,
    judge_relative,
    run_distributions,
)

REQUESTS = 5_000


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(f"sqlite:///{tmp_path / 'gonogo.db'}", artifacts_dir=tmp_path / "artifacts") as opened:
        yield opened


def load_run(
    store: Store,
    *,
    scale: float,
    seed: int,
    rps: float = 100.0,
    tail: float = 0.0,
    plan_hash: str = "h",
    centre: float = 40_000,
    spread: float = 0.4,
) -> str:
    """A run whose load check answered REQUESTS requests, lognormal around `centre` µs times
    `scale`, every tenth of them `tail` µs slower, stored as the load check stores them (µs
    HdrHistograms, base64, in load-histograms.json)."""
    run_id = store.begin_run(
        name="demo", plan_path="/p/gonogo.yaml", plan_hash=plan_hash, plan_text="name: demo\n",
        git_commit=None, host=socket.gethostname(), tool_versions={}, owner_pid=os.getpid(),
    )  # fmt: skip
    histogram = hist.new_histogram()
    rng = np.random.default_rng(seed)
    for index, latency in enumerate(rng.lognormal(np.log(centre), spread, REQUESTS) * scale):
        histogram.record_value(int(latency + (tail if index % 10 == 0 else 0)))
    encoded = hist.encode(histogram)
    document = {"overall": {"corrected": encoded, "uncorrected": encoded}, "endpoints": {}}
    ref = store.add_artifact(run_id, json.dumps(document).encode(), name="load-histograms.json", check="load")
    now = datetime.now(UTC)
    figures = [(f"latency.p{q}", histogram.get_value_at_percentile(q) / 1e6, "seconds") for q in (50, 95, 99)]
    figures += [("latency.p99_9", histogram.get_value_at_percentile(99.9) / 1e6, "seconds")]
    figures += [("latency.max", histogram.get_max_value() / 1e6, "seconds"), ("rps", rps, "per_second")]
    for name, value, unit in figures:
        store.add_metric(
            run_id,
            MetricRecord(
                "load", name, value, unit, "performance", "load of /", now, artifact_sha256=ref.sha256
            ),
        )
    store.finish_run(run_id, "completed")
    return run_id


def gate(metric: str, expr: str) -> GateSpec:
    return GateSpec(metric=metric, expr=parse_threshold(expr))


def judge(store: Store, baseline_runs: list[str], candidate: str, *gates: GateSpec) -> list[BaselineRow]:
    choice = BaselineChoice("pinned" if len(baseline_runs) == 1 else "recent", baseline_runs, "the test's")
    rows: list[BaselineRow] = []
    results = evaluate_gates(
        list(gates),
        store.metrics(candidate),
        baseline=gather_baseline(store, choice),
        distributions=run_distributions(store, candidate),
        comparisons=rows,
    )
    assert [r.status for r in results] == [row.status for row in rows]
    assert [r.source for r in results] != []
    return rows


def test_a_slowdown_of_20_percent_fails_a_gate_of_10_percent_and_no_change_passes(store: Store) -> None:
    baseline = load_run(store, scale=1.0, seed=1)
    slower = load_run(store, scale=1.2, seed=2)
    same = load_run(store, scale=1.0, seed=3)
    p95, median = gate("load.latency.p95", "<= +10% baseline"), gate("load.latency.p50", "<= +10% baseline")

    quantile, location = judge(store, [baseline], slower, p95, median)
    assert quantile.status == location.status == "fail"
    assert quantile.method == "quantile" and quantile.statistic == "p95" and location.method == "mann-whitney"
    assert quantile.candidate_low is not None and quantile.limit is not None
    assert quantile.candidate_low > quantile.limit  # this run's whole interval is above the limit
    for row in (quantile, location):  # the whole distribution's statistics are in both rows
        assert row.significant and row.low is not None and row.low > 0
        assert row.p_value is not None and row.p_value < 1e-6
        assert row.n1 == row.n2 == REQUESTS and row.effect_size is not None and row.effect_size > 0.6
    assert location.relative_shift is not None and 0.15 < location.relative_shift < 0.25

    quantile, location = judge(store, [baseline], same, p95, median)
    assert quantile.status == location.status == "pass" and not location.significant
    assert location.low is not None and location.high is not None and location.low <= 0 <= location.high

    # 20% slower is within an allowance of 30%: significant, but not beyond the limit
    loose = (gate("load.latency.p95", "<= +30% baseline"), gate("load.latency.p50", "<= +30% baseline"))
    assert [row.status for row in judge(store, [baseline], slower, *loose)] == ["pass", "pass"]

    # a gate that asks for an improvement passes only on evidence of it
    faster = (gate("load.latency.p95", "<= -10% baseline"), gate("load.latency.p50", "<= -10% baseline"))
    assert [row.status for row in judge(store, [baseline], same, *faster)] == ["fail", "fail"]
    quantile, location = judge(store, [slower], baseline, *faster)  # 1/1.2: 17% faster
    assert quantile.status == location.status == "pass"
    assert location.high is not None and location.high < 0
    assert quantile.candidate_high is not None and quantile.limit is not None
    assert quantile.candidate_high < quantile.limit


def test_a_percentile_gate_judges_that_percentile_not_the_median(store: Store) -> None:
    """One request in ten 30 ms slower: the p95 moves from ~5.6 ms to ~34 ms and the median by
    3%; a faster median with that tail is still a slower p95. Each gate judges its statistic."""
    fast = {"centre": 4_000, "spread": 0.2}  # ~4 ms, as a small service answers
    baseline = load_run(store, scale=1.0, seed=1, **fast)
    tail = load_run(store, scale=1.0, seed=2, tail=30_000, **fast)
    faster_with_tail = load_run(store, scale=0.85, seed=3, tail=30_000, **fast)
    p95, p99 = gate("load.latency.p95", "<= +10% baseline"), gate("load.latency.p99", "<= +10% baseline")
    p50 = gate("load.latency.p50", "<= +10% baseline")

    rows = judge(store, [baseline], tail, p95, p99, p50)
    assert [row.status for row in rows] == ["fail", "fail", "pass"], [row.note for row in rows]
    # p99.9 of 5000 values: its interval's upper rank is past the largest value, so not measured
    (row,) = judge(store, [baseline], tail, gate("load.latency.p99_9", "<= +10% baseline"))
    assert row.status == "not_measured" and "interval of the p99_9 takes at least 5661" in row.note
    rows = judge(store, [baseline], faster_with_tail, p95, p50)
    assert [row.status for row in rows] == ["fail", "pass"]
    assert rows[1].shift is not None and rows[1].shift < 0  # its median is faster
    # the other way round: a run without the tail against one with it is no regression of p95
    (row,) = judge(store, [tail], baseline, p95)
    assert row.status == "pass"


def test_the_gate_shows_the_statistic_its_limit_and_the_statistics(store: Store) -> None:
    baseline = load_run(store, scale=1.0, seed=1, centre=4_000, spread=0.2)
    slower = load_run(store, scale=1.0, seed=2, tail=30_000, centre=4_000, spread=0.2)
    choice = BaselineChoice("pinned", [baseline], "run pinned")
    p95, p50 = evaluate_gates(
        [gate("load.latency.p95", "<= +10% baseline"), gate("load.latency.p50", "<= +10% baseline")],
        store.metrics(slower),
        baseline=gather_baseline(store, choice),
        distributions=run_distributions(store, slower),
    )
    recorded = {metric.name: metric.value for metric in store.metrics(slower)}
    assert p95.status == "fail" and p95.unit == "seconds" and p95.value == recorded["latency.p95"]
    assert p50.status == "pass" and p50.value == recorded["latency.p50"]
    for said in (
        "this run's p95 ",
        f"baseline run {baseline} (pinned)",
        "Mann-Whitney U p = ",
        "95% CI [+",
        "effect size 0.",
    ):
        assert said in p95.source, p95.source
    assert re.fullmatch(
        r"<= [0-9.]+ ms \(\+10% of baseline p95 [0-9.]+ ms \[[0-9.]+ ms, [0-9.]+ ms\], from its upper end; "
        r"fails only when this run's p95 is above it with 95% confidence\)",
        p95.threshold,
    ), p95.threshold
    assert p50.threshold.startswith("<= ") and "(+10% of the baseline median " in p50.threshold


def test_a_relative_gate_on_a_maximum_or_on_too_few_values_is_refused(store: Store, tmp_path: Path) -> None:
    from gonogo.errors import PlanError
    from gonogo.plan import parse_plan

    baseline, candidate = load_run(store, scale=1.0, seed=1), load_run(store, scale=1.0, seed=2)
    (row,) = judge(store, [baseline], candidate, gate("load.latency.max", "<= +10% baseline"))
    assert row.status == "not_measured" and "….p99" in row.note
    plan = """
        system: {base_url: "http://127.0.0.1:1"}
        checks:
          e2e: {kind: journeys, journeys: {home: {steps: [{name: index, request: {path: /}}]}}}
        gates: {e2e.home.index.latency.max: "<= +10% baseline"}
    """
    with pytest.raises(PlanError) as raised:
        parse_plan(textwrap.dedent(plan), tmp_path / "gonogo.yaml")
    assert "maximum or minimum cannot be judged on evidence" in str(raised.value)
    # 30 iterations give a step's latency 30 values a run: a p95 takes 110, the median is judged whole
    few = plan.replace("{path: /}}]}}}", "{path: /}}], iterations: 30}}}")
    few = few.replace(".latency.max", ".latency.p95")
    with pytest.raises(PlanError) as raised:
        parse_plan(textwrap.dedent(few), tmp_path / "gonogo.yaml")
    said = "takes at least 110 values, and this check gives at most 30 a run: it could only end not measured"
    assert said in str(raised.value)
    parse_plan(textwrap.dedent(few.replace(".p95", ".p50")), tmp_path / "gonogo.yaml")
    parse_plan(textwrap.dedent(few.replace("iterations: 30", "iterations: 110")), tmp_path / "gonogo.yaml")


def test_too_few_values_for_a_percentile_is_not_measured(store: Store) -> None:
    few = {0.001 * (1 + i / 100): 1 for i in range(100)}
    choice = BaselineChoice("pinned", ["b"], "run pinned")
    baseline = Baseline(choice, [BaselineRun("b", {}, {"load.latency": few})])
    metric = MetricRecord("load", "latency.p99", 0.002, "seconds", "performance", "x", datetime.now(UTC))
    judged = judge_relative(
        gate("load.latency.p99", "<= +10% baseline"), "load.latency.p99", metric, baseline,
        {"load.latency": few},
    )  # fmt: skip
    assert judged.status == "not_measured"
    said = "this run has 100, the baseline 100, and a 95% interval of the p99 takes at least 563"
    assert said in judged.source


def test_a_baseline_run_of_another_plan_version_is_said(store: Store) -> None:
    baseline = load_run(store, scale=1.0, seed=1, plan_hash="a" * 64)
    candidate = load_run(store, scale=1.0, seed=2, plan_hash="b" * 64)
    gathered = gather_baseline(store, BaselineChoice("pinned", [baseline], "run pinned"), plan_hash="b" * 64)
    said = (
        f"baseline run {baseline} ran another version of the plan "
        "(sha256 aaaaaaaaaaaa…; this run's bbbbbbbbbbbb…)"
    )
    assert said in gathered.detail
    (result,) = evaluate_gates(
        [gate("load.latency.p95", "<= +10% baseline")], store.metrics(candidate),
        baseline=gathered, distributions=run_distributions(store, candidate),
    )  # fmt: skip
    assert said in result.source and result.status == "pass"
    same = gather_baseline(store, BaselineChoice("pinned", [baseline], "run pinned"), plan_hash="a" * 64)
    assert same.plan_note == ""


def test_several_baseline_runs_are_merged(store: Store) -> None:
    runs = [load_run(store, scale=1.0, seed=seed) for seed in (1, 2, 3)]
    slower = load_run(store, scale=1.2, seed=4)
    (row,) = judge(store, runs, slower, gate("load.latency.p95", "<= +10% baseline"))
    assert row.n1 == 3 * REQUESTS and row.n2 == REQUESTS and row.status == "fail"
    assert row.baseline_runs == runs


def test_other_figures_compare_with_the_baseline_runs_median(store: Store) -> None:
    runs = [load_run(store, scale=1.0, seed=1, rps=rps) for rps in (90.0, 100.0, 200.0)]
    candidate = load_run(store, scale=1.0, seed=2, rps=92.0)
    passing, failing = judge(
        store, runs, candidate, gate("load.rps", ">= -10% baseline"), gate("load.rps", ">= -5% baseline")
    )
    assert passing.method == "median" and passing.baseline_value == 100.0 and passing.status == "pass"
    assert passing.limit == pytest.approx(90.0) and failing.limit == pytest.approx(95.0)
    assert failing.status == "fail" and failing.candidate_value == 92.0


def test_no_baseline_or_a_baseline_without_the_figure_is_not_measured(store: Store) -> None:
    candidate = load_run(store, scale=1.0, seed=1)
    rows: list[BaselineRow] = []
    (result,) = evaluate_gates(
        [gate("load.latency.p95", "<= +10% baseline")],
        store.metrics(candidate),
        baseline=gather_baseline(store, BaselineChoice("none", [], "no run is pinned")),
        distributions=run_distributions(store, candidate),
        comparisons=rows,
    )
    assert result.status == "not_measured" and "no baseline (no run is pinned)" in result.source
    assert "gonogo baseline set RUN" in result.source and rows[0].method == "none"

    bare = store.begin_run(
        name="demo", plan_path="p", plan_hash="h", plan_text="t", git_commit=None, host="h",
        tool_versions={}, owner_pid=1,
    )  # fmt: skip
    store.finish_run(bare, "completed")
    latency, rps = judge(
        store,
        [bare],
        candidate,
        gate("load.latency.p95", "<= +10% baseline"),
        gate("load.rps", ">= -10% baseline"),
    )
    assert latency.status == rps.status == "not_measured"
    rows = []
    (missing,) = evaluate_gates(
        [gate("load.requests", "<= +10% baseline")], store.metrics(candidate), comparisons=rows,
        baseline=gather_baseline(store, BaselineChoice("pinned", [bare], "pinned")),
    )  # fmt: skip
    assert missing.status == "not_measured" and rows[0].note.startswith("this run: check load ran")

    # a latency percentile without its distribution is never compared as a bare ratio
    store.add_metric(
        bare, MetricRecord("load", "latency.p95", 0.05, "seconds", "performance", "x", datetime.now(UTC))
    )
    (percentile,) = evaluate_gates(
        [gate("load.latency.p95", "<= +10% baseline")], store.metrics(bare),
        baseline=gather_baseline(store, BaselineChoice("pinned", [candidate], "pinned")),
        distributions=run_distributions(store, bare),
    )  # fmt: skip
    assert percentile.status == "not_measured" and "never as a bare ratio" in percentile.source
    assert f"baseline run {bare} stored no distribution of load.latency" in latency.note
    assert f"baseline run {bare} did not record load.rps" in rps.note


def test_verify_recomputes_relative_gates_with_the_same_baseline_runs(store: Store) -> None:
    """The verdict keeps which runs it compared with; `recompute_verdict` reads those again and
    finds the same verdict, and names the difference when a baseline run's evidence changed."""
    from gonogo.plan import parse_plan
    from gonogo.verdict import decide
    from gonogo.verify.recompute import recompute_verdict

    plan_text = 'gates:\n  load.latency.p95: "<= +10% baseline"\n  load.rps: ">= -10% baseline"\n'
    plan_hash = sha256(plan_text.encode()).hexdigest()
    baseline = load_run(store, scale=1.0, seed=1, plan_hash=plan_hash)
    candidate = load_run(store, scale=1.2, seed=2, plan_hash=plan_hash)
    plan = parse_plan(plan_text, Path("/p/gonogo.yaml"))
    choice = BaselineChoice("pinned", [baseline], "run pinned")
    rows: list[BaselineRow] = []
    gates = evaluate_gates(
        plan.gates,
        store.metrics(candidate),
        baseline=gather_baseline(store, choice, plan_hash=plan_hash),
        distributions=run_distributions(store, candidate),
        comparisons=rows,
    )
    # as the run stores it and the reports read it back
    comparison = BaselineComparison.from_json(
        json.loads(BaselineComparison("pinned", [baseline], "", 0.95, rows).dumps())
    )
    verdict = decide(gates, plan.score, baseline=choice)
    assert [g.status for g in verdict.gates] == ["fail", "pass"] and verdict.decision == "NO-GO"
    store.save_verdict(candidate, verdict)
    run, stored = store.resolve_run(candidate), store.verdict(candidate)
    assert stored is not None and stored.baseline == choice

    def recompute(stored_comparison: BaselineComparison | None = comparison) -> list[str]:
        assert stored is not None
        return recompute_verdict(
            run, plan_text, store.metrics(candidate), [], stored, source=store, comparison=stored_comparison,
        )  # fmt: skip

    assert recompute() == []
    edited = replace(comparison, rows=[replace(comparison.rows[0], p_value=0.5), comparison.rows[1]])
    assert recompute(edited) == [
        f"baseline-comparison.json: load.latency.p95 <= +10% baseline: stored p_value 0.5, "
        f"recomputed {comparison.rows[0].p_value!r}"
    ]
    store.add_metric(  # the baseline's rps recorded again, higher: the candidate's 100/s now fails
        baseline,
        MetricRecord("load", "rps", 200.0, "per_second", "performance", "load", datetime.now(UTC)),
    )
    found = recompute()
    assert "gate load.rps >= -10% baseline: stored verdict says pass, recomputed fail" in found
    store.delete_runs([baseline])
    gone = f"baseline run {baseline}, which the verdict compared with, is no longer in the store"
    assert any(gone in mismatch for mismatch in recompute())
