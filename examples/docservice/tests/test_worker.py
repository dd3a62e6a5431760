"""The worker against a real database, real files and a real (in-thread) enricher."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from conftest import add_document
from docservice import worker as worker_module
from docservice.config import WorkerSettings
from docservice.db import Database
from docservice.storage import Storage
from docservice.worker import EnricherClient, EnricherError, Worker


class ScriptedEnricher(EnricherClient):
    """Answers from a script: a dict is a result, an exception is raised."""

    def __init__(self, *answers: dict[str, Any] | BaseException) -> None:
        super().__init__("http://unused")
        self.answers = list(answers)
        self.calls = 0

    def classify(self, text: str) -> dict[str, Any]:
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_processes_a_document_end_to_end(
    worker_settings: WorkerSettings, db: Database, storage: Storage
) -> None:
    content = b"The quick brown fox jumps over the lazy dog.\nAnd the end.\n"
    doc_id = add_document(db, storage, content)
    worker = Worker(worker_settings, db=db)
    assert worker.run_once() is True
    assert worker.run_once() is False  # queue now empty
    doc = db.get_document(doc_id)
    assert doc is not None and doc.status == "processed", doc
    assert doc.result is not None
    assert doc.result["sha256"] == doc.sha256 and doc.result["size"] == len(content)
    assert doc.result["lines"] == 2 and doc.result["words"] == 12
    assert doc.result["enrichment"]["language"] == "en"
    assert doc.result["worker"] == "test-worker" and doc.result["attempts"] == 1


def test_unreachable_enricher_falls_back_after_retries(
    worker_settings: WorkerSettings, db: Database, storage: Storage
) -> None:
    settings = dataclasses.replace(worker_settings, enricher_url=f"http://127.0.0.1:{free_port()}")
    doc_id = add_document(db, storage, b"text", max_attempts=3)
    worker = Worker(settings, db=db)
    assert worker.run_once()
    assert not worker.run_once()  # nothing left: the document did not go back to the queue
    doc = db.get_document(doc_id)
    assert doc is not None and doc.status == "processed" and doc.attempts == 1, doc
    assert doc.result is not None and doc.result["degraded"] is True
    assert doc.result["enrichment"] == "unavailable"
    assert "enricher unreachable" in doc.result["enrichment_error"]
    assert doc.processing_runs == 1 and doc.job_status == "done" and worker.degraded == 1


def test_after_a_fallback_documents_get_a_single_try_for_a_while(
    worker_settings: WorkerSettings, db: Database, storage: Storage
) -> None:
    down = EnricherError("enricher unreachable: refused", retryable=True)
    fake = ScriptedEnricher(down, down, down, down, {"language": "en", "category": "prose", "confidence": 1})
    worker = Worker(worker_settings, db=db, enricher=fake)
    first, second = add_document(db, storage, b"1"), add_document(db, storage, b"2")
    assert worker.run_once() and fake.calls == 3  # one call and two retries
    assert worker.run_once() and fake.calls == 4  # within the cooldown: one call only
    assert "single try" in db.get_document(second).result["enrichment_error"]  # type: ignore[union-attr]
    worker._single_try_until = 0.0  # the cooldown is over
    third = add_document(db, storage, b"3")
    assert worker.run_once() and fake.calls == 5
    assert db.get_document(first).result["degraded"]  # type: ignore[union-attr]
    assert not db.get_document(third).result["degraded"]  # type: ignore[union-attr]


def test_transient_enricher_errors_are_retried_in_the_worker(
    worker_settings: WorkerSettings, db: Database, storage: Storage
) -> None:
    doc_id = add_document(db, storage, b"text", max_attempts=3)
    fake = ScriptedEnricher(
        EnricherError("enricher answered 503", retryable=True),
        EnricherError("enricher unreachable: timed out", retryable=True),
        {"language": "en", "category": "prose"},
    )
    worker = Worker(worker_settings, db=db, enricher=fake)
    assert worker.run_once()
    doc = db.get_document(doc_id)
    assert doc is not None and doc.status == "processed" and doc.attempts == 1
    assert doc.result is not None and doc.result["degraded"] is False and "enrichment_error" not in doc.result
    assert fake.calls == 3


def test_a_bug_costs_an_attempt_and_the_job_is_retried(
    worker_settings: WorkerSettings, db: Database, storage: Storage
) -> None:
    doc_id = add_document(db, storage, b"text", max_attempts=3)
    fake = ScriptedEnricher(RuntimeError("a bug"), {"language": "en", "category": "prose"})
    worker = Worker(worker_settings, db=db, enricher=fake)
    while worker.run_once():
        pass
    doc = db.get_document(doc_id)
    assert doc is not None and doc.status == "processed" and doc.attempts == 2 and doc.processing_runs == 1


def test_permanent_enricher_error_falls_back_at_once(
    worker_settings: WorkerSettings, db: Database, storage: Storage
) -> None:
    doc_id = add_document(db, storage, b"text", max_attempts=5)
    fake = ScriptedEnricher(EnricherError("enricher answered 400", retryable=False))
    Worker(worker_settings, db=db, enricher=fake).run_once()
    doc = db.get_document(doc_id)
    assert doc is not None and doc.status == "processed" and doc.attempts == 1 and fake.calls == 1
    assert doc.result is not None and doc.result["enrichment_error"] == "enricher answered 400"


def test_a_corrupted_file_fails_the_integrity_check(
    worker_settings: WorkerSettings, db: Database, storage: Storage
) -> None:
    doc_id = add_document(db, storage, b"original")
    doc = db.get_document(doc_id)
    assert doc is not None
    storage.path_for(doc.storage_key).write_bytes(b"tampered")
    Worker(worker_settings, db=db, enricher=ScriptedEnricher()).run_once()
    doc = db.get_document(doc_id)
    assert doc is not None and doc.status == "failed"
    assert doc.error is not None and doc.error.startswith("integrity check failed")


def test_a_missing_file_fails_the_document(
    worker_settings: WorkerSettings, db: Database, storage: Storage
) -> None:
    doc_id = add_document(db, storage, b"x")
    doc = db.get_document(doc_id)
    assert doc is not None
    storage.delete(doc.storage_key)
    Worker(worker_settings, db=db, enricher=ScriptedEnricher()).run_once()
    doc = db.get_document(doc_id)
    assert doc is not None and doc.status == "failed" and doc.error == "stored file is missing"


def test_a_document_deleted_while_processing_is_dropped(
    worker_settings: WorkerSettings, db: Database, storage: Storage
) -> None:
    doc_id = add_document(db, storage, b"x")
    doc = db.get_document(doc_id)
    assert doc is not None

    class DeletingEnricher(ScriptedEnricher):
        def classify(self, text: str) -> dict[str, Any]:
            db.delete_document(doc_id, doc.owner_id)
            storage.delete(doc.storage_key)
            return {}

    worker = Worker(worker_settings, db=db, enricher=DeletingEnricher())
    assert worker.run_once()
    assert db.count_jobs_by_status() == {}
    # and one deleted before the worker reads the file
    doc_id = add_document(db, storage, b"y")
    job = worker.queue.claim()
    assert job is not None
    doc = db.get_document(doc_id)
    assert doc is not None
    db.delete_document(doc_id, doc.owner_id)
    storage.delete(doc.storage_key)
    outcome, detail = worker.process(job)
    assert outcome.value == "lost" and detail == "document deleted while queued"


def test_losing_the_lease_mid_job_discards_the_work(
    worker_settings: WorkerSettings, db: Database, storage: Storage
) -> None:
    doc_id = add_document(db, storage, b"x")

    class StealingEnricher(ScriptedEnricher):
        def classify(self, text: str) -> dict[str, Any]:
            with db.connect() as conn:
                conn.execute("UPDATE jobs SET claimed_by = 'someone-else'")
            return {}

    worker = Worker(worker_settings, db=db, enricher=StealingEnricher())
    job = worker.queue.claim()
    assert job is not None
    outcome, detail = worker.process(job)
    assert outcome.value == "lost" and "lease lost" in detail
    doc = db.get_document(doc_id)
    assert doc is not None and doc.status == "processing"


def test_a_database_error_while_claiming_does_not_kill_the_worker(
    worker_settings: WorkerSettings, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = Worker(worker_settings, db=db)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database is locked")

    monkeypatch.setattr(db, "claim_job", broken)
    assert worker.run_once() is False


def test_run_processes_until_stopped(worker_settings: WorkerSettings, db: Database, storage: Storage) -> None:
    ids = [add_document(db, storage, f"document {i}".encode()) for i in range(3)]
    worker = Worker(worker_settings, db=db)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        for _ in range(200):
            if db.count_documents_by_status() == {"processed": 3}:
                break
            threading.Event().wait(0.02)
    finally:
        worker.stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()
    assert worker.processed == 3
    assert all(db.get_document(i).status == "processed" for i in ids)  # type: ignore[union-attr]


class _Response:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def __enter__(self) -> _Response:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def read(self) -> bytes:
        return self.body


@pytest.mark.parametrize(("body", "message"), [(b"nope", "invalid JSON"), (b"[1]", "non-object")])
def test_client_refuses_bad_answers(monkeypatch: pytest.MonkeyPatch, body: bytes, message: str) -> None:
    monkeypatch.setattr(worker_module.urllib.request, "urlopen", lambda *a, **k: _Response(body))
    with pytest.raises(EnricherError, match=message) as info:
        EnricherClient("http://x").classify("t")
    assert info.value.retryable


def test_client_classifies_http_errors(enricher_url: str) -> None:
    client = EnricherClient(enricher_url + "/missing-prefix")
    with pytest.raises(EnricherError) as info:
        client.classify("t")
    assert not info.value.retryable and "404" in str(info.value)
    assert EnricherClient(enricher_url).classify("the cat")["language"] == "en"


def test_parse_args(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCSERVICE_LEASE", "12")
    settings = worker_module.parse_args(["--db", "x.db", "--storage", "files", "--worker-id", "w9"])
    assert settings.db_path == Path("x.db") and settings.storage_dir == Path("files")
    assert (settings.worker_id, settings.lease_seconds, settings.poll_interval) == ("w9", 12.0, 0.1)


def test_main_stops_on_sigterm(tmp_path: Path, enricher_url: str) -> None:
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    timer = threading.Timer(0.3, os.kill, args=(os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        argv = [
            "--db",
            str(tmp_path / "w.db"),
            "--storage",
            str(tmp_path / "f"),
            "--enricher-url",
            enricher_url,
        ]
        assert worker_module.main(argv) == 0
    finally:
        timer.cancel()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    assert (tmp_path / "w.db").exists()
