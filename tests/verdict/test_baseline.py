"""Relative gates against a baseline, on runs as the store keeps them: the load check's
histograms stored as `load-histograms.json`, read back with `run_distributions`, compared with
Mann-Whitney U and the Hodges-Lehmann shift; other figures against the baseline runs' median."""

from __future__ import annotations

import json
import os
import socket
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
from gonogo.verdict.baseline import BaselineComparison, BaselineRow, gather_baseline, run_distributions

REQUESTS = 5_000


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(f"sqlite:///{tmp_path / 'gonogo.db'}", artifacts_dir=tmp_path / "artifacts") as opened:
        yield opened


def load_run(store: Store, *, scale: float, seed: int, rps: float = 100.0) -> str:
    """A run whose load check answered REQUESTS requests, lognormal around 40 ms times `scale`,
    stored as the load check stores them (µs HdrHistograms, base64, in load-histograms.json)."""
    run_id = store.begin_run(
        name="demo", plan_path="/p/gonogo.yaml", plan_hash="h", plan_text="name: demo\n", git_commit=None,
        host=socket.gethostname(), tool_versions={}, owner_pid=os.getpid(),
    )  # fmt: skip
    histogram = hist.new_histogram()
    rng = np.random.default_rng(seed)
    for latency in rng.lognormal(np.log(40_000), 0.4, REQUESTS) * scale:
        histogram.record_value(int(latency))
    encoded = hist.encode(histogram)
    document = {"overall": {"corrected": encoded, "uncorrected": encoded}, "endpoints": {}}
    ref = store.add_artifact(run_id, json.dumps(document).encode(), name="load-histograms.json", check="load")
    now = datetime.now(UTC)
    p95 = histogram.get_value_at_percentile(95) / 1e6
    for name, value, unit in (("latency.p95", p95, "seconds"), ("rps", rps, "per_second")):
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
    p95 = gate("load.latency.p95", "<= +10% baseline")

    (row,) = judge(store, [baseline], slower, p95)
    assert row.status == "fail" and row.method == "mann-whitney" and row.significant
    assert row.low is not None and row.low > 0 and row.p_value is not None and row.p_value < 1e-6
    assert row.relative_shift is not None and 0.15 < row.relative_shift < 0.25
    assert row.n1 == row.n2 == REQUESTS and row.effect_size is not None and row.effect_size > 0.6

    (row,) = judge(store, [baseline], same, p95)
    assert row.status == "pass" and not row.significant
    assert row.low is not None and row.high is not None and row.low <= 0 <= row.high

    # 20% slower is within an allowance of 30%: significant, but not beyond the limit
    (row,) = judge(store, [baseline], slower, gate("load.latency.p95", "<= +30% baseline"))
    assert row.status == "pass" and row.significant

    # a gate that asks for an improvement passes only on evidence of it
    faster = gate("load.latency.p95", "<= -10% baseline")
    (row,) = judge(store, [baseline], same, faster)
    assert row.status == "fail" and not row.significant
    (row,) = judge(store, [slower], baseline, faster)  # 1/1.2: 17% faster, the interval says so
    assert row.status == "pass" and row.high is not None and row.high < 0


def test_the_gate_says_p_value_shift_interval_and_effect_size(store: Store) -> None:
    baseline, slower = load_run(store, scale=1.0, seed=1), load_run(store, scale=1.2, seed=2)
    choice = BaselineChoice("pinned", [baseline], "run pinned")
    (result,) = evaluate_gates(
        [gate("load.latency.p95", "<= +10% baseline")],
        store.metrics(slower),
        baseline=gather_baseline(store, choice),
        distributions=run_distributions(store, slower),
    )
    assert result.status == "fail" and result.unit == "seconds" and result.value is not None
    for said in (
        "Mann-Whitney U",
        f"baseline run {baseline} (pinned)",
        "p = ",
        "95% CI [+",
        "effect size 0.",
    ):
        assert said in result.source
    assert result.threshold.startswith("shift <= +") and "of the baseline median" in result.threshold


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
    baseline, candidate = load_run(store, scale=1.0, seed=1), load_run(store, scale=1.2, seed=2)
    plan = parse_plan(plan_text, Path("/p/gonogo.yaml"))
    choice = BaselineChoice("pinned", [baseline], "run pinned")
    rows: list[BaselineRow] = []
    gates = evaluate_gates(
        plan.gates,
        store.metrics(candidate),
        baseline=gather_baseline(store, choice),
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
            replace(run, plan_hash=sha256(plan_text.encode()).hexdigest()),
            plan_text, store.metrics(candidate), [], stored, source=store, comparison=stored_comparison,
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
