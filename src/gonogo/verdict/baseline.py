"""Relative gates (`"<= +10% baseline"`): a run's figures against those of earlier runs.

What the run hands the verdict is a `Baseline`: the earlier runs chosen (`BaselineChoice`), each
with its metrics and the distributions behind its latency figures (read from the stored
artifacts with `distributions.py`). The rule, one place for the run and `gonogo verify`:

- a percentile other than the median with a distribution in the candidate (`load.latency.p95`
  reads the distribution `load.latency` of a `load` or `journeys` check) is judged as that
  percentile, never as a ratio of two point values: each run's percentile has a
  distribution-free confidence interval (`quantile.py`), the limit is the share applied to the
  end of the baseline's interval that favours the run, and the gate fails only when this run's
  whole interval breaks it (`<= +10% baseline`: this run's p95 is above 110% of the baseline's,
  with confidence). A gate that no change would keep asks for an improvement (`<= -10% baseline`)
  and passes only when this run's whole interval keeps the limit drawn from the baseline's
  other end. Mann-Whitney U and the Hodges-Lehmann shift of the whole distribution are reported
  beside it;
- the median, p50 or mean with a distribution is judged by the location of the whole
  distribution: Mann-Whitney U and the Hodges-Lehmann shift with its interval (`shift.compare`),
  the baseline runs' samples merged by summing counts. It fails only on evidence: when the
  interval excludes 0 (significant) and the shift breaks the allowance, a share of the baseline's
  median; a gate asking for an improvement passes only when its whole interval keeps it;
- a maximum or minimum is one value with no interval: no relative gate (`gonogo validate`
  refuses it; through a pattern, it is *not measured*);
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
    "no_baseline_hint",
    "run_distributions",
]

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import median
from typing import TYPE_CHECKING, Any, Protocol

from gonogo.errors import GonogoError
from gonogo.evidence.records import ArtifactRecord, BaselineChoice, GateStatus, MetricRecord, RunRecord
from gonogo.plan.model import GateSpec
from gonogo.threshold import Threshold
from gonogo.units import format_p_value, format_value

if TYPE_CHECKING:
    from gonogo.verdict.quantile import QuantileInterval
    from gonogo.verdict.shift import Shift

# distributions.py and shift.py (hdrh, numpy, scipy) are imported where used: the reports import
# this module, and `gonogo report` must not pay for them.

COMPARISON_ARTIFACT = "baseline-comparison.json"
COMPARISON_MEDIA_TYPE = "application/vnd.gonogo.baseline-comparison+json"
Sample = dict[float, int]
_PERCENTILE = re.compile(r"\.(p\d+(?:[._]\d+)?|median)$")
_QUANTILE = re.compile(r"p(\d+)(?:[._](\d+))?")
EXTREMES = ("max", "min")
EXTREME_WHY = (
    "a relative gate on a maximum or minimum cannot be judged on evidence: one value decides it and "
    "it has no confidence interval; compare a high percentile with the baseline instead (….p99 or "
    '….p99_9: "<= +10% baseline"), or hold the maximum to a fixed limit ("< 2s")'
)


class EvidenceSource(Protocol):
    """What the comparison reads of the store (the `Store` is one): records and artifact files."""

    def metrics(self, run_id: str) -> list[MetricRecord]: ...

    def artifacts(self, run_id: str) -> list[ArtifactRecord]: ...

    def artifact_path(self, sha256: str) -> Path: ...

    def resolve_run(self, ref: str) -> RunRecord: ...


@dataclass(frozen=True)
class BaselineRun:
    id: str
    metrics: dict[str, float]  # full metric name → its last recorded value
    distributions: dict[str, Sample]  # `<check>.<stem>` → seconds → count
    plan_hash: str | None = None  # sha256 of the plan it ran; None when unknown


@dataclass(frozen=True)
class Baseline:
    """The earlier runs a run's relative gates compare with (none when `choice.how` is none)."""

    choice: BaselineChoice
    runs: list[BaselineRun]
    confidence: float = 0.95
    plan_hash: str | None = None  # sha256 of the plan of the run being judged

    @property
    def plan_note(self) -> str:
        """`; baseline run X ran another version of the plan (…)`, or "" when every baseline run
        ran this one: not an error (a plan changes between runs), but its figures may differ for it."""
        if self.plan_hash is None:
            return ""
        other = [run for run in self.runs if run.plan_hash is not None and run.plan_hash != self.plan_hash]
        if not other:
            return ""
        hashes = ", ".join(sorted({f"{run.plan_hash[:12]}…" for run in other if run.plan_hash}))
        ran = "ran another version" if len(other) == 1 else "ran other versions"
        return (
            f"; baseline {_runs([run.id for run in other])} {ran} of the plan "
            f"(sha256 {hashes}; this run's {self.plan_hash[:12]}…)"
        )

    @property
    def detail(self) -> str:
        """Which runs and why, and whether they ran another version of the plan."""
        return self.choice.detail + self.plan_note


