"""Shared fixtures: a temporary database and storage, the API under TestClient, a real
enricher on a free port, and a controllable clock for lease and expiry tests."""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from docservice.api import create_app
from docservice.config import ApiSettings, WorkerSettings
from docservice.db import Database, NewDocument
from docservice.enricher import EnricherServer
from docservice.storage import Storage

FAST_SCRYPT_N = 2**4  # production uses 2**14; tests only need the code path


class FakeClock:
    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(tmp_path / "data" / "docservice.db")
    database.initialize()
    return database


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    store = Storage(tmp_path / "data" / "files")
    store.initialize()
    return store


@pytest.fixture
def settings(tmp_path: Path) -> ApiSettings:
    return ApiSettings(
        db_path=tmp_path / "data" / "docservice.db",
        storage_dir=tmp_path / "data" / "files",
        scrypt_n=FAST_SCRYPT_N,
        max_upload_bytes=1024 * 1024,
    )


@pytest.fixture
def client(settings: ApiSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def make_user(db: Database, email: str | None = None) -> str:
    user_id = uuid.uuid4().hex
    created = db.create_user(user_id, email or f"{user_id}@example.test", "x", 0.0)
    assert created is not None
    return user_id


def add_document(
    db: Database,
    storage: Storage,
    content: bytes,
    *,
    owner_id: str | None = None,
    max_attempts: int = 3,
    now: float = 0.0,
) -> str:
    """A stored document with its queued job, as the API would create it."""
    owner = owner_id or make_user(db)
    doc_id = uuid.uuid4().hex
    key = storage.key_for(doc_id)
    path = storage.path_for(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    db.create_document(
        NewDocument(
            id=doc_id,
            owner_id=owner,
            title="t",
            filename="t.txt",
            content_type="text/plain",
            size=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
            storage_key=key,
        ),
        max_attempts=max_attempts,
        now=now,
    )
    return doc_id


def auth_headers(
    client: TestClient, email: str | None = None, password: str = "password-1"
) -> dict[str, str]:
    email = email or f"u-{uuid.uuid4().hex}@example.test"
    assert client.post("/register", json={"email": email, "password": password}).status_code == 201
    response = client.post("/login", json={"email": email, "password": password})
    assert response.status_code == 200
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture
def enricher_url() -> Iterator[str]:
    server = EnricherServer(("127.0.0.1", 0))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def worker_settings(tmp_path: Path, enricher_url: str) -> WorkerSettings:
    return WorkerSettings(
        db_path=tmp_path / "data" / "docservice.db",
        storage_dir=tmp_path / "data" / "files",
        enricher_url=enricher_url,
        worker_id="test-worker",
        poll_interval=0.01,
        lease_seconds=30.0,
        backoff_base=0.0,
        backoff_max=0.0,
        enricher_timeout=2.0,
    )
