"""The document worker: claims jobs from the job table and processes documents.

    python -m docservice.worker --db PATH --storage DIR --enricher-url URL

For each job: stream the stored file once (size, SHA-256, line/word counts, excerpt),
check it against the checksum recorded at upload, ask the enricher to classify the
excerpt, store the result and mark the document processed. The lease on the job is
renewed in the background while it is processed; a worker that dies or stalls loses it
and another worker (or this one, restarted) reclaims the job.

Every enricher call has a timeout; failed calls (connection refused or reset, timeout,
5xx, 429) are retried with exponential backoff, and when the retries are exhausted the
document is still processed, with `"enrichment": "unavailable"` and `"degraded": true`,
so a dead dependency never leaves jobs stuck. A database that stops answering is waited
out with backoff. SIGTERM/SIGINT: the job in hand is finished, then the process exits 0.
"""

from __future__ import annotations

__all__ = ["EnricherClient", "EnricherError", "LeaseKeeper", "Worker", "main"]

import argparse
import http.client
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from docservice.config import WorkerSettings, check_database_url, env_flag, setup_logging
from docservice.db import ClaimedJob, Database, DatabaseUnavailable
from docservice.jobs import JobQueue, Outcome
from docservice.processing import analyze_file
from docservice.storage import Storage

log = logging.getLogger("docservice.worker")


