"""Shared fixtures: a temporary database and storage, the API under TestClient, a real
enricher on a free port, a controllable clock for lease and expiry tests, a throwaway
PostgreSQL server (started with the repository's script when PostgreSQL is installed,
or given as DOCSERVICE_TEST_POSTGRES_URL) and a TCP relay that can cut a connection."""

from __future__ import annotations

import glob
import hashlib
import os
import selectors
import socket
import subprocess
import tempfile
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
    title: str = "t",
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
            title=title,
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
        enricher_backoff=0.01,
    )


# -- PostgreSQL ------------------------------------------------------------------------

POSTGRES_SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "postgres-test-server.sh"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """URL of an empty database on a PostgreSQL server for this session."""
    if os.environ.get("DOCSERVICE_TEST_POSTGRES_URL"):
        yield os.environ["DOCSERVICE_TEST_POSTGRES_URL"]
        return
    if os.environ.get("GONOGO_SKIP_POSTGRES") == "1":
        pytest.skip("GONOGO_SKIP_POSTGRES=1")
    if not POSTGRES_SCRIPT.exists() or not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        pytest.skip("PostgreSQL is not installed (or set DOCSERVICE_TEST_POSTGRES_URL)")
    directory = Path(tempfile.mkdtemp(prefix="docservice-postgres-"))
    try:
        started = subprocess.run(
            [str(POSTGRES_SCRIPT), "start", str(directory), str(free_port())],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert started.returncode == 0, started.stderr
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([str(POSTGRES_SCRIPT), "stop", str(directory)], capture_output=True, timeout=60)


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A URL whose tables start empty: a schema of its own, dropped afterwards."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    yield f"{postgres_server}?options=-csearch_path%3D{schema}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """The same tests on both backends."""
    if request.param == "sqlite":
        database = Database(tmp_path / "data" / "docservice.db")
    else:
        database = Database(request.getfixturevalue("postgres_url"))
    database.initialize()
    yield database
    database.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Relay:
    """A TCP relay on 127.0.0.1 to `target`; `cut()` closes every connection and refuses
    new ones (the database "goes away"), `restore()` listens again on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Relay:
        self.restore()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cut()

    def restore(self) -> None:
        self._stop.clear()
        listener = socket.create_server(("127.0.0.1", self.port))
        self._thread = threading.Thread(target=self._serve, args=(listener,), daemon=True)
        self._thread.start()

    def cut(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _serve(self, listener: socket.socket) -> None:
        selector = selectors.DefaultSelector()
        listener.setblocking(False)
        selector.register(listener, selectors.EVENT_READ)
        peers: dict[socket.socket, socket.socket] = {}
        try:
            while not self._stop.is_set():
                for key, _ in selector.select(timeout=0.05):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    if sock is listener:
                        client, _ = listener.accept()
                        upstream = socket.create_connection(self.target, timeout=5)
                        for end, other in ((client, upstream), (upstream, client)):
                            end.setblocking(True)
                            peers[end] = other
                            selector.register(end, selectors.EVENT_READ)
                        continue
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        data = b""
                    other = peers.get(sock)
                    if data and other is not None:
                        other.sendall(data)
                        continue
                    for end in (sock, other):
                        if end is not None and end in peers:
                            selector.unregister(end)
                            peers.pop(end)
                            end.close()
        finally:
            for end in list(peers):
                end.close()
            selector.unregister(listener)
            listener.close()
            selector.close()
