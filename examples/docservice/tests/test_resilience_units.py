"""The summary route's deadline and fallback, the break-on-purpose switches, and the
worker's handling of a database that stops answering -- in-process, fast."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import add_document, auth_headers, free_port
from docservice import api
from docservice import worker as worker_module
from docservice.api import create_app
from docservice.config import ApiSettings, WorkerSettings
from docservice.db import Database, DatabaseUnavailable
from docservice.jobs import JobQueue
from docservice.storage import Storage
from docservice.worker import LeaseKeeper, Worker


def upload(client: TestClient, headers: dict[str, str], content: bytes = b"the cat and the dog") -> str:
    response = client.post("/documents", headers=headers, files={"file": ("a.txt", content, "text/plain")})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_summary_asks_the_enricher(settings: ApiSettings, enricher_url: str) -> None:
    with TestClient(create_app(dataclasses.replace(settings, enricher_url=enricher_url))) as client:
        headers = auth_headers(client)
        body = client.get(f"/documents/{upload(client, headers)}/summary", headers=headers).json()
    assert body["language"] == "en" and body["degraded"] is False and body["source"] == "enricher"
    assert body["reason"] is None


def test_summary_falls_back_to_the_workers_result_then_to_nothing(
    settings: ApiSettings, worker_settings: WorkerSettings
) -> None:
    down = dataclasses.replace(settings, enricher_url=f"http://127.0.0.1:{free_port()}")
    with TestClient(create_app(down)) as client:
        headers = auth_headers(client)
        doc_id = upload(client, headers)
        body = client.get(f"/documents/{doc_id}/summary", headers=headers).json()
        assert (body["degraded"], body["source"], body["language"]) == (True, "none", "unknown")
        assert "ConnectError" in body["reason"]
        assert Worker(worker_settings).run_once()  # the worker's enricher is up
        body = client.get(f"/documents/{doc_id}/summary", headers=headers).json()
        assert (body["degraded"], body["source"], body["language"]) == (True, "worker_result", "en")
        assert client.get("/documents/nope/summary", headers=headers).status_code == 404


def test_summary_refuses_a_non_object_answer(settings: ApiSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    with TestClient(create_app(settings)) as client:
        headers = auth_headers(client)
        doc_id = upload(client, headers)

        class ListAnswer:
            async def post(self, *args: object, **kwargs: object) -> Any:
                class Response:
                    def raise_for_status(self) -> None:
                        return None

                    def json(self) -> list[int]:
                        return [1]

                return Response()

        monkeypatch.setattr(client.app.state, "enricher", ListAnswer())  # type: ignore[attr-defined]
        body = client.get(f"/documents/{doc_id}/summary", headers=headers).json()
    assert body["degraded"] and "non-object" in body["reason"]


def test_summary_of_a_file_deleted_meanwhile_is_404(client: TestClient) -> None:
    headers = auth_headers(client)
    doc_id = upload(client, headers)
    storage: Storage = client.app.state.storage  # type: ignore[attr-defined]
    storage.delete(storage.key_for(doc_id))
    assert client.get(f"/documents/{doc_id}/summary", headers=headers).status_code == 404


def test_no_dependency_timeout_has_no_fallback(settings: ApiSettings, enricher_url: str) -> None:
    broken = dataclasses.replace(settings, no_dependency_timeout=True, enricher_url=enricher_url)
    with TestClient(create_app(broken)) as client:
        headers = auth_headers(client)
        doc_id = upload(client, headers)
        assert client.get(f"/documents/{doc_id}/summary", headers=headers).json()["source"] == "enricher"
    down = dataclasses.replace(broken, enricher_url=f"http://127.0.0.1:{free_port()}")
    with TestClient(create_app(down)) as client:
        headers = auth_headers(client)
        response = client.get(f"/documents/{upload(client, headers)}/summary", headers=headers)
    assert response.status_code == 502 and "enricher unreachable" in response.json()["detail"]


def test_ack_before_commit_answers_before_storing(settings: ApiSettings) -> None:
    broken = dataclasses.replace(settings, ack_before_commit=True, ack_delay=0.0)
    with TestClient(create_app(broken)) as client:
        headers = auth_headers(client)
        doc_id = upload(client, headers)
        # TestClient waits for background tasks; a real server answers before they run
        assert client.get(f"/documents/{doc_id}/content", headers=headers).content == b"the cat and the dog"


def test_a_failed_deferred_store_is_logged_and_cleaned_up(
    storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    writer = storage.new_upload(10)
    writer.write(b"abc")

    def store() -> None:
        raise OSError("disk gone")

    asyncio.run(api._store_later(store, writer, 0.0))
    assert "an acknowledged upload was lost" in caplog.text
    assert not writer.path.exists()


def test_new_api_flags_and_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCSERVICE_ACK_BEFORE_COMMIT", "1")
    monkeypatch.setenv("DOCSERVICE_NO_DEPENDENCY_TIMEOUT", "yes")
    monkeypatch.setenv("DOCSERVICE_DATABASE_URL", "postgresql://u@127.0.0.1:5432/docs")
    settings = api.parse_args(["--enricher-url", "http://e", "--enricher-timeout", "0.5"])
    assert settings.ack_before_commit and settings.no_dependency_timeout and settings.ack_delay == 1.0
    assert settings.database == "postgresql://u@127.0.0.1:5432/docs"
    assert (settings.enricher_url, settings.enricher_timeout) == ("http://e", 0.5)
    for argv in (["--database-url", "mysql://x"], ["--enricher-timeout", "0"]):
        with pytest.raises(SystemExit) as info:
            api.parse_args(argv)
        assert info.value.code == 2


def test_main_warns_about_the_new_switches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: None)
    monkeypatch.setenv("DOCSERVICE_ACK_BEFORE_COMMIT", "1")
    monkeypatch.setenv("DOCSERVICE_NO_DEPENDENCY_TIMEOUT", "1")
    monkeypatch.setattr(api, "setup_logging", lambda process: None)
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        assert api.main(["--db", str(tmp_path / "a.db"), "--storage", str(tmp_path / "s")]) == 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    assert "DOCSERVICE_ACK_BEFORE_COMMIT=1" in caplog.text
    assert "DOCSERVICE_NO_DEPENDENCY_TIMEOUT=1" in caplog.text


# -- the worker ----------------------------------------------------------------------------


def test_worker_flags_and_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCSERVICE_NO_RECLAIM", "1")
    settings = worker_module.parse_args(
        ["--lease-seconds", "3", "--database-url", "postgresql://u@h/d", "--enricher-retries", "0"]
    )
    assert settings.no_reclaim and settings.lease_seconds == 3.0 and settings.enricher_retries == 0
    assert settings.database == "postgresql://u@h/d" and settings.enricher_timeout == 2.0
    for argv in (["--database-url", "sqlite:///x"], ["--lease-seconds", "0"]):
        with pytest.raises(SystemExit) as info:
            worker_module.parse_args(argv)
        assert info.value.code == 2


def test_worker_main_warns_about_no_reclaim(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("DOCSERVICE_NO_RECLAIM", "1")
    monkeypatch.setattr(worker_module, "setup_logging", lambda process: None)
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    timer = threading.Timer(0.3, os.kill, args=(os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        assert worker_module.main(["--db", str(tmp_path / "w.db"), "--storage", str(tmp_path / "f")]) == 0
    finally:
        timer.cancel()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    assert "DOCSERVICE_NO_RECLAIM=1" in caplog.text


def test_the_lease_keeper_survives_database_errors(
    db: Database, storage: Storage, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    add_document(db, storage, b"x")
    queue = JobQueue(db, "w", lease_seconds=30)
    job = queue.claim()
    assert job is not None

    def unavailable(job: object) -> bool:
        raise DatabaseUnavailable("database unavailable: connection refused")

    monkeypatch.setattr(queue, "heartbeat", unavailable)
    with LeaseKeeper(queue, job, interval=0.01) as lease:
        time.sleep(0.1)
    assert not lease.lost.is_set() and "could not renew the lease" in caplog.text


def test_a_lease_lost_mid_job_discards_the_result(
    worker_settings: WorkerSettings, db: Database, storage: Storage
) -> None:
    doc_id = add_document(db, storage, b"x")
    settings = dataclasses.replace(worker_settings, lease_seconds=0.03)

    class Stealing(worker_module.EnricherClient):
        def classify(self, text: str) -> dict[str, Any]:
            with db.connect() as conn:
                conn.execute("UPDATE jobs SET claimed_by = 'someone-else'")
            time.sleep(0.2)  # the lease keeper notices meanwhile
            return {"language": "en", "category": "prose", "confidence": 1}

    worker = Worker(settings, db=db, enricher=Stealing("http://unused"))
    job = worker.queue.claim()
    assert job is not None
    outcome, detail = worker.process(job)
    assert outcome.value == "lost" and detail == "lease lost during processing"
    doc = db.get_document(doc_id)
    assert doc is not None and doc.processing_runs == 0


def test_the_database_failing_mid_job_does_not_kill_the_worker(
    worker_settings: WorkerSettings, db: Database, storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc_id = add_document(db, storage, b"x")
    worker = Worker(worker_settings, db=db)

    def unavailable(*args: object, **kwargs: object) -> bool:
        raise DatabaseUnavailable("database unavailable: server closed the connection")

    monkeypatch.setattr(db, "complete_job", unavailable)
    monkeypatch.setattr(worker.stop, "wait", lambda timeout=None: False)  # no real backoff
    assert worker.run_once() is True
    doc = db.get_document(doc_id)
    assert doc is not None and doc.status == "processing" and doc.job_status == "running"
    assert worker._db_backoff > 0
