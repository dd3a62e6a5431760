"""The data layer on both backends (SQLite and a real PostgreSQL server), and surviving a
database that goes away and comes back."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from conftest import FAST_SCRYPT_N, Relay, add_document, auth_headers, make_user
from docservice.api import create_app
from docservice.config import ApiSettings, WorkerSettings
from docservice.db import Database, DatabaseFull, _pyformat
from docservice.jobs import JobQueue, Outcome
from docservice.storage import Storage
from docservice.worker import Worker


def test_named_parameters_become_pyformat() -> None:
    sql = "SELECT 1 WHERE a = :a AND b = :b_c AND s = :sha256 AND t = '12:00'::text"
    assert (
        _pyformat(sql) == "SELECT 1 WHERE a = %(a)s AND b = %(b_c)s AND s = %(sha256)s AND t = '12:00'::text"
    )


def test_urls_are_checked_and_described_without_password(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unsupported database URL"):
        Database("mysql://x@y/z")
    assert Database("postgresql://ada:secret@db:5432/docs").describe() == "postgresql://ada:***@db:5432/docs"
    assert Database(tmp_path / "x.db").describe() == str(tmp_path / "x.db")


def test_users_documents_and_counts(any_db: Database, storage: Storage) -> None:
    owner = make_user(any_db, "a@example.test")
    assert any_db.create_user("other", "a@example.test", "h", 0.0) is None  # duplicate email
    doc_id = add_document(any_db, storage, b"hello", owner_id=owner, now=5.0)
    doc = any_db.get_document(doc_id, owner_id=owner)
    assert doc is not None and (doc.status, doc.job_status, doc.processing_runs) == ("pending", "queued", 0)
    assert any_db.list_documents(owner, limit=10, offset=0)[1] == 1
    assert any_db.count_documents_by_status() == {"pending": 1}
    assert any_db.oldest_queued_age(now=7.0) == 2.0
    any_db.create_token("t", owner, 0.0, 10.0)
    assert any_db.delete_expired_tokens(11.0) == 1
    assert any_db.delete_document(doc_id, owner) is not None and any_db.get_document(doc_id) is None


def test_reclaim_fencing_and_processing_runs(any_db: Database, storage: Storage) -> None:
    doc_id = add_document(any_db, storage, b"x")
    stalled = any_db.claim_job("stalled", now=1.0, lease_seconds=2)
    assert stalled is not None
    assert any_db.claim_job("other", now=2.0, lease_seconds=2) is None  # lease still held
    # DOCSERVICE_NO_RECLAIM=1: an expired lease is never taken over
    assert any_db.claim_job("other", now=10.0, lease_seconds=2, reclaim=False) is None
    taken = any_db.claim_job("other", now=10.0, lease_seconds=2)
    assert taken is not None and taken.previous_claimant == "stalled" and taken.attempts == 2
    assert any_db.complete_job(taken.id, "other", {"by": "other"}, now=11.0)
    # the stalled worker wakes up and finishes too: its result must not count
    assert not any_db.complete_job(stalled.id, "stalled", {"by": "stalled"}, now=12.0)
    doc = any_db.get_document(doc_id)
    assert doc is not None and doc.result == {"by": "other"}
    assert (doc.processing_runs, doc.attempts, doc.job_status) == (1, 2, "done")


def test_retry_release_and_fail(any_db: Database, storage: Storage) -> None:
    doc_id = add_document(any_db, storage, b"x")
    queue = JobQueue(any_db, "w", lease_seconds=5, backoff_base=0.0, backoff_max=0.0, jitter=0.0)
    job = queue.claim()
    assert job is not None and queue.release(job)
    job = queue.claim()
    assert job is not None and job.attempts == 1  # the released attempt was given back
    assert queue.retry_or_fail(job, "boom") is Outcome.RETRY
    job = queue.claim()
    assert job is not None and queue.heartbeat(job)
    assert queue.fail(job, "given up") is Outcome.FAILED
    doc = any_db.get_document(doc_id)
    assert doc is not None and doc.status == "failed" and doc.job_status == "failed"
    assert any_db.jobs_for_document(doc_id)[0]["last_error"] == "given up"


def test_concurrent_claims_never_share_a_job(any_db: Database, storage: Storage) -> None:
    for i in range(20):
        add_document(any_db, storage, str(i).encode())
    claimed: list[int] = []
    errors: list[BaseException] = []

    def work(name: str) -> None:
        queue = JobQueue(any_db, name, lease_seconds=60)
        try:
            while (job := queue.claim()) is not None:
                claimed.append(job.id)
                assert queue.complete(job, {}) is Outcome.DONE
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and sorted(claimed) == sorted(set(claimed)) and len(claimed) == 20
    assert any_db.count_documents_by_status() == {"processed": 20}


def test_a_full_sqlite_database_is_reported_as_full(db: Database) -> None:
    with pytest.raises(DatabaseFull), db.connect() as conn:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")  # the file may not grow: SQLITE_FULL
        conn.execute("INSERT INTO users VALUES ('u', 'u@x.test', :blob, 0)", {"blob": "x" * 100_000})


def test_the_api_answers_507_when_the_database_disk_is_full(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = auth_headers(client)
    db: Database = client.app.state.db  # type: ignore[attr-defined]

    def full(*args: object, **kwargs: object) -> None:
        raise DatabaseFull("database disk is full")

    monkeypatch.setattr(db, "create_document", full)
    response = client.post("/documents", headers=headers, files={"file": ("a", b"abc", "text/plain")})
    assert response.status_code == 507
    storage_root = Path(client.app.state.storage.root)  # type: ignore[attr-defined]
    assert [p for p in storage_root.rglob("*") if p.is_file()] == []


def test_postgres_going_away_is_503_then_recovers_by_itself(
    postgres_url: str, tmp_path: Path, storage: Storage
) -> None:
    host_port = postgres_url.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    with Relay((host, int(port))) as relay:
        relayed = postgres_url.replace(host_port, f"127.0.0.1:{relay.port}")
        settings = ApiSettings(
            db_path=tmp_path / "unused.db",
            database_url=relayed,
            storage_dir=storage.root,
            scrypt_n=FAST_SCRYPT_N,
        )
        with TestClient(create_app(settings)) as client:
            headers = auth_headers(client)
            doc_id = client.post(
                "/documents", headers=headers, files={"file": ("a.txt", b"the cat", "text/plain")}
            ).json()["id"]
            relay.cut()
            assert client.get("/health").status_code == 503
            response = client.get(f"/documents/{doc_id}", headers=headers)
            assert response.status_code == 503 and response.headers["retry-after"] == "1"
            upload = client.post("/documents", headers=headers, files={"file": ("b", b"b", "text/plain")})
            assert upload.status_code == 503
            worker_settings = WorkerSettings(
                db_path=settings.db_path,
                database_url=relayed,
                storage_dir=storage.root,
                enricher_url="http://127.0.0.1:9",  # nothing there: the fallback is fine here
                worker_id="w",
                enricher_retries=0,
            )
            worker = Worker(worker_settings)
            assert worker.run_once() is False  # the database is away: no crash, a backoff
            relay.restore()
            deadline = time.monotonic() + 30
            while client.get("/health").status_code != 200:
                assert time.monotonic() < deadline, "the API did not recover"
                time.sleep(0.1)
            assert worker.run_once() is True
            doc = client.get(f"/documents/{doc_id}", headers=headers).json()
            assert doc["status"] == "processed" and doc["degraded"] and doc["processing_runs"] == 1
            worker.db.close()


def test_the_api_starts_while_postgres_is_down(postgres_url: str, tmp_path: Path) -> None:
    host_port = postgres_url.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    relay = Relay((host, int(port)))  # not listening yet
    settings = ApiSettings(
        db_path=tmp_path / "unused.db",
        database_url=postgres_url.replace(host_port, f"127.0.0.1:{relay.port}"),
        storage_dir=tmp_path / "files",
        scrypt_n=FAST_SCRYPT_N,
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/health").status_code == 503
        with relay:
            assert client.get("/health").status_code == 200  # the schema is created now
            assert (
                client.post("/register", json={"email": "a@b.test", "password": "p" * 8}).status_code == 201
            )


def test_the_worker_waits_for_the_database_at_start(tmp_path: Path, worker_settings: WorkerSettings) -> None:
    settings = dataclasses.replace(worker_settings, database_url="postgresql://x@127.0.0.1:9/none")
    worker = Worker(settings)
    thread = threading.Thread(target=worker.run)
    thread.start()
    time.sleep(0.3)
    worker.stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive() and worker.processed == 0


def test_the_title_filter_matches_a_substring_literally(any_db: Database, storage: Storage) -> None:
    owner, other = make_user(any_db), make_user(any_db)
    titles = ["Quarterly Report", "report_2024", "100% done", "notes"]
    for title in titles:
        add_document(any_db, storage, b"x", owner_id=owner, title=title)
    add_document(any_db, storage, b"x", owner_id=other, title="someone else's report")

    def found(text: str) -> list[str]:
        docs, total = any_db.list_documents(owner, limit=10, offset=0, title=text)
        assert total == len(docs)
        return sorted(doc.title or "" for doc in docs)

    assert found("REPORT") == ["Quarterly Report", "report_2024"]  # ignoring case, only the owner's
    assert found("%") == ["100% done"] and found("_") == ["report_2024"]  # wildcards are literal
    assert found("' OR '1'='1") == [] and found("\\") == []
    assert found("") == sorted(titles)