class EnricherError(Exception):
    """The enricher could not classify; `retryable` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class EnricherClient:
    """A minimal JSON client for the enricher (stdlib only: the worker has no HTTP deps)."""

    def __init__(self, base_url: str, *, timeout: float | None = 5.0) -> None:
        # timeout=None waits forever: only DOCSERVICE_NO_DEPENDENCY_TIMEOUT=1 does that
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def classify(self, text: str) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.base_url}/classify",
            data=json.dumps({"text": text}).encode("utf-8"),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            retryable = exc.code >= 500 or exc.code == 429
            raise EnricherError(f"enricher answered {exc.code}", retryable=retryable) from exc
        except (urllib.error.URLError, TimeoutError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            raise EnricherError(f"enricher unreachable: {reason}", retryable=True) from exc
        except ValueError as exc:
            raise EnricherError(f"enricher answered invalid JSON: {exc}", retryable=True) from exc
        if not isinstance(body, dict):
            raise EnricherError("enricher answered a non-object", retryable=True)
        return body


class LeaseKeeper:
    """Renews a job's lease in the background while the job is processed; `lost` is set
    once the lease turns out to belong to someone else."""

    def __init__(self, queue: JobQueue, job: ClaimedJob, interval: float) -> None:
        self.queue = queue
        self.job = job
        self.interval = interval
        self.lost = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"lease-{job.id}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _renew(self) -> None:
        while not self._done.wait(self.interval):
            try:
                if not self.queue.heartbeat(self.job):
                    self.lost.set()
                    return
            except DatabaseUnavailable as exc:  # keep trying: the lease may still be saved
                log.warning("job %s: could not renew the lease: %s", self.job.id, exc)


class Worker:
    def __init__(
        self,
        settings: WorkerSettings,
        *,
        db: Database | None = None,
        enricher: EnricherClient | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.settings = settings
        self.db = db or Database(settings.database)
        self.storage = Storage(settings.storage_dir)
        self.queue = JobQueue(
            self.db,
            settings.worker_id,
            lease_seconds=settings.lease_seconds,
            backoff_base=settings.backoff_base,
            backoff_max=settings.backoff_max,
            reclaim=not settings.no_reclaim,
        )
        self.enricher = enricher or EnricherClient(settings.enricher_url, timeout=settings.enricher_timeout)
        self.stop = stop or threading.Event()
        self.processed = 0
        self.degraded = 0
        self._single_try_until = 0.0  # monotonic time; see WorkerSettings.enricher_cooldown
        self._db_backoff = 0.0

    def run(self) -> None:
        """Process jobs until `stop` is set; the job in hand is always finished first."""
        while not self.stop.is_set():
            try:
                self.db.initialize()
                self.storage.initialize()
                break
            except DatabaseUnavailable as exc:  # started before the database: wait for it
                self._wait_for_database(exc)
        log.info(
            "worker %s started (db=%s, enricher=%s, poll=%ss, lease=%ss)",
            self.settings.worker_id,
            self.db.describe(),
            self.settings.enricher_url,
            self.settings.poll_interval,
            self.settings.lease_seconds,
        )
        while not self.stop.is_set():
            if not self.run_once():
                self.stop.wait(self.settings.poll_interval)
        self.db.close()
        log.info("worker %s stopped after %d jobs", self.settings.worker_id, self.processed)

    def _wait_for_database(self, exc: Exception) -> None:
        self._db_backoff = min(2.0, max(0.1, self._db_backoff * 2))
        log.warning("%s; retrying in %.1fs", exc, self._db_backoff)
        self.stop.wait(self._db_backoff)

    def run_once(self) -> bool:
        """Claim and process one job; False when there was none (or the queue failed)."""
        try:
            job = self.queue.claim()
        except DatabaseUnavailable as exc:
            self._wait_for_database(exc)
            return False
        except Exception:  # a bug must not kill the worker either
            log.exception("could not claim a job")
            return False
        self._db_backoff = 0.0
        if job is None:
            return False
        started = time.perf_counter()
        try:
            outcome, detail = self.process(job)
        except DatabaseUnavailable as exc:
            # The result could not be stored; the lease runs out and the job is retried.
            log.warning("job %s: %s; it will be reclaimed when its lease expires", job.id, exc)
            self._wait_for_database(exc)
            return True
        except Exception as exc:  # an unexpected bug: count it as a failed attempt
            log.exception("job %s crashed", job.id)
            outcome, detail = self.queue.retry_or_fail(job, f"internal error: {exc!r}"), repr(exc)
        self.processed += 1
        log.info(
            "job %s doc %s %s in %.0fms (attempt %d/%d)%s",
            job.id,
            job.document_id,
            outcome.value,
            (time.perf_counter() - started) * 1000,
            job.attempts,
            job.max_attempts,
            f": {detail}" if detail else "",
        )
        return True

    def process(self, job: ClaimedJob) -> tuple[Outcome, str]:
        with LeaseKeeper(self.queue, job, interval=self.settings.lease_seconds / 3) as lease:
            try:
                stats = analyze_file(self.storage.path_for(job.storage_key))
            except FileNotFoundError:
                if self.db.get_document(job.document_id) is None:
                    return Outcome.LOST, "document deleted while queued"
                return self.queue.fail(job, "stored file is missing"), "stored file is missing"
            if stats.sha256 != job.sha256 or stats.size != job.size:
                error = (
                    f"integrity check failed: stored file has sha256 {stats.sha256} and "
                    f"{stats.size} bytes, upload had {job.sha256} and {job.size} bytes"
                )
                return self.queue.fail(job, error), error
            enrichment, enrichment_error = self.enrich(stats.excerpt)
            if lease.lost.is_set():
                return Outcome.LOST, "lease lost during processing"
        result: dict[str, Any] = {
            **stats.as_dict(),
            "enrichment": enrichment if enrichment is not None else "unavailable",
            "degraded": enrichment is None,
            "worker": self.settings.worker_id,
            "attempts": job.attempts,
            "processed_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        }
        if enrichment_error:
            result["enrichment_error"] = enrichment_error
        outcome = self.queue.complete(job, result)
        if outcome is not Outcome.DONE:
            return outcome, "lease lost before completion"
        if enrichment is None:
            self.degraded += 1
            return outcome, f"degraded, enricher unavailable: {enrichment_error}"
        return outcome, ""

    def enrich(self, text: str) -> tuple[dict[str, Any] | None, str]:
        """The enricher's classification, or (None, why) once its retries are exhausted."""
        single_try = time.monotonic() < self._single_try_until
        tries = 1 if single_try else 1 + self.settings.enricher_retries
        delay = self.settings.enricher_backoff
        error = ""
        for attempt in range(1, tries + 1):
            try:
                enrichment = self.enricher.classify(text)
            except EnricherError as exc:
                error = str(exc)
                if not exc.retryable:
                    break
                if attempt < tries:
                    log.info("enricher call %d/%d failed (%s); retry in %.2fs", attempt, tries, exc, delay)
                    self.stop.wait(delay)
                    delay *= 2
            else:
                self._single_try_until = 0.0
                return enrichment, ""
        self._single_try_until = time.monotonic() + self.settings.enricher_cooldown
        return None, error + (" (single try: the enricher failed recently)" if single_try else "")


