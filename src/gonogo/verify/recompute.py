"""Recomputing a run's gates, score and verdict from its stored evidence and stored plan.

The same functions the run uses (`verdict.evaluate_gates`, `verdict.decide`): one rule, one
place. Each difference from the stored verdict is named.
"""

from __future__ import annotations

__all__ = ["recompute_verdict"]

import hashlib
import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from gonogo.errors import PlanError, UserError
from gonogo.evidence import (
    CheckRecord,
    GateRecord,
    MetricRecord,
    RunRecord,
    SampleSeries,
    Store,
    VerdictRecord,
)
from gonogo.plan import parse_plan
from gonogo.verdict import check_series, decide, evaluate_gates
from gonogo.verdict.baseline import (
    COMPARISON_ARTIFACT,
    BaselineComparison,
    BaselineRow,
    gather_baseline,
    run_distributions,
)

_GATE_FIELDS = ("metric", "pattern", "expr", "severity", "value", "unit", "threshold", "dimension", "source")


def recompute_verdict(
    run: RunRecord,
    plan_text: str,
    metrics: Sequence[MetricRecord],
    samples: Sequence[SampleSeries],
    stored: VerdictRecord,
    checks: Sequence[CheckRecord] = (),
    source: Store | None = None,
    comparison: BaselineComparison | None = None,
) -> list[str]:
    """The mismatches between the stored verdict and the one its evidence gives now.

    `source` (the store): where the relative gates' baseline runs are read, the same runs the
    stored verdict names, with their metrics and distributions as they are now. `comparison`:
    the run's stored `baseline-comparison.json`, whose every number is compared too."""
    mismatches: list[str] = []
    if hashlib.sha256(plan_text.encode()).hexdigest() != run.plan_hash:
        mismatches.append(
            f"the stored plan text does not match the run's plan hash (sha256 {run.plan_hash[:12]}…): "
            "the plan kept in the store was changed"
        )
    try:
        plan = parse_plan(plan_text, Path(run.plan_path))
    except PlanError as error:
        return [
            *mismatches,
            f"the verdict cannot be recomputed: the stored plan does not load with this gonogo: {error}",
        ]
    baseline = None
    rows: list[BaselineRow] = []
    if stored.baseline is not None:
        if source is None:
            return [
                *mismatches,
                "the verdict compared with a baseline, and no store was given to read it from",
            ]
        mismatches += [
            f"baseline run {gone}, which the verdict compared with, is no longer in the store: "
            "its relative gates cannot be recomputed as they were"
            for gone in stored.baseline.runs
            if not _in_store(source, gone)
        ]
        baseline = gather_baseline(source, stored.baseline, plan.baseline.confidence, run.plan_hash)
    gates = evaluate_gates(
        plan.gates,
        metrics,
        check_series(samples),
        checks,
        baseline=baseline,
        distributions=run_distributions(source, run.id) if baseline and baseline.runs and source else None,
        comparisons=rows,
    )
    if stored.baseline is not None:
        mismatches += _comparison_differences(comparison, rows)
    fresh = decide(
        gates, plan.score, run_problems=stored.run_problems, signoff=plan.signoff, baseline=stored.baseline
    )
    mismatches += _verdict_differences(stored, fresh)
    mismatches += _gate_differences(stored.gates, fresh.gates)
    return mismatches


def _comparison_differences(stored: BaselineComparison | None, fresh: Sequence[BaselineRow]) -> list[str]:
    """The stored baseline comparison's numbers against those recomputed now."""
    if stored is None:
        return [f"{COMPARISON_ARTIFACT}: the run compared with a baseline, and its comparison is missing"]
    found: list[str] = []
    if len(stored.rows) != len(fresh):
        found.append(f"{COMPARISON_ARTIFACT}: {len(stored.rows)} rows stored, {len(fresh)} recomputed")
    for mine, theirs in zip(stored.rows, fresh, strict=False):
        ours, recomputed = asdict(mine), asdict(theirs)
        for field, value in ours.items():
            again = recomputed[field]
            same = (
                _same_number(value, again)
                if isinstance(value, float) and isinstance(again, float)
                else value == again
            )
            if not same:
                found.append(
                    f"{COMPARISON_ARTIFACT}: {theirs.metric} {theirs.expr}: stored {field} {value!r}, "
                    f"recomputed {again!r}"
                )
    return found


def _in_store(store: Store, run_id: str) -> bool:
    try:
        return store.resolve_run(run_id).id == run_id
    except UserError:
        return False


def _verdict_differences(stored: VerdictRecord, fresh: VerdictRecord) -> list[str]:
    found: list[str] = []
    if stored.decision != fresh.decision:
        found.append(f"verdict: stored verdict says {stored.decision}, recomputed {fresh.decision}")
    if not _same_number(stored.score, fresh.score):
        found.append(f"verdict score: stored {_number(stored.score)}, recomputed {_number(fresh.score)}")
    if not _same_number(stored.minimum_score, fresh.minimum_score):
        found.append(
            f"verdict minimum score: stored {stored.minimum_score:g}, recomputed {fresh.minimum_score:g}"
        )
    for name in sorted(set(stored.dimensions) | set(fresh.dimensions)):
        mine, theirs = stored.dimensions.get(name), fresh.dimensions.get(name)
        if not _same_number(mine, theirs):
            found.append(f"dimension {name}: stored score {_number(mine)}, recomputed {_number(theirs)}")
    if stored.reasons != fresh.reasons:
        missing = [reason for reason in fresh.reasons if reason not in stored.reasons]
        extra = [reason for reason in stored.reasons if reason not in fresh.reasons]
        detail = "; ".join(
            [
                *(f"recomputed only: {reason!r}" for reason in missing),
                *(f"stored only: {reason!r}" for reason in extra),
            ]
        )
        found.append(f"verdict reasons differ ({detail or 'in their order'})")
    if stored.signoff != fresh.signoff:
        found.append(
            f"required sign-offs: stored {_requirement(stored)}, the stored plan asks {_requirement(fresh)}"
        )
    return found


def _gate_differences(stored: Sequence[GateRecord], fresh: Sequence[GateRecord]) -> list[str]:
    found: list[str] = []
    if len(stored) != len(fresh):
        found.append(f"gates: the stored verdict has {len(stored)}, the plan and evidence give {len(fresh)}")
    for mine, theirs in zip(stored, fresh, strict=False):
        name = f"gate {theirs.metric}" + (f" {theirs.expr}" if mine.metric == theirs.metric else "")
        if mine.status != theirs.status:
            found.append(f"{name}: stored verdict says {mine.status}, recomputed {theirs.status}")
        ours, recomputed = asdict(mine), asdict(theirs)
        for field in _GATE_FIELDS:
            if field == "value" and _same_number(mine.value, theirs.value):
                continue
            if ours[field] != recomputed[field]:
                found.append(f"{name}: stored {field} {ours[field]!r}, recomputed {recomputed[field]!r}")
    return found


def _same_number(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)


def _number(value: float | None) -> str:
    return "not measured" if value is None else f"{value:g}"


def _requirement(verdict: VerdictRecord) -> str:
    if verdict.signoff is None:
        return "none"
    return f"{', '.join(verdict.signoff.roles)} (confidence at least {verdict.signoff.min_confidence})"
