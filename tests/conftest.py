"""Fixtures shared by every test folder: a real PostgreSQL server for the store tests.

PostgreSQL is a real server, started once per session by scripts/postgres-test-server.sh
(which installs it with apt-get on a fresh machine). If it cannot be started the tests
that need it fail loudly; set GONOGO_SKIP_POSTGRES=1 to skip them instead.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

# Started in the background by a non-interactive shell, the test run inherits SIGINT ignored,
# and so would every gonogo it starts: the Ctrl-C tests would then test nothing. A handler here
# (reset to the default on exec) gives this process and its children the usual Ctrl-C.
signal.signal(signal.SIGINT, signal.default_int_handler)

REPO = Path(__file__).resolve().parents[1]
POSTGRES_SCRIPT = REPO / "scripts" / "postgres-test-server.sh"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _stop_postgres(directory: Path) -> None:
    subprocess.run([str(POSTGRES_SCRIPT), "stop", str(directory)], capture_output=True, timeout=120)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """URL of database `gonogo_test` on a throwaway PostgreSQL server, one per session."""
    if os.environ.get("GONOGO_SKIP_POSTGRES") == "1":
        pytest.skip("GONOGO_SKIP_POSTGRES=1: PostgreSQL tests skipped")
    errors: list[str] = []
    for _ in range(3):  # the free port may be taken before the server binds it
        # Not under pytest's tmp dir: that is private to root, and the server runs as
        # the postgres user when we are root.
        directory = Path(tempfile.mkdtemp(prefix="gonogo-postgres-"))
        port = free_port()
        try:
            started = subprocess.run(
                [str(POSTGRES_SCRIPT), "start", str(directory), str(port)],
                capture_output=True,
                text=True,
                timeout=900,  # may include apt-get install on a fresh machine
            )
        except subprocess.TimeoutExpired as exc:
            _stop_postgres(directory)
            errors.append(f"timed out: {exc}")
            continue
        if started.returncode == 0:
            try:
                yield started.stdout.strip().splitlines()[-1]
            finally:
                _stop_postgres(directory)
            return
        _stop_postgres(directory)
        errors.append(started.stderr.strip())
    pytest.fail(
        "could not start PostgreSQL for the evidence-store tests "
        "(set GONOGO_SKIP_POSTGRES=1 to skip them):\n" + "\n---\n".join(errors),
        pytrace=False,
    )


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A store URL on the session's server whose tables start empty, dropped after the test.

    Each test gets its own schema, selected through the URL's `options` (as a user could
    pass `?sslmode=...`): much faster than a database per test, which needs a checkpoint.
    """
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    yield f"{postgres_server}?options=-csearch_path%3D{schema}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
