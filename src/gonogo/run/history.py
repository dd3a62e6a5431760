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

from gonogo.checks.tests.check import OUTCOMES_ARTIFACT
from gonogo.evidence import MetricRecord, Store
from gonogo.plan.names import HISTORY_PREFIX
from gonogo.verdict.flaky import (
    FLAKY_ARTIFACT,
    FlakyHistory,
    RecordedOutcome,
    RunOutcomes,
    find_flaky,
    read_test_outcomes,
)


def record_flaky_tests(store: Store, run_id: str, plan_name: str, earlier_runs: int) -> FlakyHistory | None:
    """Judge and record this run's flaky tests; None (and nothing recorded) when no check of this
    run stored per-test outcomes, so that `history.flaky_tests` is *not measured* rather than 0."""
    current, unreadable = _outcomes(store, run_id)
    if current is None:
        return None
    window: list[RunOutcomes] = []
    # Only this run's tests are judged: of the earlier runs, only theirs are kept (memory).
    wanted = frozenset(current.tests)
    earlier = store.plan_runs(plan_name, before=run_id, limit=earlier_runs) if earlier_runs else []
    for run in reversed(earlier):
        found, broken = _outcomes(store, run.id, wanted)
        unreadable += broken
        if found is not None:
            window.append(found)
    window.append(current)
    history = find_flaky(window, unreadable=sorted(set(unreadable)))
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


def _outcomes(
    store: Store, run_id: str, wanted: frozenset[tuple[str, str]] | None = None
) -> tuple[RunOutcomes | None, list[str]]:
    """The per-test outcomes a run stored, by (check, test id); None when it stored none. A
    stored document that cannot be read (pruned by hand, another format) leaves that check out
    and names the run."""
    tests: dict[tuple[str, str], RecordedOutcome] = {}
    found = False
    unreadable: list[str] = []
    for artifact in store.artifacts(run_id):
        if artifact.name != OUTCOMES_ARTIFACT or artifact.check is None:
            continue
        try:
            outcomes = read_test_outcomes(store.artifact_path(artifact.sha256).read_bytes())
        except (OSError, ValueError, TypeError):
            unreadable.append(run_id)
            continue
        found = True
        for test_id, outcome in outcomes.items():
            key = (artifact.check, test_id)
            if wanted is None or key in wanted:
                tests[key] = outcome
    if not found:
        return None, unreadable
    return RunOutcomes(run_id, tests), unreadable
