"""Turning a store URL into a configured SQLAlchemy engine, private to the store.

SQLite: WAL, a busy timeout, foreign keys, writers that take the lock up front.
PostgreSQL: always through psycopg 3, whatever driver the URL names.
"""

from __future__ import annotations

__all__ = ["driver_message", "open_engine"]

from pathlib import Path
from typing import Any

from sqlalchemy import URL, Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from gonogo.errors import UserError

_SQLITE_BUSY_TIMEOUT_S = 30
_PG_CONNECT_TIMEOUT_S = 10


def open_engine(url: str) -> tuple[Engine, str]:
    """The engine for `url`, and the URL to show in messages (password hidden).

    Does not connect yet: the first transaction (schema creation) tells if it works.
    """
    parsed, display = _parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed), display
    return _postgresql_engine(parsed, display), display


def driver_message(exc: DBAPIError) -> str:
    """The driver's own message, first meaningful line, without SQLAlchemy's boilerplate."""
    lines = [line.strip() for line in str(exc.orig).splitlines() if line.strip()]
    return lines[0] if lines else type(exc.orig).__name__


def _parse_url(url: str) -> tuple[URL, str]:
    """The SQLAlchemy URL to connect with, and the URL to show (password hidden)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise UserError(
            f"not a store URL: {url!r} (expected sqlite:///path/to/gonogo.db "
            "or postgresql://user@host:port/database)"
        ) from exc
    display = parsed.render_as_string(hide_password=True)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.drivername != "sqlite":
            raise UserError(f"unsupported SQLite driver in store URL {display}; use sqlite:///")
        if not parsed.database or parsed.database == ":memory:":
            raise UserError(
                f"the store URL {display} names no database file; an in-memory database "
                "would lose the evidence (use sqlite:////absolute/path/gonogo.db)"
            )
        return parsed, display
    if backend in ("postgresql", "postgres"):
        # Whatever driver was asked for, psycopg 3 is the one gonogo depends on.
        return parsed.set(drivername="postgresql+psycopg"), display
    raise UserError(
        f"unsupported store URL {display}: use sqlite:///path/to/gonogo.db "
        "or postgresql://user@host:port/database"
    )


def _sqlite_engine(url: URL) -> Engine:
    path = Path(str(url.database))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"cannot create the folder of the evidence store {path}: {exc.strerror or exc}"
        ) from exc
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": _SQLITE_BUSY_TIMEOUT_S},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: object) -> None:
        # We issue BEGIN ourselves (below); pysqlite's own handling would defer it.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # WAL: readers (`gonogo show` during a run) never block the writer. NORMAL
            # sync in WAL mode loses nothing when the process dies, only on power loss.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_S * 1000}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A writer takes the write lock up front: a deferred transaction that reads and
        # then writes can fail with "database is locked" instead of waiting.
        immediate = conn.get_execution_options().get("gonogo_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _postgresql_engine(url: URL, display: str) -> Engine:
    try:
        return create_engine(
            url,
            pool_pre_ping=True,
            connect_args={"connect_timeout": _PG_CONNECT_TIMEOUT_S},
        )
    except ImportError as exc:
        raise UserError(
            f"the store URL {display} needs PostgreSQL support: pip install 'gonogo[postgresql]'"
        ) from exc
