"""Evaluating gates against measured metrics. A gate with no metric is *not measured*."""

from __future__ import annotations

__all__ = ["evaluate_gates"]

from collections.abc import Sequence
from fnmatch import fnmatchcase

from gonogo.evidence.records import GateRecord, GateStatus, MetricRecord
from gonogo.plan.model import GateSpec
from gonogo.units import format_value

_GLOB_CHARACTERS = "*?["


def evaluate_gates(gates: Sequence[GateSpec], metrics: Sequence[MetricRecord]) -> list[GateRecord]:
    """One result per gate and matched metric; globs expand to every metric they match."""
    latest: dict[str, MetricRecord] = {}
    for metric in metrics:  # recorded order: a metric measured twice keeps its last value
        latest[metric.full_name] = metric
    results: list[GateRecord] = []
    for gate in gates:
        if any(c in gate.metric for c in _GLOB_CHARACTERS):
            names = sorted(name for name in latest if fnmatchcase(name, gate.metric))
            if not names:
                results.append(_not_measured(gate, gate.metric, "no measured metric matches this pattern"))
            results.extend(_evaluate(gate, latest[name]) for name in names)
        elif gate.metric in latest:
            results.append(_evaluate(gate, latest[gate.metric]))
        else:
            results.append(_not_measured(gate, gate.metric, "no check recorded it"))
    return results


def _not_measured(gate: GateSpec, metric: str, why: str) -> GateRecord:
    return GateRecord(
        metric=metric,
        pattern=gate.metric,
        expr=gate.expr.text,
        severity=gate.severity,
        status="not_measured",
        value=None,
        unit=None,
        threshold=gate.expr.describe(),
        dimension=gate.dimension or "unknown",
        source=why,
    )


def _evaluate(gate: GateSpec, metric: MetricRecord) -> GateRecord:
    threshold = gate.expr
    status: GateStatus
    source = metric.source
    if threshold.relative_to_baseline:
        # Baselines come from earlier runs; none is wired in yet, and a relative gate
        # with nothing to compare with must say so rather than pass.
        status, source = "not_measured", f"no baseline to compare with ({metric.source})"
    elif not threshold.compatible_with(metric.unit):
        status = "fail"
        source = (
            f"the threshold is in {threshold.unit} but {metric.full_name} is measured in "
            f"{metric.unit} ({metric.source})"
        )
    elif threshold.holds(metric.value):
        status = "pass"
    else:
        status = "fail" if gate.severity == "must" else "warn"
    return GateRecord(
        metric=metric.full_name,
        pattern=gate.metric,
        expr=threshold.text,
        severity=gate.severity,
        status=status,
        value=metric.value,
        unit=metric.unit,
        threshold=threshold.describe(metric_unit=metric.unit),
        dimension=gate.dimension or metric.dimension,
        source=source,
        metric_id=metric.id,
    )


def describe_gate(gate: GateRecord) -> str:
    """One line a person reads in a list of reasons."""
    value = format_value(gate.value, gate.unit or "number")
    if gate.status == "not_measured":
        return f"{gate.metric} {gate.expr}: not measured ({gate.source})"
    verb = {"pass": "passes", "fail": "fails", "warn": "misses"}[gate.status]
    return f"{gate.metric} = {value} {verb} {gate.expr} (from {gate.source})"
