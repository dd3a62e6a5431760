"""Recomputing a run's flaky tests from the per-test outcomes its window of runs stored.

The run judged its tests over its plan's earlier runs (`run/history.py`) and kept the result as
`flaky-tests.json` and the `history.*` metrics. The runs it read are named there; their
`test-outcomes.json` are read again and judged with the same function (`verdict.flaky`), and
each difference is named. A run of the window that is no longer in the store cannot be read
again: that is said, not counted as a mismatch.
"""

from __future__ import annotations

__all__ = ["HistoryFindings", "verify_flaky_history"]

from dataclasses import dataclass, field

from gonogo.errors import UserError
from gonogo.evidence import Store
from gonogo.evidence.test_outcomes import run_test_outcomes
from gonogo.report import RunReport
from gonogo.verdict.flaky import FLAKY_ARTIFACT, RunOutcomes, find_flaky, read_flaky_history

_METRIC_PREFIX = "history."


@dataclass
class HistoryFindings:
    mismatches: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)


def verify_flaky_history(store: Store, report: RunReport) -> HistoryFindings:
    found = HistoryFindings()
    run_id = report.run.id
    artifact = next((a for a in report.artifacts if a.name == FLAKY_ARTIFACT and a.check is None), None)
    if artifact is None:
        return found
    try:
        stored = read_flaky_history(store.artifact_path(artifact.sha256).read_bytes())
    except OSError:
        return found  # a missing artifact file is named by the artifact check
    if stored is None or not stored.window or stored.window[-1] != run_id:
        found.mismatches.append(f"{FLAKY_ARTIFACT}: not a history of flaky tests judged for this run")
        return found
    metrics = {m.name: m.value for m in report.metrics if m.check == _METRIC_PREFIX[:-1]}
    for name, value in (("flaky_tests", len(stored.tests)), ("tests_compared_runs", len(stored.window))):
        if metrics.get(name) != value:
            found.mismatches.append(
                f"{_METRIC_PREFIX}{name}: recorded {metrics.get(name)}, {FLAKY_ARTIFACT} gives {value}"
            )
    current, _ = run_test_outcomes(store, run_id)
    if current is None:
        found.mismatches.append(
            f"{FLAKY_ARTIFACT}: the run stores no per-test outcomes, yet its history judged some"
        )
        return found
    window: list[RunOutcomes] = []
    for earlier in stored.window[:-1]:
        try:
            store.resolve_run(earlier)
        except UserError:
            found.warnings.append(
                f"{FLAKY_ARTIFACT}: not recomputed, run {earlier} of its window is no longer in the store"
            )
            return found
        outcomes, _ = run_test_outcomes(store, earlier, frozenset(current))
        window.append(RunOutcomes(earlier, outcomes or {}))
    window.append(RunOutcomes(run_id, current))
    fresh = find_flaky(window, unreadable=stored.unreadable)
    if fresh.to_json() != stored.to_json():
        mine = {(t.check, t.test) for t in stored.tests}
        theirs = {(t.check, t.test) for t in fresh.tests}
        said = [
            *(f"recomputed only: {check} {test}" for check, test in sorted(theirs - mine)),
            *(f"stored only: {check} {test}" for check, test in sorted(mine - theirs)),
        ]
        found.mismatches.append(
            f"{FLAKY_ARTIFACT}: the test outcomes of its {_runs(len(window))} give other flaky tests "
            f"({'; '.join(said) or 'their figures differ'})"
        )
        return found
    found.checked.append(
        f"{FLAKY_ARTIFACT}: recomputed from the test outcomes of its {_runs(len(window))}: "
        f"{len(fresh.tests)} flaky test{'s' if len(fresh.tests) != 1 else ''}, as stored"
    )
    return found


def _runs(count: int) -> str:
    return f"{count} run{'s' if count != 1 else ''}"
