"""`gonogo compare RUN_A RUN_B`: what changed between two runs, read from the store only.

Three things are compared (docs/compare.md):

- functional parity: per journey step, whether it passed, the status codes and the response
  shapes seen; per tests check, the tests that fail in one run and not the other (from the
  stored test outcomes), those either run judged flaky marked and not counted;
- performance: every latency distribution both runs stored for the same check (the load
  histograms, the journeys' step latencies) with the Mann-Whitney U test and the
  Hodges-Lehmann shift and its confidence interval (`verdict/shift.py`), classified with a
  practical tolerance; and every scalar metric side by side;
- the gates whose status differs, and the two verdicts.

A is the reference ("before"), B the candidate: *slower* means B is slower than A.
"""

from __future__ import annotations

__all__ = [
    "Comparison",
    "GateChange",
    "LatencyChange",
    "MetricChange",
    "RunSide",
    "StepParity",
    "StepTally",
    "TestChange",
    "classify",
    "compare_runs",
]

import fnmatch
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from defusedxml import ElementTree

from gonogo.errors import UserError
from gonogo.evidence import ArtifactRecord, GateRecord, MetricRecord, RunRecord, Store
from gonogo.evidence.test_outcomes import OUTCOMES_ARTIFACT, read_test_outcomes
from gonogo.verdict.distributions import Distributions, journey_distributions, load_distributions
from gonogo.verdict.flaky import FLAKY_ARTIFACT, read_flaky_history
from gonogo.verdict.shift import TooFewValues, compare, median

Classification = Literal["slower", "faster", "significant but within tolerance", "no significant difference"]
MAX_JUNIT_BYTES = 64 * 1024 * 1024  # a JUnit report larger than this is not read for test outcomes


@dataclass(frozen=True)
class RunSide:
    id: str
    plan: str
    plan_hash: str
    status: str
    decision: str | None  # GO / NO-GO; None: no verdict
    score: float | None
    dimensions: dict[str, float | None]
    started_at: str


@dataclass(frozen=True)
class StepTally:
    """One journey step over every iteration of one run."""

    reached: int  # iterations that ran the step
    passed: int
    statuses: dict[str, int]  # status code (or "no response") → how many times
    shapes: dict[str, int]  # response shape → how many times (empty: not recorded)

    @property
    def outcome(self) -> str:
        if self.reached == 0:
            return "not reached"
        if self.passed == self.reached:
            return "passed"
        return "failed" if self.passed == 0 else "partly failed"

    def describe(self) -> str:
        return f"{self.outcome} ({self.passed}/{self.reached})" if self.reached else self.outcome


@dataclass(frozen=True)
class StepParity:
    check: str
    journey: str
    step: str
    a: StepTally | None  # None: the step is not in that run's journey
    b: StepTally | None
    differences: list[str]


@dataclass(frozen=True)
class TestChange:
    check: str
    test: str
    a: str | None  # passed / failed / skipped; None: not in that run's reports
    b: str | None
    # the runs ("A", "B") whose flaky-test history judged it flaky → why (docs/flaky-tests.md);
    # a flaky test's flip is no functional difference: it does not set the exit code
    flaky: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        line = f"{self.check}: test {self.test}: {self.a or 'absent'} in A, {self.b or 'absent'} in B"
        if self.flaky:
            line += " (flaky in " + "; ".join(f"{run}: {why}" for run, why in self.flaky.items()) + ")"
        return line


@dataclass(frozen=True)
class LatencyChange:
    check: str
    distribution: str  # e.g. endpoint.list.latency (the metric name within the check, no statistic)
    a_count: int
    b_count: int
    a_median: float  # seconds
    b_median: float
    p_value: float
    shift: float  # Hodges-Lehmann: the median of B - A over every pair of values, seconds
    low: float  # its confidence interval
    high: float
    effect_size: float  # P(a B value exceeds an A value), ties half; 0.5: no difference
    classification: Classification
    # Holm's adjustment of p_value for every distribution compared at once: what decides
    p_adjusted: float = 1.0

    @property
    def relative_shift(self) -> float | None:
        return self.shift / self.a_median if self.a_median > 0 else None


