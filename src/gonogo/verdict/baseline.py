"""Relative gates (`"<= +10% baseline"`): a run's figures against those of earlier runs.

What the run hands the verdict is a `Baseline`: the earlier runs chosen (`BaselineChoice`), each
with its metrics and the distributions behind its latency figures (read from the stored
artifacts with `distributions.py`). The rule, one place for the run and `gonogo verify`:

- a figure with a distribution in the candidate (latency and duration statistics of `load` and
  `journeys` checks: `load.endpoint.list.latency.p95` is the distribution `load.endpoint.list.latency`)
  is compared whole, never as a ratio of two percentiles: Mann-Whitney U and the Hodges-Lehmann
  shift with its interval (`shift.compare`), the baseline runs' samples merged by summing counts.
  The gate fails only on evidence: when the interval excludes 0 (significant) and the shift breaks
  the allowance, a share of the baseline's median (`<= +10% baseline`: the shift is more than 10%
  of the baseline's median). A gate that no change would break asks for an improvement
  (`<= -10% baseline`): it passes only on evidence, when its whole interval keeps the allowance;
- any other figure (counts, rates, requests per second) is compared with the median of the
  baseline runs' values times (1 + the share): `<= +10% baseline` holds for at most 110% of it;
- no baseline, or a baseline run that lacks the figure: *not measured*, never a pass.

Every comparison is a `BaselineRow`, all of a run a `BaselineComparison`: the run stores it as its
`baseline-comparison.json` artifact and the reports read it from there.
"""

from __future__ import annotations

__all__ = [
    "COMPARISON_ARTIFACT",
    "COMPARISON_MEDIA_TYPE",
    "Baseline",
    "BaselineComparison",
    "BaselineRow",
    "BaselineRun",
    "EvidenceSource",
    "RelativeJudgement",
    "gather_baseline",
    "judge_relative",
    "run_distributions",
]

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import median
from typing import Any, Protocol

from gonogo.errors import GonogoError
from gonogo.evidence.records import ArtifactRecord, BaselineChoice, GateStatus, MetricRecord
from gonogo.plan.model import GateSpec
from gonogo.units import format_value

# distributions.py and shift.py (hdrh, numpy, scipy) are imported where used: the reports import
# this module, and `gonogo report` must not pay for them.

COMPARISON_ARTIFACT = "baseline-comparison.json"
COMPARISON_MEDIA_TYPE = "application/vnd.gonogo.baseline-comparison+json"
Sample = dict[float, int]
_PERCENTILE = re.compile(r"\.(p\d+(?:[._]\d+)?|median)$")
NO_BASELINE_HINT = (
    "pin one with `gonogo baseline set RUN`, or pass N runs of this plan: "
    "`baseline: {runs: N}` in the plan compares with the last N passing runs"
)


class EvidenceSource(Protocol):
    """What the comparison reads of the store (the `Store` is one): records and artifact files."""

    def metrics(self, run_id: str) -> list[MetricRecord]: ...

    def artifacts(self, run_id: str) -> list[ArtifactRecord]: ...

    def artifact_path(self, sha256: str) -> Path: ...


@dataclass(frozen=True)
class BaselineRun:
    id: str
    metrics: dict[str, float]  # full metric name → its last recorded value
    distributions: dict[str, Sample]  # `<check>.<stem>` → seconds → count


@dataclass(frozen=True)
class Baseline:
    """The earlier runs a run's relative gates compare with (none when `choice.how` is none)."""

    choice: BaselineChoice
    runs: list[BaselineRun]
    confidence: float = 0.95


@dataclass(frozen=True)
class BaselineRow:
    """One relative gate's comparison, every number behind its status."""

    metric: str
    expr: str
    status: GateStatus
    method: str  # mann-whitney (distributions), median (values), none (not measured)
    unit: str
    baseline_value: float | None  # the baseline's median (of its values, or of its distribution)
    candidate_value: float | None  # the run's value (median of its distribution, for mann-whitney)
    limit: float | None  # the largest (or smallest) allowed: value, or shift for mann-whitney
    n1: int | None = None  # values in the baseline's distribution
    n2: int | None = None  # in the candidate's
    u: float | None = None
    p_value: float | None = None
    shift: float | None = None  # Hodges-Lehmann, candidate - baseline
    low: float | None = None  # its confidence interval
    high: float | None = None
    confidence: float | None = None
    effect_size: float | None = None  # P(candidate value > baseline value), 0.5: no difference
    significant: bool | None = None
    note: str = ""  # why not measured, or how it was judged
    baseline_runs: list[str] = field(default_factory=list)  # the runs compared with

    @property
    def relative_shift(self) -> float | None:
        """The shift as a share of the baseline's median."""
        if self.shift is None or not self.baseline_value:
            return None
        return self.shift / self.baseline_value


