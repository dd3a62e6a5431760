"""Opening a store: URLs, schema creation and version, SQLite settings, clear errors."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from sqlalchemy import (
    BigInteger,
    Column,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    select,
    text,
    update,
)

from gonogo.errors import UserError
from gonogo.evidence import Store
from gonogo.evidence import schema as s


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_schema_is_created_and_versioned(store: Store) -> None:
    with store._engine.connect() as conn:
        assert conn.execute(select(s.schema_version.c.version)).scalars().all() == [s.SCHEMA_VERSION]


def test_reopening_keeps_the_evidence(store_url: str, artifacts_dir: Path) -> None:
    with Store.open(store_url, artifacts_dir=artifacts_dir) as store:
        run_id = store.begin_run(
            name="kept",
            plan_path="p",
            plan_hash="h",
            plan_text="t",
            git_commit=None,
            host="h",
            tool_versions={},
            owner_pid=1,
        )
    with Store.open(store_url, artifacts_dir=artifacts_dir) as store:
        assert store.resolve_run("latest").id == run_id
        with store._engine.connect() as conn:
            assert conn.execute(select(s.schema_version.c.version)).scalars().all() == [s.SCHEMA_VERSION]


def _artifacts_table_of_version_1() -> Table:
    return Table(
        "artifacts",
        MetaData(),
        Column("id", s.Id, primary_key=True, autoincrement=True),
        Column("run_id", String(64), nullable=False),
        Column("name", Text, nullable=False),
        Column("sha256", String(64), nullable=False, index=True),
        Column("size", BigInteger, nullable=False),
        Column("media_type", Text, nullable=False),
        Column("check_name", Text),
        Column("created_at", s.UTCDateTime, nullable=False),
        UniqueConstraint("run_id", "name", name="uq_artifacts_run_name"),
    )


def test_a_store_of_version_1_is_migrated_keeping_its_artifacts(store_url: str, artifacts_dir: Path) -> None:
    with Store.open(store_url, artifacts_dir=artifacts_dir) as store:
        run_id = store.begin_run(
            name="old", plan_path="p", plan_hash="h", plan_text="t", git_commit=None, host="h",
            tool_versions={}, owner_pid=1,
        )  # fmt: skip
        with store._engine.begin() as conn:  # the tables as gonogo 0.1 made them
            s.artifacts.drop(conn)
            old = _artifacts_table_of_version_1()
            old.create(conn)
            row = {"run_id": run_id, "size": 1, "media_type": "text/plain", "created_at": store.when()}
            conn.execute(
                old.insert(),
                [
                    {**row, "name": "api.log", "sha256": "a" * 64, "check_name": None},
                    {**row, "name": "tests.log", "sha256": "b" * 64, "check_name": "unit"},
                ],
            )
            conn.execute(update(s.schema_version).values(version=1))
    with Store.open(store_url, artifacts_dir=artifacts_dir) as store:
        with store._engine.connect() as conn:
            assert conn.execute(select(s.schema_version.c.version)).scalar_one() == s.SCHEMA_VERSION
        assert [(a.check, a.name, a.sha256) for a in store.artifacts(run_id)] == [
            (None, "api.log", "a" * 64),
            ("unit", "tests.log", "b" * 64),
        ]
        store.add_artifact(run_id, b"e2e", name="tests.log", check="e2e")
        assert sorted((a.check or "", a.name) for a in store.artifacts(run_id)) == [
            ("", "api.log"), ("e2e", "tests.log"), ("unit", "tests.log"),
        ]  # fmt: skip


def test_a_store_of_another_schema_version_is_refused(store_url: str, artifacts_dir: Path) -> None:
    with Store.open(store_url, artifacts_dir=artifacts_dir) as store, store._engine.begin() as conn:
        conn.execute(update(s.schema_version).values(version=s.SCHEMA_VERSION + 1))
    with pytest.raises(UserError, match="written by a newer gonogo"):
        Store.open(store_url, artifacts_dir=artifacts_dir)


def test_sqlite_settings(tmp_path: Path) -> None:
    db = tmp_path / "deep" / "er" / "gonogo.db"
    with Store.open(f"sqlite:///{db}", artifacts_dir=tmp_path / "a") as store:
        assert db.exists()  # parent folders created
        with store._engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30_000


def test_unreachable_postgresql_is_a_clear_error(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql://gonogo:s3cret@127.0.0.1:{port}/evidence"
    with pytest.raises(UserError) as caught:
        Store.open(url, artifacts_dir=tmp_path)
    message = str(caught.value)
    assert "PostgreSQL" in message
    assert f"gonogo:***@127.0.0.1:{port}/evidence" in message
    assert "s3cret" not in message
    assert "refused" in message.lower() or "connect" in message.lower()


@pytest.mark.postgresql
def test_postgres_scheme_alias(postgres_url: str, tmp_path: Path) -> None:
    url = postgres_url.replace("postgresql://", "postgres://", 1)
    with Store.open(url, artifacts_dir=tmp_path) as store:
        assert store.list_runs() == []
        assert store.display_url == url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://root@localhost/gonogo", "unsupported store URL"),
        ("not a url", "not a store URL"),
        ("sqlite://", "names no database file"),
        ("sqlite:///:memory:", "names no database file"),
    ],
)
def test_unusable_urls(url: str, expected: str, tmp_path: Path) -> None:
    with pytest.raises(UserError, match=expected):
        Store.open(url, artifacts_dir=tmp_path)


def test_sqlite_in_an_impossible_place(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(UserError, match="cannot create the folder of the evidence store"):
        Store.open(f"sqlite:///{blocker / 'gonogo.db'}", artifacts_dir=tmp_path)


def test_sqlite_file_that_is_not_a_database(tmp_path: Path) -> None:
    db = tmp_path / "gonogo.db"
    db.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(UserError, match=f"SQLite database at sqlite:///{db} is not usable"):
        Store.open(f"sqlite:///{db}", artifacts_dir=tmp_path)