@dataclass(frozen=True)
class MetricChange:
    name: str  # full name, check.metric
    unit: str
    a: float | None  # None: not measured in that run
    b: float | None

    @property
    def difference(self) -> float | None:
        if self.a is None or self.b is None:
            return None
        return self.b - self.a

    @property
    def relative(self) -> float | None:
        if self.a is None or self.b is None or self.a == 0 or math.isnan(self.a) or math.isnan(self.b):
            return None
        return (self.b - self.a) / abs(self.a)

    @property
    def changed(self) -> bool:
        return self.a != self.b


@dataclass(frozen=True)
class GateChange:
    metric: str
    expr: str
    a_status: str | None  # None: no such gate in that run's verdict
    b_status: str | None
    a_value: float | None
    b_value: float | None
    unit: str | None


@dataclass(frozen=True)
class Comparison:
    a: RunSide
    b: RunSide
    confidence: float
    tolerance: float  # a shift smaller than this fraction of A's median is not a change
    warnings: list[str]
    notes: list[str]  # what could not be compared, and why
    steps: list[StepParity]
    tests: list[TestChange]
    latencies: list[LatencyChange]
    metrics: list[MetricChange]
    gates: list[GateChange]
    tests_compared: int = 0  # tests found in both runs' reports
    checks_compared: list[str] = field(default_factory=list)

    @property
    def functional_differences(self) -> list[str]:
        """Every functional difference, one line each (empty: parity)."""
        lines = [
            f"{step.check}: {step.journey} / {step.step}: {difference}"
            for step in self.steps
            for difference in step.differences
        ]
        lines += [test.describe() for test in self.tests if not test.flaky]
        return lines

    @property
    def flaky_tests(self) -> list[TestChange]:
        """Tests whose outcome differs, which run A or B judged flaky: not counted as differences."""
        return [test for test in self.tests if test.flaky]

    @property
    def slower(self) -> list[LatencyChange]:
        return [change for change in self.latencies if change.classification == "slower"]

    @property
    def faster(self) -> list[LatencyChange]:
        return [change for change in self.latencies if change.classification == "faster"]

    @property
    def changed_gates(self) -> list[GateChange]:
        return [gate for gate in self.gates if gate.a_status != gate.b_status]

    @property
    def regressed(self) -> bool:
        """What makes `gonogo compare` exit 1: a functional difference or a slower figure."""
        return bool(self.functional_differences or self.slower)


def compare_runs(
    store: Store, run_a: str, run_b: str, *, tolerance: float = 0.05, confidence: float = 0.95
) -> Comparison:
    """Compare run B with run A (both ids, prefixes or `latest`)."""
    if not 0 < confidence < 1:
        raise UserError(f"--confidence must be between 0 and 1 (e.g. 0.95), not {confidence:g}")
    if tolerance < 0:
        raise UserError(f"--tolerance must be 0 or more (e.g. 5%), not {tolerance:g}")
    record_a, record_b = store.resolve_run(run_a), store.resolve_run(run_b)
    sides = [_side(store, record) for record in (record_a, record_b)]
    warnings = _plan_warnings(record_a, record_b)
    if record_a.id == record_b.id:
        warnings.append(f"A and B are the same run ({record_a.id}): nothing can differ")
    checks_a = {check.name: check for check in store.checks(record_a.id)}
    checks_b = {check.name: check for check in store.checks(record_b.id)}
    artifacts_a, artifacts_b = store.artifacts(record_a.id), store.artifacts(record_b.id)
    notes: list[str] = []
    common: list[str] = []
    for name in sorted(checks_a.keys() | checks_b.keys()):
        check_a, check_b = checks_a.get(name), checks_b.get(name)
        if check_a is None or check_b is None:
            which = "A" if check_b is None else "B"
            notes.append(f"check {name} ran only in run {which}: not compared")
        elif check_a.kind != check_b.kind:
            notes.append(
                f"check {name} is a {check_a.kind} check in A and a {check_b.kind} check in B: not compared"
            )
        else:
            common.append(name)
            for check, run in ((check_a, "A"), (check_b, "B")):
                if check.status != "completed":
                    warnings.append(
                        f"check {name} did not complete in run {run} ({check.status}): it measured less"
                    )
    reader = _Artifacts(store, notes)
    flaky = {"A": reader.flaky(artifacts_a), "B": reader.flaky(artifacts_b)}
    steps: list[StepParity] = []
    tests: list[TestChange] = []
    tests_compared = 0
    latencies: list[LatencyChange] = []
    for name in common:
        kind = checks_a[name].kind
        mine_a = [artifact for artifact in artifacts_a if artifact.check == name]
        mine_b = [artifact for artifact in artifacts_b if artifact.check == name]
        if kind == "journeys":
            steps += _journey_parity(name, reader.journeys(mine_a), reader.journeys(mine_b), notes)
        if kind == "tests":
            changes, both = _test_parity(name, reader.tests(mine_a), reader.tests(mine_b), notes, flaky)
            tests += changes
            tests_compared += both
        latencies += _latency_changes(
            name, reader.distributions(mine_a), reader.distributions(mine_b), confidence, notes
        )
    latencies = _holm(latencies, tolerance=tolerance, confidence=confidence)
    metrics = _metric_changes(store.metrics(record_a.id), store.metrics(record_b.id), set(common))
    gates = _gate_changes(store, record_a.id, record_b.id)
    if not (
        steps
        or tests_compared
        or latencies
        or any(m.a is not None and m.b is not None for m in metrics)
        or any(g.a_status is not None and g.b_status is not None for g in gates)
    ):
        raise UserError(
            f"runs {record_a.id} ({record_a.name}) and {record_b.id} ({record_b.name}) have nothing in "
            "common to compare: no check of the same name and kind measured anything in both, and "
            "no gate is in both; compare two runs of the same plan"
        )
    return Comparison(
        a=sides[0],
        b=sides[1],
        confidence=confidence,
        tolerance=tolerance,
        warnings=warnings,
        notes=notes,
        steps=steps,
        tests=tests,
        latencies=latencies,
        metrics=metrics,
        gates=gates,
        tests_compared=tests_compared,
        checks_compared=common,
    )