@dataclass(frozen=True)
class BaselineRow:
    """One relative gate's comparison, every number behind its status."""

    metric: str
    expr: str
    status: GateStatus
    # quantile (a percentile's intervals), mann-whitney (the shift of a distribution's location),
    # median (values against the baseline runs' median), none (not measured)
    method: str
    unit: str
    # the baseline's figure: the percentile of its distribution (quantile), its median
    # (mann-whitney), the median of its runs' values (median)
    baseline_value: float | None
    # the run's: the gated percentile (quantile), its distribution's median (mann-whitney), its value
    candidate_value: float | None
    # the largest (or smallest) allowed: the percentile (quantile), the shift (mann-whitney), the value
    limit: float | None
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
    statistic: str | None = None  # the gated statistic of a distribution: p95, median, mean
    # method quantile: the confidence intervals of the baseline's and this run's percentile
    baseline_low: float | None = None
    baseline_high: float | None = None
    candidate_low: float | None = None
    candidate_high: float | None = None

    @property
    def relative_shift(self) -> float | None:
        """The shift as a share of the baseline's median (of a mann-whitney row: a quantile row's
        baseline value is its percentile)."""
        if self.method != "mann-whitney" or self.shift is None or not self.baseline_value:
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


def gather_baseline(
    source: EvidenceSource, choice: BaselineChoice, confidence: float = 0.95, plan_hash: str | None = None
) -> Baseline:
    """The chosen runs' metrics and distributions, as the verdict reads them; `plan_hash`: of the
    plan of the run being judged, to say when a baseline run ran another version of it."""
    runs = []
    for run_id in choice.runs:
        latest = {metric.full_name: metric.value for metric in source.metrics(run_id)}
        try:
            ran: str | None = source.resolve_run(run_id).plan_hash
        except GonogoError:  # gone from the store: verify says so
            ran = None
        runs.append(BaselineRun(run_id, latest, run_distributions(source, run_id), ran))
    return Baseline(choice, runs, confidence, plan_hash)


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
        return _not_measured(gate, name, metric.unit, f"no baseline ({detail}): {no_baseline_hint(gate)}")
    check, _, within = name.partition(".")
    stem = distribution_stem(within)
    statistic = within[len(stem) + 1 :] if stem else ""
    quantile = _quantile(statistic)
    if statistic in EXTREMES or quantile in (0.0, 1.0):
        return _not_measured(gate, name, metric.unit, EXTREME_WHY)
    key = f"{check}.{stem}" if stem else None
    candidate = distributions.get(key) if key is not None else None
    if key is not None and candidate:
        if quantile is not None and quantile != 0.5:
            return _judge_quantile(gate, name, key, statistic, quantile, candidate, metric, baseline)
        return _judge_distribution(gate, name, key, statistic, candidate, metric, baseline)
    if key is not None and metric.unit == "seconds" and _PERCENTILE.search(within):
        return _not_measured(
            gate, name, "seconds",
            f"this run stored no distribution of {key}: a latency percentile is compared as a "
            "distribution (load and journeys checks store one), never as a bare ratio of two percentiles",
        )  # fmt: skip
    return _judge_value(gate, name, metric, baseline)


def no_baseline_hint(gate: GateSpec) -> str:
    """What to do about a relative gate without a baseline, for this gate's severity."""
    if gate.severity == "must":
        return (
            "pin a run with gonogo baseline set RUN (until there is a baseline this must gate is not "
            "measured and every run is NO-GO, so no run of this plan can pass to become one)"
        )
    return (
        "pin a run with gonogo baseline set RUN, or let a run of this plan pass first "
        "(the last N passing runs are the baseline, baseline.runs: N)"
    )


def _quantile(statistic: str) -> float | None:
    """`p95` → 0.95, `p99_9` → 0.999, `median` → 0.5; None for any other statistic."""
    if statistic == "median":
        return 0.5
    match = _QUANTILE.fullmatch(statistic)
    if match is None:
        return None
    return float(f"{match.group(1)}.{match.group(2) or 0}") / 100


def _distribution_shift(
    gate: GateSpec, name: str, key: str, candidate: Sample, baseline: Baseline
) -> tuple[Sample, Shift] | RelativeJudgement:
    """The baseline runs' merged distribution of `key` and the candidate's shift from it, or
    the judgement *not measured* saying why there is none."""
    lacking = [run.id for run in baseline.runs if not run.distributions.get(key)]
    if lacking:
        return _not_measured(
            gate,
            name,
            "seconds",
            f"baseline {_runs(lacking)} stored no distribution of {key} to compare with",
        )
    from gonogo.verdict.shift import compare

    merged: Sample = {}
    for run in baseline.runs:
        for value, count in run.distributions[key].items():
            merged[value] = merged.get(value, 0) + count
    try:
        return merged, compare(merged, candidate, confidence=baseline.confidence)
    except GonogoError as error:
        return _not_measured(gate, name, "seconds", f"cannot compare the distributions of {key}: {error}")


