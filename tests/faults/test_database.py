"""Database faults against real databases: a SQLite file a separate writer process uses, and a
real PostgreSQL server with a client process whose connection is terminated."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from gonogo.faults.base import FaultError
from gonogo.faults.database import (
    lock_sqlite,
    move_sqlite_away,
    redact_dsn,
    restart_postgres,
    terminate_postgres_backends,
)
from gonogo.system import Reaper

REPO = Path(__file__).resolve().parents[2]

# One write and one read by another process, as a service would do them: waits at most 0.3 s
# for a lock (its busy timeout), then reports what happened.
_CLIENT = """
import json, sqlite3, sys
result = {}
for what, sql in (("write", "INSERT INTO items (body) VALUES ('x')"), ("read", "SELECT count(*) FROM items")):
    try:
        db = sqlite3.connect(f"file:{sys.argv[1]}?mode=rw", uri=True, timeout=0.3)
        db.execute(sql).fetchall()
        db.commit()
        db.close()
        result[what] = "ok"
    except sqlite3.Error as error:
        result[what] = str(error)
print(json.dumps(result))
"""


def client(path: Path) -> dict[str, str]:
    done = subprocess.run(
        [sys.executable, "-c", _CLIENT, str(path)], capture_output=True, text=True, timeout=30, check=True
    )
    result: dict[str, str] = json.loads(done.stdout)
    return result


def make_db(path: Path, *, wal: bool = False) -> None:
    with sqlite3.connect(path) as db:
        if wal:
            db.execute("PRAGMA journal_mode=wal")
        db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, body TEXT)")
        db.executemany("INSERT INTO items (body) VALUES (?)", [("a",), ("b",)])
    db.close()


def rows(path: Path) -> int:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        count: int = db.execute("SELECT count(*) FROM items").fetchone()[0]
        return count
    finally:
        db.close()


def test_a_sqlite_lock_refuses_the_services_writes_and_exclusive_its_reads_until_released(
    tmp_path: Path,
) -> None:
    db = tmp_path / "app.db"
    make_db(db)
    assert client(db) == {"write": "ok", "read": "ok"}

    fault = lock_sqlite(db, "write")
    try:
        assert fault.applied, fault.detail
        assert fault.kind == "sqlite.lock.write"
        assert client(db) == {"write": "database is locked", "read": "ok"}
        assert fault.evidence["journal_mode"] == "delete" and fault.evidence["readers_blocked"] is False
    finally:
        fault.remove()
        fault.remove()  # idempotent
    assert fault.evidence["released"] is True
    assert client(db) == {"write": "ok", "read": "ok"}

    with lock_sqlite(db, "exclusive") as exclusive:
        assert exclusive.applied, exclusive.detail
        assert client(db) == {"write": "database is locked", "read": "database is locked"}
        assert "readers blocked too" in exclusive.detail
    assert client(db) == {"write": "ok", "read": "ok"}
    assert rows(db) == 5  # 2 + the three writes made outside the locks; none of those refused

    # In WAL mode SQLite never blocks readers: an exclusive lock blocks writers only, and says so.
    wal = tmp_path / "wal.db"
    make_db(wal, wal=True)
    with lock_sqlite(wal, "exclusive") as on_wal:
        assert on_wal.applied, on_wal.detail
        assert client(wal) == {"write": "database is locked", "read": "ok"}
        assert "WAL mode" in on_wal.detail

    with pytest.raises(FaultError, match="no database file at"):
        lock_sqlite(tmp_path / "missing.db", "write")
    assert not (tmp_path / "missing.db").exists()  # never created by the attempt


def test_a_sqlite_database_moved_away_is_back_after_and_a_new_one_made_meanwhile_is_kept(
    tmp_path: Path, reaper: Reaper
) -> None:
    db = tmp_path / "app.db"
    make_db(db, wal=True)
    keeper = sqlite3.connect(db)  # keeps the -wal and -shm in place, as a running service would
    keeper.execute("SELECT count(*) FROM items").fetchall()
    companions = sorted(p.name for p in tmp_path.iterdir())
    assert companions == ["app.db", "app.db-shm", "app.db-wal"]

    fault = move_sqlite_away(db, reaper=reaper)
    try:
        assert fault.applied, fault.detail
        assert not db.exists() and not Path(f"{db}-wal").exists()
        assert "database" in client(db)["write"]  # "unable to open database file": mode=rw creates nothing
    finally:
        fault.remove()
    assert sorted(p.name for p in tmp_path.iterdir()) == companions
    assert rows(db) == 2 and client(db) == {"write": "ok", "read": "ok"}
    keeper.close()

    # The service makes a new, empty database while the old one is away: nothing is overwritten.
    fault = move_sqlite_away(db, reaper=reaper)
    make_db(db)
    fault.remove()  # no error: both kept, and the detail says where
    assert "made a new app.db" in fault.detail and "both kept" in fault.detail
    (away,) = tmp_path.glob("app.db.gonogo-gone-*")
    assert rows(db) == 2 and rows(away) == 3  # the new one, and the original with its write above


def test_the_watchdogs_undo_moves_a_database_back_and_a_stale_journal_stays_aside(
    tmp_path: Path, reaper: Reaper
) -> None:
    db = tmp_path / "app.db"
    make_db(db)
    journal = Path(f"{db}-journal")
    journal.write_bytes(b"journal of a transaction under way")
    fault = move_sqlite_away(db, reaper=reaper)
    assert fault.applied and not journal.exists()
    time.sleep(0.01)  # a later mtime than the move's
    # Written while away (SQLite itself refuses to write to a database renamed under an open
    # connection, "attempt to write a readonly database"; another tool may not).
    (moved,) = tmp_path.glob("app.db.gonogo-gone-*")
    with sqlite3.connect(moved) as other:
        other.execute("INSERT INTO items (body) VALUES ('written while away')")
    other.close()
    # What the watchdog runs when gonogo was killed during the fault.
    undo = subprocess.run(
        [sys.executable, "-m", "gonogo.faults.database", json.dumps(fault.plan)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert undo.returncode == 0, undo.stderr
    assert "old journal was left at" in undo.stderr
    assert rows(db) == 3  # the write made through the open connection is there
    assert not journal.exists() and len(list(tmp_path.glob("app.db-journal.gonogo-gone-*"))) == 1
    fault.remove()  # after the watchdog did it: nothing left to do
    assert "already moved back" in fault.detail


def test_a_password_never_shows_in_a_description() -> None:
    assert redact_dsn("postgresql://app:s3cret@127.0.0.1:5432/db") == "postgresql://app:***@127.0.0.1:5432/db"
    assert redact_dsn("host=x password='a b' user=app") == "host=x password=*** user=app"
    assert redact_dsn("postgresql://app@127.0.0.1/db") == "postgresql://app@127.0.0.1/db"


# A service's connection: reconnects whenever it is terminated, counts the terminations.
_PG_CLIENT = """
import sys, time, psycopg
dsn, seconds = sys.argv[1], float(sys.argv[2])
end, terminated, connection = time.monotonic() + seconds, 0, None
while time.monotonic() < end:
    try:
        if connection is None:
            connection = psycopg.connect(dsn, autocommit=True, application_name="svc")
            print("connected", flush=True)
        connection.execute("SELECT 1")
    except psycopg.OperationalError as error:
        terminated += 1
        print("terminated:", str(error).strip().splitlines()[0], flush=True)
        connection = None
    time.sleep(0.02)