def classify(low: float, high: float, shift: float, p_value: float, a_median: float, *,
             tolerance: float, confidence: float) -> Classification:  # fmt: skip
    """Significant when the interval excludes 0 *and* p < 1 - confidence (both approximations
    agree; on a handful of values the interval alone is too eager). `p_value` is Holm's adjusted
    one: a comparison tests every distribution at once (the example has 35), and at 5% each,
    one or two of them would read as changed between two identical runs. Slower or faster only
    when the shift is also larger than the tolerance (a fraction of A's median): with many
    requests a shift of a few microseconds is significant, yet no one would call it slower."""
    significant = (low > 0 or high < 0) and p_value < 1 - confidence
    if not significant:
        return "no significant difference"
    if abs(shift) > tolerance * a_median:
        return "slower" if shift > 0 else "faster"
    return "significant but within tolerance"


# -- the parts ----------------------------------------------------------------------------------


def _side(store: Store, record: RunRecord) -> RunSide:
    verdict = store.verdict(record.id)
    return RunSide(
        id=record.id,
        plan=record.name,
        plan_hash=record.plan_hash,
        status=record.status,
        decision=verdict.decision if verdict else None,
        score=verdict.score if verdict else None,
        dimensions=dict(verdict.dimensions) if verdict else {},
        started_at=record.started_at.isoformat(),
    )


def _plan_warnings(a: RunRecord, b: RunRecord) -> list[str]:
    warnings = []
    if a.name != b.name:
        warnings.append(f"the runs are of different plans: {a.name!r} (A) and {b.name!r} (B)")
    elif a.plan_hash != b.plan_hash:
        warnings.append(
            f"the plan {a.name!r} changed between the runs (sha256 {a.plan_hash[:12]} → {b.plan_hash[:12]}): "
            "a difference may come from the plan, not the system"
        )
    for record, which in ((a, "A"), (b, "B")):
        if record.status != "completed":
            warnings.append(f"run {which} ({record.id}) is {record.status}: it may have measured less")
    return warnings


