"""From gate results to a score and a decision.

Score of a dimension: the mean over its measured gates of 1 (pass), 0.5 (a `should`
gate missed) or 0 (fail), as a percentage. Overall: the weighted mean over measured
dimensions only. A dimension with no measured gate is listed as not measured and never
counted, so nothing unmeasured can raise the score.
"""

from __future__ import annotations

__all__ = ["decide"]

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Literal

from gonogo.evidence.records import BaselineChoice, GateRecord, SignoffRequirement, VerdictRecord
from gonogo.plan.model import DIMENSIONS, Score, Signoff
from gonogo.verdict.gates import describe_gate

_CREDIT = {"pass": 1.0, "warn": 0.5, "fail": 0.0}


def dimension_scores(gates: Sequence[GateRecord]) -> dict[str, float | None]:
    credits: dict[str, list[float]] = {name: [] for name in DIMENSIONS}
    for gate in gates:
        if gate.status in _CREDIT:
            credits.setdefault(gate.dimension, []).append(_CREDIT[gate.status])
    return {name: (100.0 * sum(values) / len(values) if values else None) for name, values in credits.items()}


def overall_score(dimensions: Mapping[str, float | None], weights: Mapping[str, float]) -> float | None:
    weighted = [(weights.get(name, 1.0), value) for name, value in dimensions.items() if value is not None]
    total_weight = sum(weight for weight, _ in weighted)
    if total_weight <= 0:
        return None
    return sum(weight * value for weight, value in weighted) / total_weight


def decide(
    gates: Sequence[GateRecord],
    score: Score,
    *,
    run_problems: Sequence[str] = (),
    signoff: Signoff | None = None,
    baseline: BaselineChoice | None = None,
) -> VerdictRecord:
    """GO only when every must gate passes and the overall score reaches the minimum.

    `run_problems` are reasons the run itself was incomplete (a check that crashed,
    an interrupted run); each one makes the verdict NO-GO. `signoff`: the plan's required
    sign-offs, kept with the verdict (a GO is released once they are given, verdict/signoff.py).
    `baseline`: the earlier runs the relative gates were compared with, kept for `gonogo verify`.
    """
    dimensions = dimension_scores(gates)
    overall = overall_score(dimensions, score.weights)
    reasons: list[str] = list(run_problems)
    if not gates:
        reasons.append("the plan has no gates: there is nothing to decide GO on")
    for gate in gates:
        if gate.severity == "must" and gate.status != "pass":
            reasons.append(describe_gate(gate))
    if gates and overall is None:
        reasons.append("no gate could be measured, so there is no score")
    elif overall is not None and overall < score.minimum:
        reasons.append(f"overall score {overall:.1f} is below the minimum {score.minimum:g}")
    decision: Literal["GO", "NO-GO"] = "NO-GO" if reasons else "GO"
    if decision == "GO":
        reasons = ["every must gate passed"] + [
            describe_gate(gate) for gate in gates if gate.status in ("warn", "not_measured")
        ]
        reasons.append(f"overall score {overall:.1f} reaches the minimum {score.minimum:g}")
    return VerdictRecord(
        decision=decision,
        score=overall,
        minimum_score=score.minimum,
        dimensions=dimensions,
        reasons=reasons,
        gates=list(gates),
        decided_at=datetime.now(UTC),
        run_problems=list(run_problems),
        signoff=(
            None
            if signoff is None or not signoff.roles
            else SignoffRequirement(roles=list(signoff.roles), min_confidence=signoff.min_confidence)
        ),
        baseline=baseline,
    )
