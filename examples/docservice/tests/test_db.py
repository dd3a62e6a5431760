"""The data layer: users, tokens, documents and the job table's transitions."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import add_document, make_user
from docservice.db import Database, DatabaseUnavailable, NewDocument
from docservice.storage import Storage


def test_initialize_is_idempotent_and_uses_wal(tmp_path: Path) -> None:
    database = Database(tmp_path / "nested" / "dir" / "x.db")
    database.initialize()
    database.initialize()
    database.ping()
    with database.connect() as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_ping_fails_without_schema(tmp_path: Path) -> None:
    (tmp_path / "empty.db").touch()
    with pytest.raises(DatabaseUnavailable, match="no such table"):
        Database(tmp_path / "empty.db").ping()


def test_a_database_file_that_went_missing_is_unavailable_not_recreated(db: Database) -> None:
    db.path.rename(db.path.with_name("moved.db"))
    with pytest.raises(DatabaseUnavailable, match="unable to open"):
        db.ping()
    assert not db.path.exists()
    db.path.with_name("moved.db").rename(db.path)
    db.ping()


def test_users_are_unique_by_email(db: Database) -> None:
    user = db.create_user("u1", "a@example.test", "hash", 1.0)
    assert user is not None and user.email == "a@example.test"
    assert db.create_user("u2", "a@example.test", "other", 2.0) is None
    found = db.get_user_by_email("a@example.test")
    assert found is not None and found.id == "u1" and found.password_hash == "hash"
    assert db.get_user_by_email("nobody@example.test") is None


def test_tokens_resolve_until_they_expire(db: Database) -> None:
    user_id = make_user(db)
    db.create_token("h1", user_id, now=100.0, expires_at=200.0)
    db.create_token("h2", user_id, now=100.0, expires_at=300.0)
    user = db.user_for_token("h1", 150.0)
    assert user is not None and user.id == user_id
    assert db.user_for_token("h1", 200.0) is None
    assert db.user_for_token("unknown", 150.0) is None
    assert db.delete_expired_tokens(250.0) == 1
    assert db.user_for_token("h2", 250.0) is not None


def test_a_transaction_rolls_back_on_error(db: Database) -> None:
    with pytest.raises(RuntimeError), db.transaction() as conn:
        conn.execute("INSERT INTO users (id, email, password_hash, created_at) VALUES ('x', 'x@x.x', 'h', 0)")
        raise RuntimeError("boom")
    assert db.get_user_by_email("x@x.x") is None


def test_document_lifecycle_and_ownership(db: Database, storage: Storage) -> None:
    alice, bob = make_user(db), make_user(db)
    doc_id = add_document(db, storage, b"hello", owner_id=alice, now=10.0)
    doc = db.get_document(doc_id)
    assert doc is not None
    assert (doc.status, doc.size, doc.attempts, doc.result) == ("pending", 5, 0, None)
    assert db.get_document(doc_id, owner_id=alice) is not None
    assert db.get_document(doc_id, owner_id=bob) is None
    assert db.delete_document(doc_id, bob) is None
    deleted = db.delete_document(doc_id, alice)
    assert deleted is not None and deleted.id == doc_id
    assert db.get_document(doc_id) is None
    assert db.jobs_for_document(doc_id) == []  # the job went with it


def test_create_document_returns_what_it_stored(db: Database) -> None:
    owner = make_user(db)
    new = NewDocument("ab" * 16, owner, None, None, None, 0, "e3b0", "ab/" + "ab" * 16)
    created = db.create_document(new, max_attempts=2, now=5.0)
    assert created == db.get_document(new.id)
    (job,) = db.jobs_for_document(new.id)
    assert (job["status"], job["attempts"], job["max_attempts"]) == ("queued", 0, 2)


def test_listing_pages_newest_first(db: Database, storage: Storage) -> None:
    owner, other = make_user(db), make_user(db)
    ids = [add_document(db, storage, b"x", owner_id=owner, now=float(i)) for i in range(5)]
    add_document(db, storage, b"y", owner_id=other)
    page, total = db.list_documents(owner, limit=2, offset=0)
    assert total == 5 and [d.id for d in page] == [ids[4], ids[3]]
    page, _ = db.list_documents(owner, limit=2, offset=4)
    assert [d.id for d in page] == [ids[0]]
    assert db.list_documents(owner, limit=2, offset=10) == ([], 5)


def test_counts_by_status(db: Database, storage: Storage) -> None:
    for _ in range(3):
        add_document(db, storage, b"x")
    assert db.count_documents_by_status() == {"pending": 3}
    assert db.count_jobs_by_status() == {"queued": 3}
    assert db.oldest_queued_age(now=10.0) == 10.0
    db.claim_job("w", now=10.0, lease_seconds=5)
    assert db.count_jobs_by_status() == {"queued": 2, "running": 1}
    assert db.count_documents_by_status() == {"pending": 2, "processing": 1}


def test_oldest_queued_age_is_zero_when_idle(db: Database) -> None:
    assert db.oldest_queued_age(now=10.0) == 0.0


def test_job_transitions_are_fenced_by_claimant(db: Database, storage: Storage) -> None:
    doc_id = add_document(db, storage, b"x")
    job = db.claim_job("w1", now=1.0, lease_seconds=10)
    assert job is not None and job.attempts == 1 and job.previous_claimant is None
    assert db.get_job(job.id)["claimed_by"] == "w1"  # type: ignore[index]
    assert not db.complete_job(job.id, "w2", {}, now=2.0)
    assert not db.retry_job(job.id, "w2", "e", available_at=3.0, now=2.0)
    assert not db.fail_job(job.id, "w2", "e", now=2.0)
    assert not db.release_job(job.id, "w2", now=2.0)
    assert not db.extend_lease(job.id, "w2", now=2.0, lease_seconds=10)
    assert db.complete_job(job.id, "w1", {"ok": True}, now=2.0)
    doc = db.get_document(doc_id)
    assert doc is not None and doc.status == "processed" and doc.result == {"ok": True}
    assert not db.complete_job(job.id, "w1", {}, now=3.0)  # only once
    assert db.get_job(12345) is None
