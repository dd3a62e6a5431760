"""Per-test outcomes as stored evidence: a check that reads test reports (the `tests` check)
stores one artifact `test-outcomes.json` per run, shaped
`{"format": 1, "tests": [{"id", "outcome", "reruns", "passed_on_rerun", "cases"}]}`, which the
history of flaky tests reads in later runs (docs/flaky-tests.md). The writer and every reader
share this module's names, so the format is defined once."""

from __future__ import annotations

__all__ = [
    "OUTCOMES_ARTIFACT",
    "OUTCOMES_FORMAT",
    "RecordedOutcome",
    "read_test_outcomes",
    "run_test_outcomes",
]

import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gonogo.evidence.store import Store

OUTCOMES_ARTIFACT = "test-outcomes.json"
OUTCOMES_FORMAT = 1

TestKey = tuple[str, str]  # (check name, test id)


@dataclass(frozen=True)
class RecordedOutcome:
    """One test's result in one run, as its check stored it."""

    outcome: str  # passed / failed / error / skipped
    reruns: int = 0
    passed_on_rerun: bool = False


def read_test_outcomes(content: bytes) -> dict[str, RecordedOutcome]:
    """A `test-outcomes.json` document as test id → outcome. Raises ValueError when it is no
    such document (of this format)."""
    document = json.loads(content)
    tests = document.get("tests") if isinstance(document, dict) else None
    if not isinstance(tests, list) or document.get("format") != OUTCOMES_FORMAT:
        raise ValueError(f"not a {OUTCOMES_ARTIFACT} document of format {OUTCOMES_FORMAT}")
    found: dict[str, RecordedOutcome] = {}
    for entry in tests:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            raise ValueError("a test without an id")
        found[entry["id"]] = RecordedOutcome(
            outcome=str(entry.get("outcome", "")),
            reruns=int(entry.get("reruns", 0)),
            passed_on_rerun=bool(entry.get("passed_on_rerun", False)),
        )
    return found


def run_test_outcomes(
    store: Store, run_id: str, wanted: Collection[TestKey] | None = None
) -> tuple[dict[TestKey, RecordedOutcome] | None, bool]:
    """The per-test outcomes the checks of a run stored, by (check, test id), only those in
    `wanted` when given; None when it stored none. The flag says whether a stored document could
    not be read (pruned by hand, another format): that check is then left out."""
    tests: dict[TestKey, RecordedOutcome] = {}
    found = unreadable = False
    for artifact in store.artifacts(run_id):
        if artifact.name != OUTCOMES_ARTIFACT or artifact.check is None:
            continue
        try:
            outcomes = read_test_outcomes(store.artifact_path(artifact.sha256).read_bytes())
        except (OSError, ValueError, TypeError):
            unreadable = True
            continue
        found = True
        for test_id, outcome in outcomes.items():
            key = (artifact.check, test_id)
            if wanted is None or key in wanted:
                tests[key] = outcome
    return (tests if found else None), unreadable
