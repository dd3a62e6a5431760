"""Database faults: a SQLite database locked or moved away; PostgreSQL backends terminated, or the
server restarted.

- `lock_sqlite` holds a SQLite lock from gonogo's own connection (BEGIN IMMEDIATE or BEGIN
  EXCLUSIVE) and checks from a second connection that a writer (and, exclusive, a reader) is
  refused. The lock lives in gonogo's process: the kernel releases it if gonogo dies.
- `move_sqlite_away` renames the database file and its -wal, -shm and -journal in their own
  directory and renames them back on removal, never over a file the service made meanwhile.
  The move back is registered with the watchdog too (`python -m gonogo.faults.database`).
  A connection the service keeps open still reads the moved file, but SQLite refuses its
  writes ("attempt to write a readonly database": it notices the rename); a new connection
  finds no database (or, opened without `mode=rw`, creates an empty one: "no such table").
- `terminate_postgres_backends` calls pg_terminate_backend on the backends of the service's
  database (never gonogo's own connections), once or `repeat` times; 0 terminated is a fault
  that did nothing, and says so.
- `restart_postgres` runs `pg_ctl restart` on a server gonogo did not start, as the owner of its
  data directory and without the run's token, so the watchdog never takes the restarted server
  for one of gonogo's processes.
"""

from __future__ import annotations

__all__ = [
    "PostgresRestart",
    "PostgresTermination",
    "SqliteGone",
    "SqliteLock",
    "lock_sqlite",
    "move_sqlite_away",
    "redact_dsn",
    "restart_postgres",
    "terminate_postgres_backends",
]

import contextlib
import json
import os
import re
import secrets
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from gonogo.faults.base import ActiveFault, FaultError, FaultNotSupported
from gonogo.system.reaper import TAG_VARIABLE, TOKEN_VARIABLE, Reaper

# ---------------------------------------------------------------------------------------
# SQLite: a lock held


# For a write the service has in progress to finish before the lock is gonogo's.
_LOCK_WAIT = 10.0
# After the release, for a writer of the service that rushed in to finish.
_RELEASE_WAIT = 5.0


@dataclass
class SqliteLock(ActiveFault):
    path: Path | None = None
    connection: sqlite3.Connection | None = None
    held_since: float = 0.0
    removed: bool = False

    def remove(self) -> None:
        if self.removed or self.connection is None or self.path is None:
            return
        self.removed = True
        try:
            self.connection.execute("ROLLBACK")
        except sqlite3.Error as error:
            raise FaultError(f"could not release the lock on {self.path}: {error}") from None
        finally:
            self.connection.close()
            self.evidence["held_seconds"] = round(time.monotonic() - self.held_since, 3)
        free = _write_lock_free(self.path, wait=_RELEASE_WAIT)
        self.evidence["released"] = free
        if not free:
            raise FaultError(
                f"{self.path} was still locked {_RELEASE_WAIT:g} s after gonogo released its lock "
                "(another connection holds a write transaction that long)"
            )


def lock_sqlite(path: Path, mode: Literal["write", "exclusive"]) -> SqliteLock:
    """Take a write (`BEGIN IMMEDIATE`) or exclusive (`BEGIN EXCLUSIVE`) lock on the SQLite
    database at `path` and verify what it blocks; `remove()` releases it."""
    path = path.absolute()
    if not path.is_file():
        raise FaultError(f"sqlite_lock: there is no database file at {path}")
    statement = "BEGIN IMMEDIATE" if mode == "write" else "BEGIN EXCLUSIVE"
    fault = SqliteLock(
        kind=f"sqlite.lock.{mode}",
        description=f"SQLite {mode} lock on {path}",
        path=path,
        evidence={"path": str(path), "mode": mode, "statement": statement},
    )
    connection = _open(path, timeout=_LOCK_WAIT)
    try:
        journal_mode = str(connection.execute("PRAGMA journal_mode").fetchone()[0]).lower()
        started = time.monotonic()
        connection.execute(statement)
    except sqlite3.Error as error:
        connection.close()
        if "locked" in str(error) or "busy" in str(error):
            raise FaultError(
                f"sqlite_lock: could not take the lock on {path} within {_LOCK_WAIT:g} s: another "
                "connection held it all that time"
            ) from None
        raise FaultError(f"sqlite_lock: {path}: {error}") from None
    fault.connection, fault.held_since = connection, time.monotonic()
    writers_blocked = not _write_lock_free(path, wait=0.0)
    readers_blocked = not _readable(path)
    fault.evidence.update(
        journal_mode=journal_mode,
        waited_seconds=round(fault.held_since - started, 3),
        writers_blocked=writers_blocked,
        readers_blocked=readers_blocked,
    )
    # In WAL mode SQLite never blocks readers, so an exclusive lock only blocks writers there.
    readers_should_block = mode == "exclusive" and journal_mode != "wal"
    fault.applied = writers_blocked and (readers_blocked or not readers_should_block)
    readers = "readers blocked too" if readers_blocked else "readers still served"
    if fault.applied:
        wal = (
            " (WAL mode: SQLite never blocks readers)" if mode == "exclusive" and not readers_blocked else ""
        )
        fault.detail = (
            f"held ({journal_mode} journal): a second connection's write is refused, {readers}{wal}"
        )
    else:
        fault.detail = (
            f"the lock does not act: a second connection could still "
            f"{'write' if not writers_blocked else 'read'} ({journal_mode} journal)"
        )
    return fault


