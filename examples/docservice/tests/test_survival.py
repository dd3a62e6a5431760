"""The guarantees under faults, against real processes: kill -9 of the API mid-upload,
a worker killed or stalled mid-job, a hanging enricher, a full disk -- and the three
switches that break each guarantee on purpose."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from conftest import add_document, auth_headers, free_port
from docservice.config import WorkerSettings
from docservice.db import Database
from docservice.enricher import EnricherServer
from docservice.storage import Storage, UploadWriter
from docservice.worker import Worker

SRC = Path(__file__).resolve().parents[1] / "src"


@contextmanager
def process(
    args: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A docservice process in its own process group, killed with the group afterwards."""
    full_env = {**os.environ, "PYTHONPATH": str(SRC), **(env or {})}
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", *args], env=full_env, stdout=out, stderr=out, start_new_session=True
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def wait_until(condition: object, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def api_process(
    data: Path, env: dict[str, str] | None = None, enricher_url: str = "http://127.0.0.1:9"
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    args = ["docservice.api", "--port", str(port), "--db", str(data / "db.sqlite")]
    args += ["--storage", str(data / "files"), "--scrypt-n", "16", "--enricher-url", enricher_url]
    with process(args, data / "api.log", env) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: healthy(url) or proc.poll() is not None, what="the API to be ready")
        assert proc.poll() is None, (data / "api.log").read_text()
        yield url, proc


def login(url: str) -> dict[str, str]:
    credentials = {"email": f"u{time.monotonic_ns()}@example.test", "password": "password-1"}
    httpx.post(f"{url}/register", json=credentials, timeout=10).raise_for_status()
    token = httpx.post(f"{url}/login", json=credentials, timeout=10).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


# -- uploads and kill -9 -------------------------------------------------------------------


def test_kill_9_mid_upload_loses_nothing_acknowledged(tmp_path: Path) -> None:
    acknowledged: dict[str, str] = {}
    stop = threading.Event()

    def upload_forever(url: str, headers: dict[str, str]) -> None:
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                content = os.urandom(200_000)
                try:
                    response = client.post(
                        f"{url}/documents", headers=headers, files={"file": ("f.bin", content)}
                    )
                except httpx.HTTPError:
                    continue  # the API died mid-request: this upload was never acknowledged
                if response.status_code == 201:
                    acknowledged[response.json()["id"]] = hashlib.sha256(content).hexdigest()

    with api_process(tmp_path) as (url, proc):
        headers = login(url)
        uploaders = [threading.Thread(target=upload_forever, args=(url, headers)) for _ in range(3)]
        for thread in uploaders:
            thread.start()
        try:
            wait_until(lambda: len(acknowledged) >= 10, what="ten acknowledged uploads")
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            stop.set()
            for thread in uploaders:
                thread.join(timeout=30)
    with api_process(tmp_path) as (url, _):
        for doc_id, sha256 in acknowledged.items():
            response = httpx.get(f"{url}/documents/{doc_id}/content", headers=headers, timeout=10)
            assert response.status_code == 200, f"acknowledged upload {doc_id} was lost"
            assert hashlib.sha256(response.content).hexdigest() == sha256


def test_ack_before_commit_loses_acknowledged_uploads_under_kill_9(tmp_path: Path) -> None:
    switch = {"DOCSERVICE_ACK_BEFORE_COMMIT": "1", "DOCSERVICE_ACK_DELAY": "5"}
    with api_process(tmp_path, switch) as (url, proc):
        headers = login(url)
        response = httpx.post(f"{url}/documents", headers=headers, files={"file": ("a", b"abc")}, timeout=10)
        assert response.status_code == 201
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert "DOCSERVICE_ACK_BEFORE_COMMIT=1" in (tmp_path / "api.log").read_text()
    with api_process(tmp_path) as (url, _):
        lost = httpx.get(f"{url}/documents/{response.json()['id']}", headers=headers, timeout=10)
        assert lost.status_code == 404  # acknowledged, then gone


def test_a_full_disk_is_507_and_leaves_nothing(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    headers = auth_headers(client)
    kept = client.post("/documents", headers=headers, files={"file": ("a", b"kept", "text/plain")}).json()
    storage: Storage = client.app.state.storage  # type: ignore[attr-defined]
    real_new_upload = storage.new_upload

    def on_a_full_disk(max_bytes: int) -> UploadWriter:
        writer = real_new_upload(max_bytes)
        writer._file = open("/dev/full", "wb", buffering=0)  # noqa: SIM115 - every write is ENOSPC
        return writer

    monkeypatch.setattr(storage, "new_upload", on_a_full_disk)
    response = client.post("/documents", headers=headers, files={"file": ("b", os.urandom(50_000))})
    assert response.status_code == 507 and "insufficient storage" in response.json()["detail"]
    assert list(storage.tmp.iterdir()) == []
    assert client.get("/documents", headers=headers).json()["total"] == 1  # nothing acknowledged
    assert client.get(f"/documents/{kept['id']}/content", headers=headers).content == b"kept"


def test_stale_parts_of_crashed_uploads_are_swept(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    storage.initialize()
    stale, fresh = storage.tmp / "old.part", storage.tmp / "new.part"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"y")
    os.utime(stale, (0, 0))
    storage.initialize()
    assert not stale.exists() and fresh.exists()


# -- the worker: crash, stall, reclaim ---------------------------------------------------


@pytest.fixture
def slow_enricher() -> Iterator[EnricherServer]:
    server = EnricherServer(("127.0.0.1", 0), delay=30.0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def worker_args(data: Path, enricher: EnricherServer, worker_id: str) -> list[str]:
    return [
        "docservice.worker",
        "--db",
        str(data / "db.sqlite"),
        "--storage",
        str(data / "files"),
        "--enricher-url",
        f"http://127.0.0.1:{enricher.server_address[1]}",
        "--worker-id",
        worker_id,
        "--lease-seconds",
        "1",
        "--enricher-timeout",
        "60",
        "--poll-interval",
        "0.05",
    ]


def document_in_work(data: Path) -> tuple[Database, str]:
    db = Database(data / "db.sqlite")
    db.initialize()
    storage = Storage(data / "files")
    storage.initialize()
    return db, add_document(db, storage, b"the cat sat on the mat", now=time.time())


@pytest.mark.parametrize("no_reclaim", [False, True], ids=["reclaim", "DOCSERVICE_NO_RECLAIM"])
def test_a_killed_workers_job_is_reclaimed_after_its_lease(
    tmp_path: Path, slow_enricher: EnricherServer, no_reclaim: bool
) -> None:
    db, doc_id = document_in_work(tmp_path)
    with process(worker_args(tmp_path, slow_enricher, "first"), tmp_path / "w1.log") as first:
        wait_until(lambda: slow_enricher_busy(db, doc_id), what="the first worker to be mid-job")
        time.sleep(1.5)  # past the lease: only the background renewal keeps it
        assert db.get_document(doc_id).job_status == "running"  # type: ignore[union-attr]
        os.killpg(first.pid, signal.SIGKILL)
    slow_enricher.delay = 0.0
    env = {"DOCSERVICE_NO_RECLAIM": "1"} if no_reclaim else {}
    with process(worker_args(tmp_path, slow_enricher, "second"), tmp_path / "w2.log", env):
        if no_reclaim:
            time.sleep(2.5)  # more than two leases long
            doc = db.get_document(doc_id)
            assert doc is not None and (doc.status, doc.job_status) == ("processing", "running")
            assert "DOCSERVICE_NO_RECLAIM=1" in (tmp_path / "w2.log").read_text()
            return
        wait_until(lambda: db.get_document(doc_id).status == "processed", what="the reclaimed job")  # type: ignore[union-attr]
    doc = db.get_document(doc_id)
    assert doc is not None and doc.result is not None and doc.result["worker"] == "second"
    assert (doc.attempts, doc.processing_runs) == (2, 1)
    assert "reclaimed from first (lease expired)" in (tmp_path / "w2.log").read_text()


def slow_enricher_busy(db: Database, doc_id: str) -> bool:
    doc = db.get_document(doc_id)
    return doc is not None and doc.job_status == "running"


def test_a_stalled_worker_that_comes_back_does_not_process_twice(
    tmp_path: Path, slow_enricher: EnricherServer
) -> None:
    slow_enricher.delay = 4.0  # the first worker's call: long enough to be caught mid-job
    db, doc_id = document_in_work(tmp_path)
    with process(worker_args(tmp_path, slow_enricher, "stalled"), tmp_path / "w1.log") as stalled:
        wait_until(lambda: slow_enricher_busy(db, doc_id), what="the first worker to be mid-job")
        os.killpg(stalled.pid, signal.SIGSTOP)
        try:
            slow_enricher.delay = 0.0
            with process(worker_args(tmp_path, slow_enricher, "second"), tmp_path / "w2.log"):
                wait_until(lambda: db.get_document(doc_id).status == "processed", what="the takeover")  # type: ignore[union-attr]
        finally:
            os.killpg(stalled.pid, signal.SIGCONT)
        wait_until(
            lambda: "lease lost" in (tmp_path / "w1.log").read_text(), what="the stalled worker's verdict"
        )
    doc = db.get_document(doc_id)
    assert doc is not None and doc.result is not None and doc.result["worker"] == "second"
    assert doc.processing_runs == 1


# -- the enricher hangs ------------------------------------------------------------------


class Hanging:
    def __init__(self, url: str, accepted: list[socket.socket]) -> None:
        self.url = url
        self.accepted = accepted


@pytest.fixture
def hanging_enricher() -> Iterator[Hanging]:
    """Accepts connections and never answers (a SIGSTOPped process looks the same)."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not done.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield Hanging(f"http://127.0.0.1:{listener.getsockname()[1]}", accepted)
    finally:
        done.set()
        thread.join(timeout=5)
        for conn in accepted:
            conn.close()
        listener.close()


def test_a_hanging_enricher_degrades_the_summary_but_not_the_api(
    tmp_path: Path, hanging_enricher: Hanging
) -> None:
    with api_process(tmp_path, enricher_url=hanging_enricher.url) as (url, _):
        headers = login(url)
        doc_id = httpx.post(
            f"{url}/documents", headers=headers, files={"file": ("a", b"x")}, timeout=10
        ).json()["id"]
        started = time.monotonic()
        summary = httpx.get(f"{url}/documents/{doc_id}/summary", headers=headers, timeout=20)
        assert summary.status_code == 200 and time.monotonic() - started < 10
        body = summary.json()
        assert body["degraded"] is True and body["source"] == "none" and "within 1.0s" in body["reason"]
        pending = [
            threading.Thread(
                target=httpx.get,
                args=(f"{url}/documents/{doc_id}/summary",),
                kwargs={"headers": headers, "timeout": 20},
            )
            for _ in range(5)
        ]
        for thread in pending:
            thread.start()
        assert healthy(url)  # answered while five summaries wait on the enricher
        for thread in pending:
            thread.join(timeout=30)


def test_no_dependency_timeout_lets_a_hanging_enricher_freeze_the_api(
    tmp_path: Path, hanging_enricher: Hanging
) -> None:
    switch = {"DOCSERVICE_NO_DEPENDENCY_TIMEOUT": "1"}
    with api_process(tmp_path, switch, enricher_url=hanging_enricher.url) as (url, _):
        headers = login(url)
        doc_id = httpx.post(
            f"{url}/documents", headers=headers, files={"file": ("a", b"x")}, timeout=10
        ).json()["id"]

        def ask_for_a_summary() -> None:
            with pytest.raises(httpx.ReadTimeout):
                httpx.get(f"{url}/documents/{doc_id}/summary", headers=headers, timeout=3)

        # /health calls the enricher too (the readiness probe did), so only a connection made after
        # the summary request was sent tells that the summary call is the one hanging.
        before = len(hanging_enricher.accepted)
        stuck = threading.Thread(target=ask_for_a_summary)
        stuck.start()
        wait_until(lambda: len(hanging_enricher.accepted) > before, what="the API to call the enricher")
        with pytest.raises(httpx.TimeoutException):
            httpx.get(f"{url}/health", timeout=1.5)  # the whole API stopped answering
        stuck.join(timeout=30)
    assert "DOCSERVICE_NO_DEPENDENCY_TIMEOUT=1" in (tmp_path / "api.log").read_text()


def test_the_worker_falls_back_when_the_enricher_hangs(
    worker_settings: WorkerSettings, db: Database, storage: Storage, hanging_enricher: Hanging
) -> None:
    settings = WorkerSettings(
        db_path=worker_settings.db_path,
        storage_dir=worker_settings.storage_dir,
        enricher_url=hanging_enricher.url,
        worker_id="w",
        enricher_timeout=0.3,
        enricher_retries=1,
        enricher_backoff=0.01,
    )
    doc_id = add_document(db, storage, b"x")
    assert Worker(settings, db=db).run_once()
    doc = db.get_document(doc_id)
    assert doc is not None and doc.status == "processed" and doc.result is not None
    assert doc.result["degraded"] and "timed out" in doc.result["enrichment_error"]