class _Artifacts:
    """Reads the stored artifacts a comparison needs; a missing or unreadable one becomes a note."""

    def __init__(self, store: Store, notes: list[str]) -> None:
        self._store = store
        self._notes = notes

    def _read(self, artifact: ArtifactRecord, limit: int | None = None) -> bytes | None:
        path: Path = self._store.artifact_path(artifact.sha256)
        try:
            if limit is not None and path.stat().st_size > limit:
                self._notes.append(
                    f"{artifact.check}: {artifact.name} is over {limit // 2**20} MiB: not read"
                )
                return None
            return path.read_bytes()
        except OSError as error:
            self._notes.append(
                f"{artifact.check}: {artifact.name} cannot be read ({error.strerror or error})"
            )
            return None

    def journeys(self, artifacts: Iterable[ArtifactRecord]) -> dict[str, dict[str, object]]:
        found: dict[str, dict[str, object]] = {}
        for artifact in artifacts:
            if not _is_journey_artifact(artifact.name):
                continue
            content = self._read(artifact)
            try:
                document = json.loads(content) if content is not None else None
            except ValueError:
                document = None
            if isinstance(document, dict) and isinstance(document.get("journey"), str):
                found[document["journey"]] = document
        return found

    def distributions(self, artifacts: Iterable[ArtifactRecord]) -> Distributions:
        found: Distributions = {}
        for artifact in artifacts:
            if artifact.name == "load-histograms.json":
                reader = load_distributions
            elif _is_journey_artifact(artifact.name):
                reader = journey_distributions
            else:
                continue
            content = self._read(artifact)
            if content is None:
                continue
            try:
                found.update(reader(content))
            except (ValueError, KeyError, TypeError) as error:
                self._notes.append(
                    f"{artifact.check}: {artifact.name} cannot be read as distributions ({error})"
                )
        return found

    def tests(self, artifacts: Iterable[ArtifactRecord]) -> dict[str, str] | None:
        """Each test's outcome (passed / failed / skipped): from the check's `test-outcomes.json`,
        else (a run stored before there was one) from its JUnit reports; None: neither stored."""
        artifacts = list(artifacts)
        stored = next((a for a in artifacts if a.name == OUTCOMES_ARTIFACT), None)
        if stored is None:
            return self._junit(artifacts)
        content = self._read(stored)
        try:
            recorded = read_test_outcomes(content) if content is not None else None
        except (ValueError, TypeError) as error:
            self._notes.append(f"{stored.check}: {stored.name} cannot be read ({error})")
            recorded = None
        if recorded is None:
            return self._junit(artifacts)
        return {
            test: "passed" if item.passed_on_rerun else "failed" if item.outcome == "error" else item.outcome
            for test, item in recorded.items()
        }

    def flaky(self, artifacts: Iterable[ArtifactRecord]) -> dict[tuple[str, str], str]:
        """The tests the run's `flaky-tests.json` judged flaky, (check, test) → why; empty when
        it has none (no tests check, or a run stored before flaky-test history)."""
        stored = next((a for a in artifacts if a.name == FLAKY_ARTIFACT and a.check is None), None)
        content = self._read(stored) if stored is not None else None
        history = read_flaky_history(content) if content is not None else None
        if content is not None and history is None:
            self._notes.append(f"{FLAKY_ARTIFACT} cannot be read: its flaky tests are not marked")
        return {(test.check, test.test): test.reason for test in history.tests} if history else {}

    def _junit(self, artifacts: Iterable[ArtifactRecord]) -> dict[str, str] | None:
        """Each test's outcome over the check's JUnit reports; None: no report stored."""
        reports = [a for a in artifacts if a.media_type == "application/xml" or a.name.endswith(".xml")]
        if not reports:
            return None
        outcomes: dict[str, str] = {}
        for artifact in reports:
            content = self._read(artifact, MAX_JUNIT_BYTES)
            if content is None:
                continue
            try:
                outcomes.update(_junit_outcomes(content))
            except Exception as error:  # defusedxml's refusals, malformed XML: say so, go on
                self._notes.append(f"{artifact.check}: {artifact.name} cannot be read as JUnit ({error})")
        return outcomes


def _is_journey_artifact(name: str) -> bool:
    return fnmatch.fnmatchcase(name, "journey-*.json") and name != "journey-failures.json"


def _junit_outcomes(content: bytes) -> dict[str, str]:
    root = ElementTree.fromstring(content, forbid_dtd=True)
    outcomes: dict[str, str] = {}
    for case in root.iter("testcase"):
        name = case.get("name", "")
        classname = case.get("classname", "")
        test = f"{classname}::{name}" if classname else name
        children = {child.tag for child in case}
        if children & {"failure", "error"}:
            outcome = "failed"
        elif "skipped" in children:
            outcome = "skipped"
        else:
            outcome = "passed"
        # a test listed again (a rerun): passed if one listing passed, else failed if one failed
        seen = outcomes.get(test)
        outcomes[test] = min(outcome, seen or outcome, key=_OUTCOME_ORDER.index)
    return outcomes


