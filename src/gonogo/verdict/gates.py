"""Evaluating gates against measured metrics. A gate with no metric is *not measured*.

A gate with a timeframe (`"< 500ms for 10s"`) is evaluated on the per-second series of its
metric: it fails when the series is in breach for that long without a break. Its value is what
it was judged on, the worst the series held for the timeframe (`Threshold.held_for`), and the
whole run's figure is in its source. A series counts even when its check recorded no whole-run
figure (no request of an endpoint answered: its latency series still has the waiting ages).
"""

from __future__ import annotations

__all__ = ["check_series", "evaluate_gates"]

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from fnmatch import fnmatchcase

from gonogo.evidence.records import CheckRecord, GateRecord, GateStatus, MetricRecord, SampleSeries
from gonogo.plan.model import GateSpec
from gonogo.units import format_value
from gonogo.verdict.baseline import Baseline, BaselineRow, Sample, judge_relative

_GLOB_CHARACTERS = "*?["


Series = Mapping[str, SampleSeries]


def check_series(samples: Sequence[SampleSeries]) -> Series:
    """The per-second series that gates read: those a check recorded (the services' sampled
    resources are not metrics), by full metric name."""
    return {one.name: one for one in samples if "check" in one.labels}


def evaluate_gates(
    gates: Sequence[GateSpec],
    metrics: Sequence[MetricRecord],
    series: Series | None = None,
    checks: Sequence[CheckRecord] | None = None,
    *,
    baseline: Baseline | None = None,
    distributions: Mapping[str, Sample] | None = None,
    comparisons: list[BaselineRow] | None = None,
) -> list[GateRecord]:
    """One result per gate and matched metric; globs expand to every metric they match.

    `series`: per-second series by full metric name, for gates with a timeframe.
    `checks`: the checks that ran, to say why a metric is missing.
    `baseline`: the earlier runs relative gates compare with (verdict/baseline.py), and
    `distributions` the run's own latency distributions by `<check>.<stem>`; each relative
    gate's comparison is appended to `comparisons` when given.
    """
    relative = _Relative(baseline, distributions or {}, comparisons)
    series = series or {}
    latest: dict[str, MetricRecord] = {}
    for metric in metrics:  # recorded order: a metric measured twice keeps its last value
        latest[metric.full_name] = metric
    by_check: dict[str, list[MetricRecord]] = {}
    for metric in latest.values():
        by_check.setdefault(metric.check, []).append(metric)
    ran = {check.name: check for check in checks or ()}
    results: list[GateRecord] = []
    for gate in gates:
        timeframe = gate.expr.timeframe is not None
        # a gate with a timeframe reads the series, which a check records even with no whole-run figure
        judged = set(latest) | ({name for name, s in series.items() if s.points} if timeframe else set())
        if any(c in gate.metric for c in _GLOB_CHARACTERS):
            names = sorted(name for name in judged if fnmatchcase(name, gate.metric))
            if not names:
                results.append(_not_measured(gate, gate.metric, "no measured metric matches this pattern"))
                relative.unmeasured(gate, results[-1])
        elif gate.metric in judged:
            names = [gate.metric]
        else:
            names = []
            why = _why_missing(gate, series.get(gate.metric), ran, by_check)
            results.append(_not_measured(gate, gate.metric, why))
            relative.unmeasured(gate, results[-1])
        for name in names:
            context = latest.get(name) or _sibling(by_check.get(name.split(".", 1)[0], []))
            record = _evaluate(gate, name, latest.get(name), series.get(name), context, relative)
            if record.dimension == "unknown":
                record = replace(record, dimension=_dimension_like(name, latest))
            results.append(record)
    return results


def _dimension_like(name: str, latest: Mapping[str, MetricRecord]) -> str:
    """The dimension of a metric of the same figure (`latency.p95` of the whole load for that of
    an endpoint), for a series with no whole-run figure of its own."""
    parts = name.split(".")
    for width in (2, 1):
        figure = "." + ".".join(parts[-width:])
        found = next((m.dimension for full, m in latest.items() if full.endswith(figure)), None)
        if found is not None:
            return found
    return "unknown"