def _open(path: Path, *, timeout: float) -> sqlite3.Connection:
    """A connection to an existing database (`mode=rw`: never creates one), in autocommit mode
    so that gonogo decides when a transaction begins and ends."""
    try:
        return sqlite3.connect(
            f"{path.as_uri()}?mode=rw",
            uri=True,
            timeout=timeout,
            isolation_level=None,
            check_same_thread=False,
        )
    except sqlite3.Error as error:
        raise FaultError(f"cannot open the SQLite database {path}: {error}") from None


def _write_lock_free(path: Path, *, wait: float) -> bool:
    """Whether another connection can begin a write transaction within `wait` seconds."""
    try:
        probe = _open(path, timeout=wait)
    except FaultError:
        return False
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return True
    except sqlite3.Error:
        return False
    finally:
        probe.close()


def _readable(path: Path) -> bool:
    """Whether another connection can read right now."""
    try:
        probe = _open(path, timeout=0.0)
    except FaultError:
        return False
    try:
        probe.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return True
    except sqlite3.Error:
        return False
    finally:
        probe.close()


# ---------------------------------------------------------------------------------------
# SQLite: the file moved away

_COMPANIONS = ("-wal", "-shm", "-journal")


@dataclass
class SqliteGone(ActiveFault):
    plan: dict[str, Any] = field(default_factory=dict)  # what `_move_back` needs; JSON for the watchdog
    reaper: Reaper | None = None
    undo_handle: int | None = None
    removed: bool = False

    def remove(self) -> None:
        if self.removed:
            return
        self.removed = True
        outcome = _move_back(self.plan)
        if self.reaper is not None and self.undo_handle is not None:
            self.reaper.remove_undo(self.undo_handle)
        self.evidence["removal"] = outcome
        self.detail += f"; {outcome['detail']}"
        if not outcome["restored"] and not outcome["kept_both"]:
            raise FaultError(outcome["detail"])


def move_sqlite_away(path: Path, *, reaper: Reaper) -> SqliteGone:
    """Rename the SQLite database at `path` (and its -wal, -shm, -journal) to
    `<name>.gonogo-gone-<random>` in the same directory; `remove()` renames them back."""
    path = path.absolute()
    if not path.is_file():
        raise FaultError(f"sqlite_gone: there is no database file at {path}")
    suffix = f".gonogo-gone-{secrets.token_hex(4)}"
    originals = [path, *(Path(f"{path}{c}") for c in _COMPANIONS if Path(f"{path}{c}").exists())]
    moves = [[str(original), f"{original}{suffix}"] for original in originals]
    plan: dict[str, Any] = {"database": str(path), "moves": moves}
    fault = SqliteGone(
        kind="sqlite.gone",
        description=f"SQLite database {path} moved away",
        plan=plan,
        reaper=reaper,
        evidence={"path": str(path), "moved": moves},
    )
    # Registered first: a gonogo killed during the fault still gets the database back.
    fault.undo_handle = reaper.add_undo([sys.executable, "-m", "gonogo.faults.database", json.dumps(plan)])
    done: list[list[str]] = []
    try:
        for original, away in moves:
            os.rename(original, away)  # the same directory: one filesystem, atomic
            done.append([original, away])
    except OSError as error:
        for original, away in reversed(done):
            with contextlib.suppress(OSError):
                os.rename(away, original)
        reaper.remove_undo(fault.undo_handle)
        raise FaultError(f"sqlite_gone: could not move {path} away: {error.strerror or error}") from None
    moved = os.stat(f"{path}{suffix}")
    plan["stamp"] = [moved.st_mtime_ns, moved.st_size]  # to tell whether anyone wrote to it meanwhile
    fault.applied = not path.exists()
    names = ", ".join(Path(original).name for original, _ in moves)
    fault.detail = f"moved {names} to *{suffix}" if fault.applied else f"{path} is still there after the move"
    return fault