def _whole_distribution(shift: Shift, middle: float) -> str:
    """Mann-Whitney U, the Hodges-Lehmann shift with its interval and the effect size, in words."""
    share = f" ({shift.shift / middle:+.1%})" if middle else ""
    verdict = "significant" if shift.significant else "not significant"
    return (
        f"Mann-Whitney U p = {format_p_value(shift.p_value)} ({verdict}); Hodges-Lehmann shift "
        f"{_signed(shift.shift)}{share}, {shift.confidence:.0%} CI [{_signed(shift.low)}, "
        f"{_signed(shift.high)}]; effect size {shift.effect_size:.2f} (P(candidate > baseline))"
    )


def _judge_quantile(
    gate: GateSpec,
    name: str,
    key: str,
    statistic: str,
    quantile: float,
    candidate: Sample,
    metric: MetricRecord,
    baseline: Baseline,
) -> RelativeJudgement:
    """A gate on a percentile other than the median judges that percentile: the interval of this
    run's against the limit set by the baseline's interval, failing (or passing) only on evidence."""
    found = _distribution_shift(gate, name, key, candidate, baseline)
    if isinstance(found, RelativeJudgement):
        return found
    merged, shift = found
    from gonogo.verdict.quantile import TooFewForQuantile, quantile_interval
    from gonogo.verdict.shift import median as sample_median

    try:
        base = quantile_interval(merged, quantile, baseline.confidence)
        cand = quantile_interval(candidate, quantile, baseline.confidence)
    except TooFewForQuantile as error:
        return _not_measured(
            gate, name, "seconds",
            f"too few values to judge the {statistic} of {key} on evidence: this run has "
            f"{shift.candidate_count}, the baseline {shift.baseline_count}, and a {baseline.confidence:.0%} "
            f"interval of the {statistic} takes at least {error.needed} (send more requests, or gate a "
            "lower percentile)",
        )  # fmt: skip
    threshold = gate.expr
    judged = _judge_interval(threshold, base, cand)
    status = _status(gate, judged.holds)
    conf = f"{baseline.confidence:.0%}"
    source = (
        f"this run's {statistic} {format_value(metric.value, 'seconds')} ({conf} CI "
        f"{_interval(cand.low, cand.high)}, {cand.count} values of {key}) against the {statistic} of "
        f"{_baseline_runs(baseline)}: {format_value(base.value, 'seconds')} ({conf} CI "
        f"{_interval(base.low, base.high)}, {base.count} values); the whole distribution: "
        f"{_whole_distribution(shift, sample_median(merged))}{baseline.plan_note}"
    )
    rule = judged.rule.format(statistic=statistic, confidence=conf)
    threshold_text = (
        f"{judged.limit_text} ({_share(threshold)} of baseline {statistic} "
        f"{format_value(base.value, 'seconds')} {_interval(base.low, base.high)}{judged.end}; {rule})"
    )
    row = BaselineRow(
        metric=name, expr=threshold.text, status=status, method="quantile", unit="seconds",
        baseline_value=base.value, candidate_value=metric.value, limit=judged.limit,
        n1=shift.baseline_count, n2=shift.candidate_count, u=shift.u, p_value=shift.p_value,
        shift=shift.shift, low=shift.low, high=shift.high, confidence=shift.confidence,
        effect_size=shift.effect_size, significant=shift.significant,
        note=f"distribution {key}; {statistic} limit {judged.limit_text}",
        baseline_runs=[run.id for run in baseline.runs], statistic=statistic,
        baseline_low=base.low, baseline_high=base.high, candidate_low=cand.low, candidate_high=cand.high,
    )  # fmt: skip
    return RelativeJudgement(status, metric.value, "seconds", threshold_text, source, row)


@dataclass(frozen=True)
class _IntervalJudgement:
    holds: bool
    limit: float  # the limit the decision used (of the ends of the limit's interval, the one compared)
    limit_text: str  # `<= 5.1 ms`, or `within [4.0 ms, 5.1 ms]` for == and !=
    end: str  # which end of the baseline's interval the limit is taken from
    rule: str  # when it fails or passes, with {statistic} and {confidence} to fill in