def _sibling(metrics: Sequence[MetricRecord]) -> MetricRecord | None:
    """A metric of the same check, for the source and measured window of a series with no
    whole-run figure of its own."""
    windowed = [metric for metric in metrics if metric.window_start is not None]
    found = windowed or list(metrics)
    return found[0] if found else None


def _why_missing(
    gate: GateSpec,
    series: SampleSeries | None,
    ran: Mapping[str, CheckRecord],
    by_check: Mapping[str, Sequence[MetricRecord]],
) -> str:
    """Why a gate's metric has no value: the check did not run, or ran and recorded none of it
    (and, where its figures tell, why)."""
    check, _, name = gate.metric.partition(".")
    if check == "service":
        return "the run did not record it"
    if check == "history":
        return (
            "no check of this run stored per-test outcomes (a tests check whose JUnit reports it read; "
            "see the tests check's message)"
        )
    record = ran.get(check)
    recorded = by_check.get(check, [])
    if record is None and not recorded:
        return f"check {check} did not run" if ran else f"check {check} recorded no metric"
    status = f" ({record.status})" if record is not None else ""
    said = f"check {check} ran{status} and recorded no value of {name}"
    counts = {metric.name: metric.value for metric in recorded}
    prefix = name.rpartition(".")[0]
    while prefix and f"{prefix}.requests" not in counts:  # `endpoint.x.latency` → `endpoint.x.`
        prefix = prefix.rpartition(".")[0]
    stem = f"{prefix}." if prefix else ""
    requests = counts.get(f"{stem}requests")
    unanswered = {
        "timed out": counts.get(f"{stem}errors.timeout", 0.0),
        "failed to connect": counts.get(f"{stem}errors.connection", 0.0),
        "in flight when the load stopped": counts.get(f"{stem}unfinished", 0.0),
    }
    if counts.get("iterations") == 0 and name.startswith(("success_rate", "journey.")):
        said += ": no iteration completed"
    elif requests == 0:
        said += ": none of its requests was sent in the measured phase"
    elif requests is not None and requests == sum(unanswered.values()):
        how = ", ".join(f"{number:g} {what}" for what, number in unanswered.items() if number)
        said += f": none of its {requests:g} requests got a response ({how})"
    elif series is not None and not series.points:
        said += ": its per-second series has no point (no request of it answered or waiting)"
    elif record is not None and record.status != "completed":
        said += f": {record.message}"
    if gate.expr.timeframe is not None and series is None:
        said += "; no per-second series of it either"
    return said + "; see the check's message and docs/metrics.md"


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


def _span(points: Sequence[tuple[datetime, float]], context: MetricRecord | None) -> str:
    """The series' seconds, the measured phase's apart from those after it (a drain)."""
    end = context.window_end if context is not None else None
    if end is None:
        return f"{len(points)} s"
    after = sum(1 for t, _ in points if t >= end)
    return f"{len(points) - after} s" + (f" + {after} s of drain" if after else "")


@dataclass(frozen=True)
class _Relative:
    """What relative gates need, passed down together."""

    baseline: Baseline | None
    distributions: Mapping[str, Sample]
    comparisons: list[BaselineRow] | None

    def unmeasured(self, gate: GateSpec, record: GateRecord) -> None:
        """A relative gate whose metric the run did not measure has a row too: every relative
        gate is in the comparison."""
        if self.comparisons is None or not gate.expr.relative_to_baseline:
            return
        row = BaselineRow(
            metric=record.metric, expr=record.expr, status="not_measured", method="none", unit="number",
            baseline_value=None, candidate_value=None, limit=None, note=f"this run: {record.source}",
        )  # fmt: skip
        self.comparisons.append(row)