def _move_back(plan: dict[str, Any]) -> dict[str, Any]:
    """Rename the moved files back, unless the service made a new database meanwhile (then
    both are kept, the moved one under its `.gonogo-gone-…` name). A moved -journal goes back
    only if the database was not written since: written through a connection that stayed open,
    the journal from before those writes would roll them back."""
    database = Path(plan["database"])
    moves = [(Path(original), Path(away)) for original, away in plan["moves"]]
    moved_database = next(away for original, away in moves if original == database)
    if not moved_database.exists():  # moved back before (by gonogo, or by the watchdog)
        return {"restored": database.exists(), "kept_both": False, "detail": "already moved back"}
    made = [original for original, away in moves if original.exists() and away.exists()]
    if made:
        sizes = ", ".join(f"{p.name} ({p.stat().st_size} bytes)" for p in made)
        kept = ", ".join(str(away) for original, away in moves if away.exists())
        return {
            "restored": False,
            "kept_both": True,
            "detail": f"not moved back: the service made a new {sizes} meanwhile; both kept, the "
            f"original at {kept}",
        }
    stat = moved_database.stat()
    written = plan.get("stamp") not in (None, [stat.st_mtime_ns, stat.st_size])
    left: list[str] = []
    for original, away in moves:
        if not away.exists():
            continue
        if original.name.endswith("-journal") and written:
            left.append(str(away))
            continue
        os.rename(away, original)
    restored = database.exists()
    detail = "moved back" if restored else f"{database} is not back"
    if left:
        detail += (
            f"; the database was written through an open connection while away, so its old journal "
            f"was left at {', '.join(left)}"
        )
    return {"restored": restored, "kept_both": False, "written_while_away": written, "detail": detail}


# ---------------------------------------------------------------------------------------
# PostgreSQL: backends terminated

_CONNECT_TIMEOUT = 10  # seconds
_OWN_APPLICATION_NAME = "gonogo-fault"
_BACKENDS = """
SELECT pid, usename, datname, application_name, client_addr::text, client_port
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
  AND datname = %(database)s
  AND (%(user)s::text IS NULL OR usename = %(user)s)
  AND (%(application_name)s::text IS NULL OR application_name = %(application_name)s)
  AND application_name <> %(own)s
ORDER BY pid
"""


def redact_dsn(dsn: str) -> str:
    """`dsn` without its password, for descriptions and evidence."""
    if "://" in dsn:
        parts = urlsplit(dsn)
        if parts.password is not None:
            host = parts.netloc.rpartition("@")[2]
            user = parts.username or ""
            return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
        return dsn
    return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", dsn)


@dataclass
class PostgresTermination(ActiveFault):
    rounds: list[dict[str, Any]] = field(default_factory=list)
    worker: threading.Thread | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    removed: bool = False

    def remove(self) -> None:
        if self.removed:
            return
        self.removed = True
        self.stop.set()
        if self.worker is not None:
            self.worker.join(timeout=60)
        self.evidence["terminated_total"] = sum(len(r["terminated"]) for r in self.rounds)


def terminate_postgres_backends(
    dsn: str,
    *,
    database: str | None,
    user: str | None,
    application_name: str | None,
    repeat: int,
    every: float,
) -> PostgresTermination:
    """Terminate the backends of `database` (default: the one `dsn` connects to), narrowed by
    `user` and `application_name`, now and `repeat - 1` more times `every` seconds apart.

    Applied when the first round terminated at least one backend, verified gone from
    pg_stat_activity. gonogo's own connections (this process's, and the one it uses here) are
    never terminated.
    """
    shown = redact_dsn(dsn)
    fault = PostgresTermination(
        kind="postgres.terminate",
        description=f"PostgreSQL backends terminated via {shown}",
        evidence={"dsn": shown, "user": user, "application_name": application_name, "repeat": repeat},
    )
    fault.evidence["rounds"] = fault.rounds
    first = _terminate_round(dsn, database, user, application_name)
    fault.rounds.append(first)
    fault.evidence["database"] = first["database"]
    count = len(first["terminated"])
    fault.applied = count > 0
    who = _filters(first["database"], user, application_name)
    if count:
        fault.detail = (
            f"terminated {count} backend(s) of {who} (pid {', '.join(map(str, first['terminated']))})"
        )
    elif first["failed"]:
        fault.detail = f"no backend of {who} could be terminated: {first['failed'][0]['error']}"
    else:
        fault.detail = f"no backend of {who} to terminate: the service had no connection open"
    if fault.applied and repeat > 1:

        def repeat_rounds() -> None:
            for _ in range(repeat - 1):
                if fault.stop.wait(every):
                    return
                try:
                    fault.rounds.append(_terminate_round(dsn, database, user, application_name))
                except FaultError as error:
                    fault.rounds.append({"at": _now(), "error": str(error), "terminated": [], "failed": []})

        fault.worker = threading.Thread(target=repeat_rounds, name="gonogo-postgres-terminate", daemon=True)
        fault.worker.start()
    return fault