def _judge_interval(
    threshold: Threshold, base: QuantileInterval, cand: QuantileInterval
) -> _IntervalJudgement:
    """A quantile gate on evidence. A gate that no change would break fails only when even this
    run's most favourable end breaks the limit drawn from the baseline's most lenient end; a gate
    asking for a change (`<= -10% baseline`) passes only when even its least favourable end keeps
    the limit drawn from the baseline's strictest end."""
    factor = 1.0 + threshold.value
    asks_change = not threshold.holds(base.value, base.value)
    if threshold.op in ("==", "!="):
        lowest, highest = sorted((base.low * factor, base.high * factor))
        overlap = cand.low <= highest and cand.high >= lowest
        within = f"within [{format_value(lowest, 'seconds')}, {format_value(highest, 'seconds')}]"
        if threshold.op == "==":
            rule = "fails only when this run's {statistic} interval lies wholly outside it"
            return _IntervalJudgement(overlap, base.value * factor, within, "", rule)
        rule = "passes only when this run's {statistic} interval lies wholly outside it"
        return _IntervalJudgement(not overlap, base.value * factor, f"not {within}", "", rule)
    upward = threshold.op in ("<", "<=")  # a high value breaks it
    breaks, keeps = ("above", "below") if upward else ("below", "above")
    if not asks_change:
        base_end, cand_end = (base.high, cand.low) if upward else (base.low, cand.high)
        rule = "fails only when this run's {statistic} is " + breaks + " it with {confidence} confidence"
    else:
        base_end, cand_end = (base.low, cand.high) if upward else (base.high, cand.low)
        rule = "passes only when this run's {statistic} is " + keeps + " it with {confidence} confidence"
    limit = threshold.limit(base_end)
    end = ", from its upper end" if base_end == base.high else ", from its lower end"
    limit_text = f"{threshold.op} {format_value(limit, 'seconds')}"
    return _IntervalJudgement(threshold.holds(cand_end, base_end), limit, limit_text, end, rule)


def _judge_distribution(
    gate: GateSpec,
    name: str,
    key: str,
    statistic: str,
    candidate: Sample,
    metric: MetricRecord,
    baseline: Baseline,
) -> RelativeJudgement:
    """A gate on the median, p50 or mean judges the location of the whole distribution: the
    Hodges-Lehmann shift against a share of the baseline's median."""
    found = _distribution_shift(gate, name, key, candidate, baseline)
    if isinstance(found, RelativeJudgement):
        return found
    merged, shift = found
    from gonogo.verdict.shift import median as sample_median

    threshold, runs = gate.expr, baseline.runs
    middle = sample_median(merged)
    allowance = threshold.limit(middle) - middle
    if threshold.holds(middle, middle):  # no change keeps the gate: it fails only on evidence
        failed = shift.significant and not threshold.holds(middle + shift.shift, middle)
        rule = f"fails only if the Hodges-Lehmann shift is significant and breaks {_signed(allowance)}"
    else:  # the gate asks for a change (`<= -10% baseline`): it passes only on evidence
        failed = not all(threshold.holds(middle + end, middle) for end in (shift.low, shift.high))
        rule = f"passes only if the whole CI of the Hodges-Lehmann shift keeps {_signed(allowance)}"
    status = _status(gate, not failed)
    source = (
        f"this run's {statistic} {format_value(metric.value, 'seconds')}; the distribution {key} against "
        f"{_baseline_runs(baseline)}: {_whole_distribution(shift, middle)}; {shift.candidate_count} values "
        f"vs {shift.baseline_count}{baseline.plan_note}"
    )
    threshold_text = (
        f"{threshold.op} {format_value(threshold.limit(middle), 'seconds')} ({_share(threshold)} of the "
        f"baseline median {format_value(middle, 'seconds')}; {rule})"
    )
    row = BaselineRow(
        metric=name, expr=threshold.text, status=status, method="mann-whitney", unit="seconds",
        baseline_value=middle, candidate_value=sample_median(candidate), limit=allowance,
        n1=shift.baseline_count, n2=shift.candidate_count, u=shift.u, p_value=shift.p_value,
        shift=shift.shift, low=shift.low, high=shift.high, confidence=shift.confidence,
        effect_size=shift.effect_size, significant=shift.significant,
        note=f"distribution {key}; allowance {_signed(allowance)}",
        baseline_runs=[run.id for run in runs], statistic=statistic,
    )  # fmt: skip
    return RelativeJudgement(status, metric.value, "seconds", threshold_text, source, row)


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
        f"{_baseline_runs(baseline)} ({metric.source}){baseline.plan_note}"
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


def _interval(low: float, high: float) -> str:
    return f"[{format_value(low, 'seconds')}, {format_value(high, 'seconds')}]"


def _share(threshold: Threshold) -> str:
    """`+10%` of `<= +10% baseline`."""
    return f"{threshold.value * 100:+g}%"