_OUTCOME_ORDER = ("passed", "failed", "skipped")


def _journey_parity(
    check: str,
    journeys_a: dict[str, dict[str, object]],
    journeys_b: dict[str, dict[str, object]],
    notes: list[str],
) -> list[StepParity]:
    found: list[StepParity] = []
    for journey in _ordered(journeys_a, journeys_b):
        doc_a, doc_b = journeys_a.get(journey), journeys_b.get(journey)
        if doc_a is None or doc_b is None:
            which = "A" if doc_b is None else "B"
            found.append(
                StepParity(check, journey, "(journey)", None, None, [f"the journey ran only in run {which}"])
            )
            continue
        tallies_a, tallies_b = _tallies(doc_a), _tallies(doc_b)
        shapes_known = any(t.shapes for t in tallies_a.values()) and any(t.shapes for t in tallies_b.values())
        if not shapes_known:
            notes.append(
                f"{check}: {journey}: shapes not recorded in both runs (an older gonogo): not compared"
            )
        for step in _ordered(tallies_a, tallies_b):
            tally_a, tally_b = tallies_a.get(step), tallies_b.get(step)
            found.append(
                StepParity(
                    check, journey, step, tally_a, tally_b, _step_differences(tally_a, tally_b, shapes_known)
                )
            )
    return found


def _ordered(first: Iterable[str], second: Iterable[str]) -> list[str]:
    seen = list(dict.fromkeys([*first, *second]))
    return seen


def _tallies(document: dict[str, object]) -> dict[str, StepTally]:
    declared = document.get("steps")
    names = [name for name in declared if isinstance(name, str)] if isinstance(declared, list) else []
    reached = dict.fromkeys(names, 0)
    passed = dict.fromkeys(names, 0)
    statuses: dict[str, dict[str, int]] = {name: {} for name in names}
    shapes: dict[str, dict[str, int]] = {name: {} for name in names}
    results = document.get("results")
    for iteration in results if isinstance(results, list) else []:
        steps = iteration.get("steps") if isinstance(iteration, dict) else None
        for step in steps if isinstance(steps, list) else []:
            name = step.get("step")
            if not isinstance(name, str):
                continue
            reached[name] = reached.get(name, 0) + 1
            passed[name] = passed.get(name, 0) + (1 if step.get("ok") else 0)
            status = step.get("status")
            _count(statuses.setdefault(name, {}), str(status) if status is not None else "no response")
            shape = step.get("shape")
            if isinstance(shape, str):
                _count(shapes.setdefault(name, {}), shape)
    return {
        name: StepTally(reached[name], passed[name], statuses.get(name, {}), shapes.get(name, {}))
        for name in reached
    }


def _count(counts: dict[str, int], key: str) -> None:
    counts[key] = counts.get(key, 0) + 1


def _step_differences(a: StepTally | None, b: StepTally | None, shapes_known: bool) -> list[str]:
    if a is None or b is None:
        return [f"the step is only in run {'A' if b is None else 'B'}'s journey"]
    differences = []
    if a.outcome != b.outcome:
        differences.append(f"{a.describe()} in A, {b.describe()} in B")
    new_statuses = sorted(b.statuses.keys() - a.statuses.keys())
    gone_statuses = sorted(a.statuses.keys() - b.statuses.keys())
    if new_statuses:
        differences.append(f"status {', '.join(new_statuses)} in B, never in A")
    if gone_statuses:
        differences.append(f"status {', '.join(gone_statuses)} in A, never in B")
    if shapes_known and a.reached and b.reached:
        for shape in sorted(b.shapes.keys() - a.shapes.keys()):
            differences.append(f"response shape in B, never in A: {shape}")
        for shape in sorted(a.shapes.keys() - b.shapes.keys()):
            differences.append(f"response shape in A, never in B: {shape}")
    return differences