def _filters(database: str, user: str | None, application_name: str | None) -> str:
    narrowed = [f"user {user}"] if user else []
    narrowed += [f"application_name {application_name}"] if application_name else []
    return f"database {database}" + (f" ({', '.join(narrowed)})" if narrowed else "")


def _terminate_round(
    dsn: str, database: str | None, user: str | None, application_name: str | None
) -> dict[str, Any]:
    psycopg = _psycopg()
    try:
        connection = psycopg.connect(
            dsn, autocommit=True, connect_timeout=_CONNECT_TIMEOUT, application_name=_OWN_APPLICATION_NAME
        )
    except psycopg.Error as error:
        raise FaultError(f"cannot connect to {redact_dsn(dsn)}: {str(error).strip()}") from None
    with connection:
        target = database or str(connection.execute("SELECT current_database()").fetchone()[0])
        own_ports = _own_client_ports()
        rows = connection.execute(
            _BACKENDS,
            {
                "database": target,
                "user": user,
                "application_name": application_name,
                "own": _OWN_APPLICATION_NAME,
            },
        ).fetchall()
        # This process's other connections (the evidence store, say) are gonogo's own too.
        candidates = [row for row in rows if not (_loopback(row[4]) and row[5] in own_ports)]
        terminated: list[int] = []
        failed: list[dict[str, Any]] = []
        for pid, *_ in candidates:
            try:
                ok = connection.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
            except psycopg.Error as error:
                failed.append({"pid": pid, "error": str(error).strip()})
                continue
            if ok:
                terminated.append(pid)
            else:
                failed.append({"pid": pid, "error": "pg_terminate_backend returned false"})
        gone = _await_gone(connection, terminated)
    return {
        "at": _now(),
        "database": target,
        "backends": [
            {"pid": r[0], "user": r[1], "application_name": r[3], "client": f"{r[4]}:{r[5]}"}
            for r in candidates
        ],
        "terminated": [pid for pid in terminated if pid in gone],
        "still_there": [pid for pid in terminated if pid not in gone],
        "failed": failed,
    }