def parse_args(argv: Sequence[str] | None = None) -> WorkerSettings:
    env = os.environ
    parser = argparse.ArgumentParser(prog="python -m docservice.worker", description=__doc__)
    parser.add_argument("--db", default=env.get("DOCSERVICE_DB", "data/docservice.db"))
    parser.add_argument(
        "--database-url",
        default=env.get("DOCSERVICE_DATABASE_URL") or None,
        help="postgresql://... to use PostgreSQL instead of the SQLite file --db",
    )
    parser.add_argument("--storage", default=env.get("DOCSERVICE_STORAGE", "data/files"))
    parser.add_argument("--enricher-url", default=env.get("DOCSERVICE_ENRICHER_URL", "http://127.0.0.1:8001"))
    parser.add_argument(
        "--worker-id",
        default=env.get("DOCSERVICE_WORKER_ID", f"{socket.gethostname()}:{os.getpid()}"),
    )
    parser.add_argument(
        "--poll-interval", type=float, default=float(env.get("DOCSERVICE_POLL_INTERVAL", "0.1"))
    )
    parser.add_argument(
        "--lease-seconds",
        "--lease",
        type=float,
        default=float(env.get("DOCSERVICE_LEASE", "30")),
        help="a job whose worker stopped renewing its lease is reclaimed after this",
    )
    parser.add_argument(
        "--backoff-base", type=float, default=float(env.get("DOCSERVICE_BACKOFF_BASE", "0.5"))
    )
    parser.add_argument("--backoff-max", type=float, default=float(env.get("DOCSERVICE_BACKOFF_MAX", "30")))
    parser.add_argument(
        "--enricher-timeout",
        type=float,
        default=float(env.get("DOCSERVICE_ENRICHER_TIMEOUT", "2")),
    )
    parser.add_argument(
        "--enricher-retries", type=int, default=int(env.get("DOCSERVICE_ENRICHER_RETRIES", "2"))
    )
    parser.add_argument(
        "--enricher-cooldown", type=float, default=float(env.get("DOCSERVICE_ENRICHER_COOLDOWN", "10"))
    )
    args = parser.parse_args(argv)
    check_database_url(parser, args.database_url)
    if args.lease_seconds <= 0 or args.enricher_timeout <= 0 or args.enricher_retries < 0:
        parser.error("--lease-seconds and --enricher-timeout must be positive, --enricher-retries >= 0")
    return WorkerSettings(
        db_path=Path(args.db),
        storage_dir=Path(args.storage),
        enricher_url=args.enricher_url,
        worker_id=args.worker_id,
        poll_interval=args.poll_interval,
        lease_seconds=args.lease_seconds,
        backoff_base=args.backoff_base,
        backoff_max=args.backoff_max,
        enricher_timeout=args.enricher_timeout,
        enricher_retries=args.enricher_retries,
        enricher_cooldown=args.enricher_cooldown,
        database_url=args.database_url,
        no_reclaim=env_flag("DOCSERVICE_NO_RECLAIM"),
    )


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_args(argv)
    setup_logging("worker")
    if settings.no_reclaim:
        log.warning("DOCSERVICE_NO_RECLAIM=1: jobs of a crashed worker will never be reclaimed")
    worker = Worker(settings)

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, finishing the job in hand", signal.Signals(signum).name)
        worker.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    worker.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
