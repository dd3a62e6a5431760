"""Fixtures of the evidence-store tests: each store test runs on SQLite and on PostgreSQL.

PostgreSQL is a real server, started once per session by scripts/postgres-test-server.sh
(which installs it with apt-get on a fresh machine). If it cannot be started the tests
that need it fail loudly; set GONOGO_SKIP_POSTGRES=1 to skip them instead.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gonogo.evidence import Store

BeginRun = Callable[..., str]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty store, once per backend."""
    if request.param == "sqlite":
        # A folder that does not exist yet: opening the store must create it.
        return f"sqlite:///{tmp_path / 'state' / 'gonogo.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def artifacts_dir(tmp_path: Path) -> Path:
    return tmp_path / "artifacts"


@pytest.fixture
def store(store_url: str, artifacts_dir: Path) -> Iterator[Store]:
    with Store.open(store_url, artifacts_dir=artifacts_dir) as opened:
        yield opened


@pytest.fixture
def sqlite_store(tmp_path: Path, artifacts_dir: Path) -> Iterator[Store]:
    """For tests of the artifact files alone, which do not depend on the database."""
    url = f"sqlite:///{tmp_path / 'gonogo.db'}"
    with Store.open(url, artifacts_dir=artifacts_dir) as opened:
        yield opened


@pytest.fixture
def begin_run(store: Store) -> BeginRun:
    """Begin a run in `store`; keyword arguments override the defaults."""

    def begin(**overrides: object) -> str:
        fields: dict[str, object] = {
            "name": "demo",
            "plan_path": "/plans/gonogo.yaml",
            "plan_hash": "ab" * 32,
            "plan_text": "name: demo\n",
            "git_commit": "0123456789abcdef0123456789abcdef01234567",
            "host": socket.gethostname(),
            "tool_versions": {"gonogo": "0.1.0", "python": "3.11.7"},
            "owner_pid": os.getpid(),
        }
        fields.update(overrides)
        return store.begin_run(**fields)  # type: ignore[arg-type]

    return begin