print("total", terminated, flush=True)
"""


@pytest.mark.postgresql
def test_postgres_terminate_ends_the_services_connections_not_gonogos(postgres_server: str) -> None:
    own = psycopg.connect(postgres_server, autocommit=True, application_name="svc")  # this process's
    service = subprocess.Popen(
        [sys.executable, "-c", _PG_CLIENT, postgres_server, "2.5"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert service.stdout is not None and service.stdout.readline().strip() == "connected"
        fault = terminate_postgres_backends(
            postgres_server, database=None, user=None, application_name="svc", repeat=3, every=0.4
        )
        try:
            assert fault.applied, fault.detail
            assert fault.detail.startswith("terminated 1 backend(s) of database gonogo_test")
        finally:
            time.sleep(1.2)  # two more rounds, each after the service reconnected
            fault.remove()
        out, _ = service.communicate(timeout=30)
    finally:
        service.kill()
    assert fault.evidence["terminated_total"] == 3, fault.evidence
    assert "terminating connection due to administrator command" in out
    assert out.strip().endswith("total 3")
    assert own.execute("SELECT 1").fetchone() == (1,)  # gonogo's own connection was left alone
    own.close()

    nobody = terminate_postgres_backends(
        postgres_server, database=None, user=None, application_name="nobody", repeat=1, every=1
    )
    assert not nobody.applied
    assert nobody.detail == (
        "no backend of database gonogo_test (application_name nobody) to terminate: "
        "the service had no connection open"
    )


@pytest.fixture
def own_postgres() -> Iterator[tuple[Path, str]]:
    """A PostgreSQL server of this test's own (restarting the session's would disturb others)."""
    if os.environ.get("GONOGO_SKIP_POSTGRES") == "1":
        pytest.skip("GONOGO_SKIP_POSTGRES=1: PostgreSQL tests skipped")
    script = REPO / "scripts" / "postgres-test-server.sh"
    # Not under pytest's tmp dir: that is private to root, and the server runs as `postgres`.
    directory = Path(tempfile.mkdtemp(prefix="gonogo-postgres-restart-"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = subprocess.run(
        [str(script), "start", str(directory), str(port)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    try:
        assert started.returncode == 0, started.stderr
        yield directory / "data", started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([str(script), "stop", str(directory)], capture_output=True, timeout=120, check=False)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.postgresql
def test_postgres_restart_restarts_a_server_gonogo_did_not_start(
    own_postgres: tuple[Path, str], tmp_path: Path
) -> None:
    data, url = own_postgres
    before = int((data / "postmaster.pid").read_text().split()[0])
    client = psycopg.connect(url, autocommit=True)
    fault = restart_postgres(data, mode="fast", timeout=60, work_dir=tmp_path)
    assert fault.applied, fault.detail
    assert f"postmaster pid {before} stopped" in fault.detail
    with pytest.raises(psycopg.OperationalError):
        client.execute("SELECT 1")  # its connection went with the server
    fault.remove()  # waits until the server is back
    assert not fault.settling()
    assert fault.evidence["back"] is True and fault.evidence["pid_before"] == before
    after = fault.evidence["pid_after"]
    assert after != before and int((data / "postmaster.pid").read_text().split()[0]) == after
    with psycopg.connect(url, autocommit=True) as again:
        assert again.execute("SELECT 1").fetchone() == (1,)
    # The restarted server is not one of gonogo's processes: the watchdog would never kill it.
    environ = Path(f"/proc/{after}/environ").read_bytes().split(b"\0")
    assert not any(entry.startswith(b"GONOGO_RUN_TOKEN=") for entry in environ)
    assert os.getpgid(after) != os.getpgid(0)