def _await_gone(connection: Any, pids: list[int], timeout: float = 5.0) -> set[int]:
    """Which of `pids` have left pg_stat_activity within `timeout` (termination is a signal)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = connection.execute("SELECT pid FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,)).fetchall()
        alive = {row[0] for row in rows}
        if not alive or time.monotonic() >= deadline:
            return set(pids) - alive
        time.sleep(0.05)


def _own_client_ports() -> set[int]:
    import psutil

    return {c.laddr.port for c in psutil.Process().net_connections(kind="tcp") if c.raddr}


def _loopback(address: str | None) -> bool:
    return address is not None and (address.startswith("127.") or address in ("::1", "::1/128"))


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise FaultNotSupported("PostgreSQL faults need psycopg: pip install 'gonogo[postgresql]'") from None
    return psycopg


def _now() -> str:
    return datetime.now(UTC).isoformat()


# ---------------------------------------------------------------------------------------
# PostgreSQL: the server restarted


@dataclass
class PostgresRestart(ActiveFault):
    worker: threading.Thread | None = None
    timeout: float = 60.0
    removed: bool = False

    def settling(self) -> bool:
        return self.worker is not None and self.worker.is_alive()

    def remove(self) -> None:
        if self.removed:
            return
        self.removed = True
        if self.worker is not None:
            self.worker.join(timeout=self.timeout + 30)
        if self.evidence.get("back") is not True:
            raise FaultError(f"the server did not come back: {self.detail}")


def restart_postgres(
    data_dir: Path, *, mode: Literal["smart", "fast", "immediate"], timeout: float, work_dir: Path
) -> PostgresRestart:
    """`pg_ctl restart -m <mode> -w` on the server running from `data_dir`, in the background.

    Applied once its postmaster (the pid in postmaster.pid) is gone; `settling()` until
    pg_ctl says the server accepts connections again. The server's output from then on goes
    to a log in `work_dir` (pg_ctl does not remember where it went before).
    """
    data_dir = data_dir.absolute()
    before = _postmaster_pid(data_dir)
    if before is None:
        raise FaultError(f"postgres_restart: no server runs from {data_dir} (no postmaster.pid there)")
    pg_ctl = _pg_ctl(data_dir)
    owner = data_dir.stat()
    run_as: dict[str, Any] = {}
    if os.geteuid() == 0 and owner.st_uid != 0:
        run_as = {"user": owner.st_uid, "group": owner.st_gid, "extra_groups": []}
    elif os.geteuid() != owner.st_uid:
        raise FaultError(
            f"postgres_restart: pg_ctl must run as the owner of {data_dir} (uid {owner.st_uid}); "
            f"gonogo runs as uid {os.geteuid()}"
        )
    work_dir.mkdir(parents=True, exist_ok=True)
    log_path = work_dir / f"postgres-restart-{secrets.token_hex(4)}.log"
    argv = [pg_ctl, "restart", "-D", str(data_dir), "-m", mode, "-w", "-t", str(max(1, round(timeout)))]
    fault = PostgresRestart(
        kind="postgres.restart",
        description=f"PostgreSQL server of {data_dir} restarted ({mode})",
        timeout=timeout,
        evidence={"data_dir": str(data_dir), "argv": argv, "pid_before": before, "log": str(log_path)},
    )
    # Not one of gonogo's processes: without the run's token, in a session of its own.
    env = {k: v for k, v in os.environ.items() if k not in (TOKEN_VARIABLE, TAG_VARIABLE)}
    began = time.monotonic()
    fault.evidence["began"] = _now()

    def restart() -> None:
        try:
            with open(log_path, "ab") as log:
                os.chmod(log_path, 0o644)
                completed = subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=data_dir,
                    start_new_session=True,
                    timeout=timeout + 30,
                    check=False,
                    **run_as,
                )
        except (OSError, subprocess.SubprocessError) as error:
            fault.detail = f"pg_ctl did not run: {error}"
            fault.evidence["back"] = False
            return
        after = _postmaster_pid(data_dir)
        took = time.monotonic() - began
        fault.evidence.update(
            exit_code=completed.returncode, pid_after=after, ready=_now(), seconds=round(took, 3)
        )
        back = completed.returncode == 0 and after is not None and after != before
        fault.evidence["back"] = back
        said = _tail(log_path)
        fault.detail = (
            f"restarted: postmaster pid {before} → {after}, accepting connections after {took:.1f} s"
            if back
            else f"pg_ctl restart exited with code {completed.returncode}: {said}"
        )

    fault.worker = threading.Thread(target=restart, name="gonogo-postgres-restart", daemon=True)
    fault.worker.start()
    deadline = time.monotonic() + timeout
    while _alive(before) and fault.worker.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    fault.applied = not _alive(before)
    if fault.applied:
        fault.detail = f"postmaster pid {before} stopped ({mode}); restart under way"
    elif not fault.worker.is_alive():
        pass  # `detail` says what pg_ctl said
    else:
        fault.detail = f"postmaster pid {before} still runs {timeout:g} s after pg_ctl restart began"
    return fault


def _postmaster_pid(data_dir: Path) -> int | None:
    try:
        first = (data_dir / "postmaster.pid").read_text().split("\n", 1)[0].strip()
    except OSError:
        return None
    return int(first) if first.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    state = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        return state.read_text().rpartition(")")[2].split()[0] not in ("Z", "X")
    return True


def _pg_ctl(data_dir: Path) -> str:
    """The pg_ctl of the data directory's major version (Debian keeps one per version off PATH)."""
    with contextlib.suppress(OSError):
        version = (data_dir / "PG_VERSION").read_text().strip()
        candidate = Path(f"/usr/lib/postgresql/{version}/bin/pg_ctl")
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("pg_ctl")
    if found is None:
        raise FaultNotSupported("postgres_restart needs pg_ctl (Debian: apt-get install postgresql)")
    return found


def _tail(path: Path, lines: int = 5) -> str:
    with contextlib.suppress(OSError):
        text = path.read_text(errors="replace").strip().splitlines()
        return " / ".join(text[-lines:]) or "(no output)"
    return "(no output)"


# ---------------------------------------------------------------------------------------
# The watchdog's undo of `move_sqlite_away`: python -m gonogo.faults.database '<plan JSON>'


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m gonogo.faults.database '<plan JSON>'", file=sys.stderr)
        return 2
    outcome = _move_back(json.loads(argv[0]))
    print(outcome["detail"], file=sys.stderr)
    return 0 if outcome["restored"] or outcome["kept_both"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
