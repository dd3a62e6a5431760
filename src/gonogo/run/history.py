"""The history step of a run: flaky tests over this run and the plan's earlier runs.

After the checks and before the gates, the per-test outcomes that `tests` checks stored
(`test-outcomes.json`) are read for this run and for up to `history.runs` earlier runs of the
same plan; `verdict.flaky` judges them, and the result becomes evidence: the metrics
`history.flaky_tests` and `history.tests_compared_runs`, each naming the runs read, and the run
artifact `flaky-tests.json` they point at (docs/flaky-tests.md).
"""

from __future__ import annotations

__all__ = ["record_flaky_tests"]

import json
from datetime import UTC, datetime

from gonogo.evidence import MetricRecord, Store
from gonogo.evidence.test_outcomes import OUTCOMES_ARTIFACT, run_test_outcomes
from gonogo.plan.names import HISTORY_PREFIX
from gonogo.verdict.flaky import FLAKY_ARTIFACT, FlakyHistory, RunOutcomes, find_flaky


def record_flaky_tests(store: Store, run_id: str, plan_name: str, earlier_runs: int) -> FlakyHistory | None:
    """Judge and record this run's flaky tests; None (and nothing recorded) when no check of this
    run stored per-test outcomes, so that `history.flaky_tests` is *not measured* rather than 0."""
    current, broken = run_test_outcomes(store, run_id)
    if current is None:
        return None
    unreadable = [run_id] if broken else []
    window: list[RunOutcomes] = []
    # Only this run's tests are judged: of the earlier runs, only theirs are kept (memory).
    wanted = frozenset(current)
    earlier = store.plan_runs(plan_name, before=run_id, limit=earlier_runs) if earlier_runs else []
    for run in reversed(earlier):
        found, broken = run_test_outcomes(store, run.id, wanted)
        if broken:
            unreadable.append(run.id)
        if found is not None:
            window.append(RunOutcomes(run.id, found))
    window.append(RunOutcomes(run_id, current))
    history = find_flaky(window, unreadable=unreadable)
    artifact = store.add_artifact(
        run_id,
        json.dumps(history.to_json(), indent=1, ensure_ascii=False).encode(),
        name=FLAKY_ARTIFACT,
        media_type="application/json",
    )
    runs = len(history.window)
    source = f"{OUTCOMES_ARTIFACT} of {runs} run{'s' if runs != 1 else ''} of plan {plan_name}: " + ", ".join(
        history.window
    )
    if history.unreadable:
        source += f" (unreadable, left out: {', '.join(history.unreadable)})"
    for name, value in (("flaky_tests", len(history.tests)), ("tests_compared_runs", runs)):
        store.add_metric(
            run_id,
            MetricRecord(
                check=HISTORY_PREFIX,
                name=name,
                value=float(value),
                unit="count",
                dimension="tests",
                source=source,
                recorded_at=datetime.now(UTC),
                artifact_sha256=artifact.sha256,
            ),
        )
    return history
