"""Evaluating gates against measured metrics. A gate with no metric is *not measured*.

A gate with a timeframe (`"< 500ms for 10s"`) is evaluated on the per-second series of its
metric: it fails when the series is in breach for that long without a break.
"""

from __future__ import annotations

__all__ = ["check_series", "evaluate_gates"]

from collections.abc import Mapping, Sequence
from datetime import datetime
from fnmatch import fnmatchcase

from gonogo.evidence.records import GateRecord, GateStatus, MetricRecord, SampleSeries
from gonogo.plan.model import GateSpec
from gonogo.units import format_value

_GLOB_CHARACTERS = "*?["


Series = Mapping[str, Sequence[tuple[datetime, float]]]


def check_series(samples: Sequence[SampleSeries]) -> Series:
    """The per-second series that gates read: those a check recorded (the services' sampled
    resources are not metrics), by full metric name."""
    return {one.name: one.points for one in samples if "check" in one.labels}


def evaluate_gates(
    gates: Sequence[GateSpec], metrics: Sequence[MetricRecord], series: Series | None = None
) -> list[GateRecord]:
    """One result per gate and matched metric; globs expand to every metric they match.

    `series`: per-second series by full metric name, for gates with a timeframe.
    """
    series = series or {}
    latest: dict[str, MetricRecord] = {}
    for metric in metrics:  # recorded order: a metric measured twice keeps its last value
        latest[metric.full_name] = metric
    results: list[GateRecord] = []
    for gate in gates:
        if any(c in gate.metric for c in _GLOB_CHARACTERS):
            names = sorted(name for name in latest if fnmatchcase(name, gate.metric))
            if not names:
                results.append(_not_measured(gate, gate.metric, "no measured metric matches this pattern"))
            results.extend(_evaluate(gate, latest[name], series.get(name)) for name in names)
        elif gate.metric in latest:
            results.append(_evaluate(gate, latest[gate.metric], series.get(gate.metric)))
        else:
            who = (
                "the run did not record it" if gate.metric.startswith("service.") else "no check recorded it"
            )
            results.append(_not_measured(gate, gate.metric, who))
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


def _evaluate(
    gate: GateSpec, metric: MetricRecord, points: Sequence[tuple[datetime, float]] | None
) -> GateRecord:
    threshold = gate.expr
    status: GateStatus
    source = metric.source
    breach = None
    if threshold.timeframe is not None and threshold.compatible_with(metric.unit):
        if not points:
            return _not_measured(gate, metric.full_name, f"no per-second series of {metric.full_name}")
        breach = threshold.longest_breach([(t.timestamp(), value) for t, value in points])
        start = points[0][0].timestamp()
        if breach is None:
            source = f"never in breach over {len(points)} s ({metric.source})"
        else:
            source = (
                f"longest breach {breach.seconds:.0f} s from second {breach.start - start:.0f} "
                f"(worst {format_value(breach.worst, metric.unit)}) ({metric.source})"
            )
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
    elif threshold.timeframe is not None:
        held = breach is None or breach.seconds < threshold.timeframe
        status = "pass" if held else ("fail" if gate.severity == "must" else "warn")
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
