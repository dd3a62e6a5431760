"""A plan's baseline in the store: every setting kept, the latest wins, runs that cannot be a
baseline refused; a verdict keeps the baseline it compared with; a store of version 3 migrated."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, text, update

from gonogo.errors import UserError
from gonogo.evidence import BaselineChoice, Store, VerdictRecord
from gonogo.evidence import schema as s

BeginRun = Callable[..., str]  # the `begin_run` fixture


def verdict(decision: str = "GO", baseline: BaselineChoice | None = None) -> VerdictRecord:
    return VerdictRecord(
        decision=decision,  # type: ignore[arg-type]
        score=100.0, minimum_score=80.0, dimensions={}, reasons=["every must gate passed"], gates=[],
        decided_at=datetime(2026, 12, 7, 12, 0, tzinfo=UTC), baseline=baseline,
    )  # fmt: skip


def finished(store: Store, begin_run: BeginRun, *, name: str = "demo", decision: str | None = "GO") -> str:
    run_id = begin_run(name=name)
    if decision is not None:
        store.save_verdict(run_id, verdict(decision))
    store.finish_run(run_id, "completed")
    return run_id


def test_settings_are_added_and_the_latest_wins(store: Store, begin_run: BeginRun) -> None:
    assert store.baseline_setting("demo") is None and store.baseline_history("demo") == []
    first, second = finished(store, begin_run), finished(store, begin_run, decision="NO-GO")
    store.set_baseline("demo", first, set_by="alice")
    pinned = store.set_baseline("demo", second, set_by="bob")
    assert store.baseline_setting("demo") == pinned and pinned.run_id == second and pinned.set_by == "bob"
    cleared = store.clear_baseline("demo", set_by="carol")
    assert store.baseline_setting("demo") == cleared and cleared.run_id is None
    assert [(h.run_id, h.set_by) for h in store.baseline_history("demo")] == [
        (None, "carol"), (second, "bob"), (first, "alice"),
    ]  # fmt: skip
    assert store.baseline_setting("other") is None  # per plan


def test_runs_that_cannot_be_a_baseline_are_refused(store: Store, begin_run: BeginRun) -> None:
    other = finished(store, begin_run, name="other")
    with pytest.raises(UserError, match="a run of plan 'other', not 'demo'"):
        store.set_baseline("demo", other, set_by="alice")
    running = begin_run()
    store.save_verdict(running, verdict())
    with pytest.raises(UserError, match="is still running"):
        store.set_baseline("demo", running, set_by="alice")
    aborted = begin_run()
    store.finish_run(aborted, "aborted", "interrupted")
    with pytest.raises(UserError, match=r"was interrupted before it completed \(aborted\)"):
        store.set_baseline("demo", aborted, set_by="alice")
    without = finished(store, begin_run, decision=None)
    with pytest.raises(UserError, match="has no verdict"):
        store.set_baseline("demo", without, set_by="alice")
    with pytest.raises(UserError, match="no run 'nope'"):
        store.set_baseline("demo", "nope", set_by="alice")
    assert store.baseline_history("demo") == []


def test_a_verdict_keeps_the_baseline_it_compared_with(store: Store, begin_run: BeginRun) -> None:
    earlier = finished(store, begin_run)
    run_id = begin_run()
    choice = BaselineChoice("recent", [earlier], "the last passing run")
    store.save_verdict(run_id, verdict(baseline=choice))
    stored = store.verdict(run_id)
    assert stored is not None and stored.baseline == choice
    assert store.verdict(earlier) is not None and store.verdict(earlier).baseline is None  # type: ignore[union-attr]


def test_a_store_of_version_3_is_migrated(store_url: str, artifacts_dir: Path) -> None:
    with Store.open(store_url, artifacts_dir=artifacts_dir) as store:
        run_id = store.begin_run(
            name="old", plan_path="p", plan_hash="h", plan_text="t", git_commit=None, host="h",
            tool_versions={}, owner_pid=1,
        )  # fmt: skip
        store.save_verdict(run_id, verdict())
        store.finish_run(run_id, "completed")
        with store._engine.begin() as conn:  # the tables as schema version 3 had them
            s.baselines.drop(conn)
            conn.execute(text("ALTER TABLE verdicts DROP COLUMN baseline"))
            conn.execute(update(s.schema_version).values(version=3))
    with Store.open(store_url, artifacts_dir=artifacts_dir) as store:
        with store._engine.connect() as conn:
            assert conn.execute(select(s.schema_version.c.version)).scalar_one() == s.SCHEMA_VERSION == 4
        stored = store.verdict(run_id)
        assert stored is not None and stored.decision == "GO" and stored.baseline is None
        store.set_baseline("old", run_id, set_by="alice")
        assert store.baseline_setting("old") is not None
