"""Sign-offs, written report files and what a verdict keeps for `gonogo verify`, on both backends."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Column, Float, MetaData, String, Table, Text, insert, select, text, update

from gonogo.errors import UserError
from gonogo.evidence import (
    GateRecord,
    SignoffRecord,
    SignoffRequirement,
    Store,
    VerdictRecord,
)
from gonogo.evidence import schema as s

T0 = datetime(2026, 12, 6, 10, 0, 0, 123456, tzinfo=UTC)

BeginRun = Callable[..., str]  # the `begin_run` fixture


def signoff(role: str, confidence: int, *, at: datetime = T0, digest: str = "d" * 64) -> SignoffRecord:
    return SignoffRecord(
        role=role, confidence=confidence, note=f"{role} looked", user="alice", git_name="Alice A",
        git_email="alice@example.com", signed_at=at, evidence_digest=digest, decision="GO",
    )  # fmt: skip


def verdict(**overrides: object) -> VerdictRecord:
    fields: dict[str, object] = {
        "decision": "GO", "score": 100.0, "minimum_score": 80.0, "dimensions": {"tests": 100.0},
        "reasons": ["every must gate passed"], "decided_at": T0,
        "gates": [GateRecord("unit.total", "unit.total", "== 9", "must", "pass", 9.0, "count", "== 9",
                             "tests", "junit.xml", None)],
    }  # fmt: skip
    fields.update(overrides)
    return VerdictRecord(**fields)  # type: ignore[arg-type]


def test_signoffs_are_added_never_replaced_and_read_oldest_first(store: Store, begin_run: BeginRun) -> None:
    run_id = begin_run()
    later = signoff("qa", 9, at=T0 + timedelta(seconds=5))
    first_id = store.add_signoff(run_id, signoff("qa", 6))
    second_id = store.add_signoff(run_id, later)
    store.add_signoff(begin_run(), signoff("qa", 10))  # another run's
    found = store.signoffs(run_id)
    assert [(x.role, x.confidence, x.id) for x in found] == [("qa", 6, first_id), ("qa", 9, second_id)]
    assert found[1] == SignoffRecord(**{**later.__dict__, "id": second_id})


def test_a_signoff_of_an_unknown_run_is_refused(store: Store) -> None:
    with pytest.raises(UserError, match="no run 'nope'"):
        store.add_signoff("nope", signoff("qa", 9))


def test_report_files_are_recorded_with_their_hash(store: Store, begin_run: BeginRun, tmp_path: Path) -> None:
    run_id = begin_run()
    store.add_report_file(run_id, "json", tmp_path / "report.json", "a" * 64)
    store.add_report_file(run_id, "json", tmp_path / "report.json", "b" * 64)
    store.add_report_file(run_id, "md", tmp_path / "summary.md", "c" * 64)
    files = store.report_files(run_id)
    assert [(f.format, Path(f.path).name, f.sha256) for f in files] == [
        ("json", "report.json", "a" * 64), ("json", "report.json", "b" * 64), ("md", "summary.md", "c" * 64),
    ]  # fmt: skip


def test_a_verdict_keeps_its_run_problems_and_required_signoffs(store: Store, begin_run: BeginRun) -> None:
    run_id = begin_run()
    requirement = SignoffRequirement(roles=["qa", "security"], min_confidence=8)
    store.save_verdict(run_id, verdict(run_problems=["check e2e crashed: boom; twice"], signoff=requirement))
    stored = store.verdict(run_id)
    assert stored is not None
    assert stored.run_problems == ["check e2e crashed: boom; twice"]
    assert stored.signoff == requirement
    store.save_verdict(run_id, verdict())
    again = store.verdict(run_id)
    assert again is not None and again.signoff is None and again.run_problems == []


def test_deleting_a_run_deletes_its_signoffs_and_report_files(store: Store, begin_run: BeginRun) -> None:
    run_id, kept = begin_run(), begin_run()
    for one in (run_id, kept):
        store.add_signoff(one, signoff("qa", 9))
        store.add_report_file(one, "md", Path("/r/summary.md"), "c" * 64)
    store.delete_runs([run_id])
    assert store.signoffs(run_id) == [] and store.report_files(run_id) == []
    assert len(store.signoffs(kept)) == 1 and len(store.report_files(kept)) == 1


def _verdicts_table_of_version_2() -> Table:
    return Table(
        "verdicts",
        MetaData(),
        Column("run_id", String(64), primary_key=True),
        Column("decision", String(8), nullable=False),
        Column("score", Float),
        Column("minimum_score", Float, nullable=False),
        Column("dimensions", Text, nullable=False),
        Column("reasons", Text, nullable=False),
        Column("decided_at", s.UTCDateTime, nullable=False),
    )


def test_a_store_of_version_2_is_migrated_keeping_its_verdicts(store_url: str, artifacts_dir: Path) -> None:
    with Store.open(store_url, artifacts_dir=artifacts_dir) as store:
        run_id = store.begin_run(
            name="old", plan_path="p", plan_hash="h", plan_text="t", git_commit=None, host="h",
            tool_versions={}, owner_pid=1,
        )  # fmt: skip
        store.finish_run(run_id, "completed", "check a crashed; check b could not measure: x")
        with store._engine.begin() as conn:  # the tables as schema version 2 had them
            s.gates.drop(conn)
            s.signoffs.drop(conn)
            s.report_files.drop(conn)
            conn.execute(text("DROP TABLE verdicts"))
            old = _verdicts_table_of_version_2()
            old.create(conn)
            conn.execute(
                insert(old).values(
                    run_id=run_id, decision="NO-GO", score=None, minimum_score=80.0, dimensions="{}",
                    reasons=json.dumps(["check a crashed", "check b could not measure: x"]), decided_at=T0,
                )
            )  # fmt: skip
            conn.execute(update(s.schema_version).values(version=2))
    with Store.open(store_url, artifacts_dir=artifacts_dir) as store:
        with store._engine.connect() as conn:
            assert conn.execute(select(s.schema_version.c.version)).scalar_one() == s.SCHEMA_VERSION == 4
        stored = store.verdict(run_id)
        assert stored is not None and stored.decision == "NO-GO" and stored.signoff is None
        assert stored.run_problems == ["check a crashed", "check b could not measure: x"]
        store.add_signoff(run_id, signoff("qa", 9))
        assert len(store.signoffs(run_id)) == 1