@dataclass(frozen=True)
class BaselineComparison:
    """Every relative gate of a run against its baseline (`baseline-comparison.json`)."""

    how: str  # pinned / recent / none
    runs: list[str]
    detail: str
    confidence: float
    rows: list[BaselineRow] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"schema": "gonogo.baseline-comparison/1", **asdict(self)}

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> BaselineComparison:
        rows = [BaselineRow(**row) for row in document.get("rows") or []]
        return cls(
            how=str(document["how"]),
            runs=[str(run) for run in document["runs"]],
            detail=str(document["detail"]),
            confidence=float(document["confidence"]),
            rows=rows,
        )

    def dumps(self) -> bytes:
        return (json.dumps(self.to_json(), indent=2, sort_keys=True, allow_nan=False) + "\n").encode()


@dataclass(frozen=True)
class RelativeJudgement:
    """What a relative gate's record says: its status, value, threshold and source."""

    status: GateStatus
    value: float | None
    unit: str
    threshold: str
    source: str
    row: BaselineRow


def run_distributions(source: EvidenceSource, run_id: str) -> dict[str, Sample]:
    """The latency distributions a run stored, by `<check>.<stem>`; an artifact that is missing
    or unreadable is left out (`gonogo verify` reports those)."""
    from gonogo.verdict.distributions import journey_distributions, load_distributions

    found: dict[str, Sample] = {}
    for artifact in source.artifacts(run_id):
        if artifact.check is None:
            continue
        if artifact.name == "load-histograms.json":
            read = load_distributions
        elif artifact.name.startswith("journey-") and artifact.name.endswith(".json"):
            read = journey_distributions
        else:
            continue
        try:
            parsed = read(source.artifact_path(artifact.sha256).read_bytes())
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            continue
        for stem, sample in parsed.items():
            found[f"{artifact.check}.{stem}"] = sample
    return found


def gather_baseline(source: EvidenceSource, choice: BaselineChoice, confidence: float = 0.95) -> Baseline:
    """The chosen runs' metrics and distributions, as the verdict reads them."""
    runs = []
    for run_id in choice.runs:
        latest = {metric.full_name: metric.value for metric in source.metrics(run_id)}
        runs.append(BaselineRun(run_id, latest, run_distributions(source, run_id)))
    return Baseline(choice, runs, confidence)


def judge_relative(
    gate: GateSpec,
    name: str,
    metric: MetricRecord,
    baseline: Baseline | None,
    distributions: Mapping[str, Sample],
) -> RelativeJudgement:
    """A relative gate on the measured `metric` (full name `name`), against `baseline`."""
    from gonogo.verdict.distributions import distribution_stem

    if baseline is None or not baseline.runs:
        detail = baseline.choice.detail if baseline is not None else "no baseline was looked for"
        return _not_measured(gate, name, metric.unit, f"no baseline ({detail}): {NO_BASELINE_HINT}")
    check, _, within = name.partition(".")
    stem = distribution_stem(within)
    key = f"{check}.{stem}" if stem else None
    candidate = distributions.get(key) if key is not None else None
    if key is not None and candidate:
        return _judge_distribution(gate, name, key, candidate, baseline)
    if key is not None and metric.unit == "seconds" and _PERCENTILE.search(within):
        return _not_measured(
            gate, name, "seconds",
            f"this run stored no distribution of {key}: a latency percentile is compared as a "
            "distribution (load and journeys checks store one), never as a bare ratio of two percentiles",
        )  # fmt: skip
    return _judge_value(gate, name, metric, baseline)