def _test_parity(
    check: str,
    outcomes_a: dict[str, str] | None,
    outcomes_b: dict[str, str] | None,
    notes: list[str],
    flaky: dict[str, dict[tuple[str, str], str]],
) -> tuple[list[TestChange], int]:
    if outcomes_a is None or outcomes_b is None:
        notes.append(f"{check}: no JUnit report stored in both runs: the tests' outcomes not compared")
        return [], 0
    changes = []
    only = len(outcomes_a.keys() ^ outcomes_b.keys())
    for test in sorted(outcomes_a.keys() | outcomes_b.keys()):
        a, b = outcomes_a.get(test), outcomes_b.get(test)
        if a is None or b is None:
            continue  # a test added or removed is not a failure; counted below
        if (a == "failed") != (b == "failed"):
            judged = {run: found[check, test] for run, found in flaky.items() if (check, test) in found}
            changes.append(TestChange(check, test, a, b, judged))
    if only:
        notes.append(
            f"{check}: {only} test(s) are in only one run's reports (added or removed): not compared"
        )
    return changes, len(outcomes_a.keys() & outcomes_b.keys())


def _latency_changes(
    check: str, a: Distributions, b: Distributions, confidence: float, notes: list[str]
) -> list[LatencyChange]:
    changes = []
    for stem in sorted(a.keys() & b.keys()):
        try:
            shift = compare(a[stem], b[stem], confidence=confidence)
        except TooFewValues as error:
            notes.append(f"{check}.{stem}: not compared ({error})")
            continue
        changes.append(
            LatencyChange(
                check=check,
                distribution=stem,
                a_count=shift.baseline_count,
                b_count=shift.candidate_count,
                a_median=median(a[stem]),
                b_median=median(b[stem]),
                p_value=shift.p_value,
                shift=shift.shift,
                low=shift.low,
                high=shift.high,
                effect_size=shift.effect_size,
                classification="no significant difference",
            )
        )
    return changes


def _holm(changes: list[LatencyChange], *, tolerance: float, confidence: float) -> list[LatencyChange]:
    """Every change classified on its Holm-adjusted p-value (step-down: the i-th smallest of m
    p-values times m - i, never below the one before; at most 1)."""
    adjusted: dict[int, float] = {}
    running = 0.0
    order = sorted(range(len(changes)), key=lambda index: changes[index].p_value)
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(changes) - rank) * changes[index].p_value))
        adjusted[index] = running
    return [
        replace(
            change,
            p_adjusted=adjusted[index],
            classification=classify(
                change.low,
                change.high,
                change.shift,
                adjusted[index],
                change.a_median,
                tolerance=tolerance,
                confidence=confidence,
            ),
        )
        for index, change in enumerate(changes)
    ]


def _metric_changes(a: list[MetricRecord], b: list[MetricRecord], checks: set[str]) -> list[MetricChange]:
    """Every metric of a check both runs ran (and the run-level `service.*` ones), side by side."""
    by_name_a = {
        metric.full_name: metric for metric in a if metric.check in checks or metric.check == "service"
    }
    by_name_b = {
        metric.full_name: metric for metric in b if metric.check in checks or metric.check == "service"
    }
    changes = []
    for name in sorted(by_name_a.keys() | by_name_b.keys()):
        metric_a, metric_b = by_name_a.get(name), by_name_b.get(name)
        unit = (metric_a or metric_b).unit  # type: ignore[union-attr]
        changes.append(
            MetricChange(
                name, unit, metric_a.value if metric_a else None, metric_b.value if metric_b else None
            )
        )
    return changes


def _gate_changes(store: Store, run_a: str, run_b: str) -> list[GateChange]:
    verdict_a, verdict_b = store.verdict(run_a), store.verdict(run_b)
    gates_a = _gates(verdict_a.gates if verdict_a else [])
    gates_b = _gates(verdict_b.gates if verdict_b else [])
    changes = []
    for key in list(dict.fromkeys([*gates_a, *gates_b])):
        gate_a, gate_b = gates_a.get(key), gates_b.get(key)
        unit = (gate_a or gate_b).unit  # type: ignore[union-attr]
        changes.append(
            GateChange(
                metric=key[0],
                expr=key[1],
                a_status=gate_a.status if gate_a else None,
                b_status=gate_b.status if gate_b else None,
                a_value=gate_a.value if gate_a else None,
                b_value=gate_b.value if gate_b else None,
                unit=unit,
            )
        )
    return changes


def _gates(gates: list[GateRecord]) -> dict[tuple[str, str], GateRecord]:
    return {(gate.metric, gate.expr): gate for gate in gates}