def _evaluate(
    gate: GateSpec,
    name: str,
    metric: MetricRecord | None,
    series: SampleSeries | None,
    context: MetricRecord | None,
    relative: _Relative,
) -> GateRecord:
    threshold = gate.expr
    unit = metric.unit if metric is not None else (series.unit if series is not None else "number")
    origin = context.source if context is not None else f"the series {name}"
    value = metric.value if metric is not None else None
    status: GateStatus
    source = origin
    held = True
    if threshold.timeframe is not None and threshold.compatible_with(unit):
        points = series.points if series is not None else []
        if not points:
            return _not_measured(gate, name, f"no per-second series of {name}")
        seconds = [(t.timestamp(), v) for t, v in points]
        breach = threshold.longest_breach(seconds)
        judged = threshold.held_for(seconds, threshold.timeframe)
        whole = (
            f"; whole run {format_value(metric.value, unit)}"
            if metric is not None
            else "; no whole-run figure"
        )
        span = _span(points, context)
        if breach is None:
            worst = (max if threshold.op in ("<", "<=") else min)(v for _, v in points)
            said = f"never in breach over {span}; worst second {format_value(worst, unit)}"
        else:
            said = (
                f"longest breach {breach.seconds:.0f} s from second {breach.start - seconds[0][0]:.0f} "
                f"(worst {format_value(breach.worst, unit)}) over {span}"
            )
            held = breach.seconds < threshold.timeframe
        # the worst stretch of the timeframe's length: the series stayed at or beyond this
        beyond = "≥" if threshold.op in ("<", "<=") else "≤"
        lead = (
            f"held {beyond} {format_value(judged, unit)} for {threshold.timeframe:g} s; "
            if judged is not None
            else ""
        )
        source = f"{lead}{said}{whole} ({origin})"
        value = judged if judged is not None else value
    if threshold.relative_to_baseline and metric is not None and relative.baseline is not None:
        comparison = judge_relative(gate, name, metric, relative.baseline, relative.distributions)
        if relative.comparisons is not None:
            relative.comparisons.append(comparison.row)
        return GateRecord(
            metric=name,
            pattern=gate.metric,
            expr=threshold.text,
            severity=gate.severity,
            status=comparison.status,
            value=comparison.value,
            unit=comparison.unit,
            threshold=comparison.threshold,
            dimension=gate.dimension or metric.dimension,
            source=comparison.source,
            metric_id=metric.id,
        )
    if threshold.relative_to_baseline:
        # No baseline was looked for (a run from before baselines, whose verdict kept none):
        # a relative gate with nothing to compare with must say so rather than pass.
        status, source = "not_measured", f"no baseline to compare with ({origin})"
    elif not threshold.compatible_with(unit):
        status = "fail"
        source = f"the threshold is in {threshold.unit} but {name} is measured in {unit} ({origin})"
    elif threshold.timeframe is not None:
        status = "pass" if held else ("fail" if gate.severity == "must" else "warn")
    elif value is not None and threshold.holds(value):
        status = "pass"
    else:
        status = "fail" if gate.severity == "must" else "warn"
    return GateRecord(
        metric=name,
        pattern=gate.metric,
        expr=threshold.text,
        severity=gate.severity,
        status=status,
        value=value,
        unit=unit,
        threshold=threshold.describe(metric_unit=unit),
        dimension=gate.dimension or (metric.dimension if metric is not None else "unknown"),
        source=source,
        metric_id=metric.id if metric is not None else None,
    )


def describe_gate(gate: GateRecord) -> str:
    """One line a person reads in a list of reasons."""
    value = format_value(gate.value, gate.unit or "number")
    if gate.status == "not_measured":
        return f"{gate.metric} {gate.expr}: not measured ({gate.source})"
    verb = {"pass": "passes", "fail": "fails", "warn": "misses"}[gate.status]
    return f"{gate.metric} = {value} {verb} {gate.expr} (from {gate.source})"