def _judge_distribution(
    gate: GateSpec, name: str, key: str, candidate: Sample, baseline: Baseline
) -> RelativeJudgement:
    threshold, runs = gate.expr, baseline.runs
    lacking = [run.id for run in runs if not run.distributions.get(key)]
    if lacking:
        return _not_measured(
            gate,
            name,
            "seconds",
            f"baseline {_runs(lacking)} stored no distribution of {key} to compare with",
        )
    from gonogo.verdict.shift import compare
    from gonogo.verdict.shift import median as sample_median

    merged: Sample = {}
    for run in runs:
        for value, count in run.distributions[key].items():
            merged[value] = merged.get(value, 0) + count
    try:
        shift = compare(merged, candidate, confidence=baseline.confidence)
    except GonogoError as error:
        return _not_measured(gate, name, "seconds", f"cannot compare the distributions of {key}: {error}")
    middle = sample_median(merged)
    allowance = threshold.limit(middle) - middle
    if threshold.holds(middle, middle):  # no change keeps the gate: it fails only on evidence
        failed = shift.significant and not threshold.holds(middle + shift.shift, middle)
        rule = "fails only if significant"
    else:  # the gate asks for a change (`<= -10% baseline`): it passes only on evidence
        failed = not all(threshold.holds(middle + end, middle) for end in (shift.low, shift.high))
        rule = "passes only if its whole interval does"
    status = _status(gate, not failed)
    share = f" ({shift.shift / middle:+.1%})" if middle else ""
    verdict = "significant" if shift.significant else "not significant"
    source = (
        f"Mann-Whitney U vs {_baseline_runs(baseline)}: p = {shift.p_value:.3g} ({verdict}); "
        f"Hodges-Lehmann shift {_signed(shift.shift)}{share}, {shift.confidence:.0%} CI "
        f"[{_signed(shift.low)}, {_signed(shift.high)}]; effect size {shift.effect_size:.2f} "
        f"(P(candidate > baseline)); {shift.candidate_count} values of {key} vs {shift.baseline_count}"
    )
    threshold_text = (
        f"shift {threshold.op} {_signed(allowance)} ({threshold.text}: of the baseline median "
        f"{format_value(middle, 'seconds')}; {rule})"
    )
    row = BaselineRow(
        metric=name, expr=threshold.text, status=status, method="mann-whitney", unit="seconds",
        baseline_value=middle, candidate_value=sample_median(candidate), limit=allowance,
        n1=shift.baseline_count, n2=shift.candidate_count, u=shift.u, p_value=shift.p_value,
        shift=shift.shift, low=shift.low, high=shift.high, confidence=shift.confidence,
        effect_size=shift.effect_size, significant=shift.significant,
        note=f"distribution {key}; allowance {_signed(allowance)}",
        baseline_runs=[run.id for run in runs],
    )  # fmt: skip
    return RelativeJudgement(status, shift.shift, "seconds", threshold_text, source, row)


def _judge_value(gate: GateSpec, name: str, metric: MetricRecord, baseline: Baseline) -> RelativeJudgement:
    threshold, runs, unit = gate.expr, baseline.runs, metric.unit
    lacking = [run.id for run in runs if name not in run.metrics]
    if lacking:
        return _not_measured(gate, name, unit, f"baseline {_runs(lacking)} did not record {name}")
    reference = median(run.metrics[name] for run in runs)
    limit = threshold.limit(reference)
    status = _status(gate, threshold.holds(metric.value, reference))
    of = "the median of " if len(runs) > 1 else ""
    source = (
        f"{format_value(metric.value, unit)} against {format_value(reference, unit)}, {of}"
        f"{_baseline_runs(baseline)} ({metric.source})"
    )
    row = BaselineRow(
        metric=name, expr=threshold.text, status=status, method="median", unit=unit,
        baseline_value=reference, candidate_value=metric.value, limit=limit,
        note=f"{format_value(metric.value, unit)} {threshold.op} {format_value(limit, unit)}",
        baseline_runs=[run.id for run in runs],
    )  # fmt: skip
    return RelativeJudgement(status, metric.value, unit, threshold.describe(reference, unit), source, row)


def _not_measured(gate: GateSpec, name: str, unit: str, why: str) -> RelativeJudgement:
    row = BaselineRow(
        metric=name, expr=gate.expr.text, status="not_measured", method="none", unit=unit,
        baseline_value=None, candidate_value=None, limit=None, note=why,
    )  # fmt: skip
    return RelativeJudgement("not_measured", None, unit, gate.expr.text, why, row)


def _status(gate: GateSpec, holds: bool) -> GateStatus:
    if holds:
        return "pass"
    return "fail" if gate.severity == "must" else "warn"


def _baseline_runs(baseline: Baseline) -> str:
    how = {"pinned": "pinned", "recent": "the last passing"}.get(baseline.choice.how, baseline.choice.how)
    return f"baseline {_runs([run.id for run in baseline.runs])} ({how})"


def _runs(ids: Sequence[str]) -> str:
    return f"run {ids[0]}" if len(ids) == 1 else f"runs {', '.join(ids)}"


def _signed(seconds: float) -> str:
    return ("+" if seconds > 0 else "") + format_value(seconds, "seconds")
