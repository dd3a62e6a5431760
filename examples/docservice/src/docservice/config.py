"""Settings shared by the processes: command-line flags first, then environment, then defaults."""

from __future__ import annotations

__all__ = ["ApiSettings", "WorkerSettings", "check_database_url", "env_flag", "setup_logging"]

import argparse
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


def env_flag(name: str, environ: Mapping[str, str] | None = None) -> bool:
    """True when the variable is set to 1/true/yes/on (case-insensitive)."""
    value = (environ if environ is not None else os.environ).get(name, "")
    return value.strip().lower() in {"1", "true", "yes", "on"}


def check_database_url(parser: argparse.ArgumentParser, url: str | None) -> None:
    """A usage error (exit 2, no traceback) unless the URL is a PostgreSQL one."""
    if url is not None and not url.startswith(("postgresql://", "postgres://")):
        parser.error(f"--database-url must be a postgresql://user@host:port/dbname URL, not {url!r}")


@dataclass(frozen=True)
class ApiSettings:
    db_path: Path
    storage_dir: Path
    database_url: str | None = None  # postgresql://...; replaces db_path when set
    enricher_url: str = "http://127.0.0.1:8001"
    enricher_timeout: float = 1.0  # the summary route's whole budget for the enricher
    host: str = "127.0.0.1"
    port: int = 8000
    max_upload_bytes: int = 100 * 1024 * 1024
    # a request body must keep coming: it may take this long plus one second per KiB
    # received, then the request is refused with 408 (a slow-body attack holds nothing)
    body_timeout: float = 5.0
    token_ttl: float = 3600.0  # seconds
    max_attempts: int = 5  # given to each job the API enqueues
    scrypt_n: int = 2**14  # scrypt cost; tests lower it to stay fast
    # Deliberate failure switches, for gonogo's own tests (see README).
    fail_uploads: bool = False  # DOCSERVICE_FAIL_UPLOADS=1: POST /documents answers 500
    never_ready: bool = False  # DOCSERVICE_NEVER_READY=1: GET /health never answers 200
    # DOCSERVICE_SLOW_ROUTE="GET /documents": that route answers DOCSERVICE_SLOW_SECONDS later
    slow_route: str | None = None
    slow_seconds: float = 0.5
    # DOCSERVICE_ACK_BEFORE_COMMIT=1: an upload answers 201 first and stores the file and
    # row ack_delay seconds later, so a crash meanwhile loses an acknowledged document
    ack_before_commit: bool = False
    ack_delay: float = 1.0
    # DOCSERVICE_NO_DEPENDENCY_TIMEOUT=1: GET /documents/{id}/summary calls the enricher
    # without a timeout, from the event loop: a hanging enricher freezes the whole API
    no_dependency_timeout: bool = False
    # Security defects on purpose, each one a security check must find (see README):
    # DOCSERVICE_NO_OWNER_CHECK=1: GET/DELETE /documents/{id}[/content|/summary] serve any
    # user's document (broken object-level authorization)
    no_owner_check: bool = False
    # DOCSERVICE_NO_AUTH_CHECK=1: GET /documents/{id}/content serves a document to a
    # request with no valid token (missing authentication; still declared as secured)
    no_auth_check: bool = False
    # DOCSERVICE_SQL_CONCAT=1: the `title` filter of GET /documents is concatenated into the SQL
    sql_concat: bool = False
    # DOCSERVICE_TRAVERSAL=1: GET /help/{name} joins the name to the folder naively
    traversal: bool = False
    # DOCSERVICE_UNBOUNDED_UPLOAD=1: POST /documents reads the whole body into memory, no limit
    unbounded_upload: bool = False
    # DOCSERVICE_NON_ASCII_500=1: a non-ASCII title or email is encoded as ASCII: 500
    non_ascii_500: bool = False
    # Stability and operations defects on purpose, each one a gate must catch (see README):
    # DOCSERVICE_LEAK_MEMORY=N: every request keeps N KiB of memory forever (a slow leak)
    leak_memory_kib: int = 0
    # DOCSERVICE_LEAK_FDS=1: every request opens a file descriptor that is never closed
    leak_fds: bool = False
    # DOCSERVICE_LYING_HEALTH=1: GET /health answers 200 "ok" without checking anything
    lying_health: bool = False
    # DOCSERVICE_CRASH_AFTER=N: the API exits with status 1 once it has answered N requests
    crash_after: int = 0
    # DOCSERVICE_WRITE_BEHIND=1: an upload is acknowledged once its bytes are written, and its
    # file and row are committed later: before the next read of documents, or by a flush every
    # flush_interval seconds, whichever comes first; a crash meanwhile loses it
    write_behind: bool = False
    flush_interval: float = 2.0
    # DOCSERVICE_SLOWDOWN=0.2: every response takes 20% longer than it otherwise would (for
    # `gonogo compare`: a slower build on purpose)
    slowdown: float = 0.0

    @property
    def database(self) -> Path | str:
        return self.database_url or self.db_path


@dataclass(frozen=True)
class WorkerSettings:
    db_path: Path
    storage_dir: Path
    enricher_url: str
    worker_id: str
    database_url: str | None = None  # postgresql://...; replaces db_path when set
    poll_interval: float = 0.1  # seconds between polls when the queue is empty
    lease_seconds: float = 30.0  # a claimed job is reclaimable by others after this
    backoff_base: float = 0.5  # retry delay: base * 2**(attempt-1), capped
    backoff_max: float = 30.0
    enricher_timeout: float = 2.0  # per call
    enricher_retries: int = 2  # further calls after a failed one, before the fallback
    enricher_backoff: float = 0.2  # seconds before the first retry, doubling
    # after a fallback, documents get a single call (no retries) for this long, so a dead
    # enricher costs each queued document one timeout, not (retries + 1) of them
    enricher_cooldown: float = 10.0
    # DOCSERVICE_NO_RECLAIM=1: jobs whose lease expired are never taken over
    no_reclaim: bool = False

    @property
    def database(self) -> Path | str:
        return self.database_url or self.db_path


def _plain_uvicorn_name(record: logging.LogRecord) -> bool:
    # uvicorn logs its lifecycle INFO lines as "uvicorn.error"; say "uvicorn" so a log
    # scan for "error" finds real errors only.
    if record.name == "uvicorn.error":
        record.name = "uvicorn"
    return True


def setup_logging(process: str, level: str | None = None) -> None:
    """One line per event on stderr, with the process name so interleaved logs stay readable."""
    logging.basicConfig(
        level=(level or os.environ.get("DOCSERVICE_LOG_LEVEL", "INFO")).upper(),
        format=f"%(asctime)s {process}[%(process)d] %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(_plain_uvicorn_name)
