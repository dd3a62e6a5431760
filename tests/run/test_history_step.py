"""The run's history step against a real store: which earlier runs it reads, what it records,
and `gonogo verify` judging it again from the same stored outcomes."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from gonogo.evidence import Store
from gonogo.report import collect
from gonogo.run.history import record_flaky_tests
from gonogo.verify.history import verify_flaky_history


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(f"sqlite:///{tmp_path / 'gonogo.db'}", artifacts_dir=tmp_path / "artifacts") as opened:
        yield opened


def begin(store: Store, name: str = "demo") -> str:
    return store.begin_run(
        name=name, plan_path="/plans/gonogo.yaml", plan_hash="ab" * 32, plan_text=f"name: {name}\n",
        git_commit=None, host=socket.gethostname(), tool_versions={}, owner_pid=os.getpid(),
    )  # fmt: skip


def run_with(store: Store, outcomes: dict[str, str] | bytes | None, name: str = "demo") -> str:
    """A run of plan `name` whose check `unit` stored these outcomes (test id → outcome), or
    these bytes as its test-outcomes.json, or nothing."""
    run_id = begin(store, name)
    if outcomes is not None:
        content = outcomes if isinstance(outcomes, bytes) else _document(outcomes)
        store.add_artifact(
            run_id, content, name="test-outcomes.json", media_type="application/json", check="unit"
        )
    return run_id


def _document(outcomes: dict[str, str]) -> bytes:
    tests = [
        {"id": i, "outcome": o, "reruns": 0, "passed_on_rerun": False, "cases": 1}
        for i, o in outcomes.items()
    ]
    return json.dumps({"format": 1, "tests": tests}).encode()


def test_the_window_is_the_runs_that_stored_outcomes_oldest_first(store: Store) -> None:
    first = run_with(store, {"t": "passed", "s": "passed"})
    run_with(store, None)  # a run without a tests check: not in the window
    broken = run_with(store, b"{garbage")  # unreadable: left out, and said
    run_with(store, {"t": "passed"}, name="other")  # another plan: never read
    fourth = run_with(store, {"t": "failed", "s": "passed"})
    this = run_with(store, {"t": "passed", "s": "skipped"})
    history = record_flaky_tests(store, this, "demo", earlier_runs=10)
    assert history is not None
    assert history.window == (first, fourth, this) and history.unreadable == (broken,)
    assert [(test.test, test.symbols) for test in history.tests] == [("t", "✓✗✓")]
    assert history.judged == 1  # s was skipped in this run
    metrics = {metric.full_name: metric for metric in store.metrics(this)}
    assert metrics["history.flaky_tests"].value == 1
    assert metrics["history.tests_compared_runs"].value == 3
    source = metrics["history.flaky_tests"].source
    assert all(run in source for run in (first, fourth, this)) and f"unreadable, left out: {broken}" in source
    (artifact,) = [a for a in store.artifacts(this) if a.name == "flaky-tests.json"]
    assert artifact.check is None and metrics["history.flaky_tests"].artifact_sha256 == artifact.sha256
    stored = json.loads(store.artifact_path(artifact.sha256).read_bytes())
    assert stored["window"] == [first, fourth, this] and stored["tests"][0]["flip_rate"] == 1.0


def test_history_runs_bounds_the_earlier_runs_read(store: Store) -> None:
    run_with(store, {"t": "passed"})
    run_with(store, {"t": "failed"})
    this = run_with(store, {"t": "passed"})
    limited = record_flaky_tests(store, this, "demo", earlier_runs=1)
    assert limited is not None and len(limited.window) == 2 and limited.tests == ()  # ✗✓: one flip
    alone = record_flaky_tests(store, this, "demo", earlier_runs=0)
    assert alone is not None and len(alone.window) == 1


def test_a_run_without_outcomes_records_nothing(store: Store) -> None:
    run_with(store, {"t": "passed"})
    this = run_with(store, None)
    assert record_flaky_tests(store, this, "demo", earlier_runs=10) is None
    assert store.metrics(this) == [] and store.artifacts(this) == []


def test_verify_judges_the_stored_outcomes_again(store: Store) -> None:
    first = run_with(store, {"t": "passed"})
    second = run_with(store, {"t": "failed"})
    this = run_with(store, {"t": "passed"})
    record_flaky_tests(store, this, "demo", earlier_runs=10)
    (checked,) = verify_flaky_history(store, collect(store, this)).checked
    assert checked == (
        "flaky-tests.json: recomputed from the test outcomes of its 3 runs: 1 flaky test, as stored"
    )
    # an earlier run's stored outcomes changed after the fact: t never failed, so it is not flaky
    (artifact,) = [a for a in store.artifacts(second) if a.name == "test-outcomes.json"]
    path = store.artifact_path(artifact.sha256)
    path.chmod(0o644)
    path.write_bytes(_document({"t": "passed"}))
    (mismatch,) = verify_flaky_history(store, collect(store, this)).mismatches
    assert mismatch.startswith("flaky-tests.json: the test outcomes of its 3 runs give other flaky tests")
    assert "stored only: unit t" in mismatch
    store.delete_runs([first])
    found = verify_flaky_history(store, collect(store, this))
    assert found.mismatches == [] and found.warnings == [
        f"flaky-tests.json: not recomputed, run {first} of its window is no longer in the store"
    ]
