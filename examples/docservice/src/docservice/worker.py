"""The document worker: claims jobs from the job table and processes documents.

    python -m docservice.worker --db PATH --storage DIR --enricher-url URL

For each job: stream the stored file once (size, SHA-256, line/word counts, excerpt),
check it against the checksum recorded at upload, ask the enricher to classify the
excerpt, store the result and mark the document processed. Enricher errors (connection
refused, timeouts, 5xx, 429) are retried with exponential backoff through the queue; a
document is marked failed after the job's last attempt. SIGTERM/SIGINT: the job in hand
is finished, then the process exits 0.
"""

from __future__ import annotations

__all__ = ["EnricherClient", "EnricherError", "Worker", "main"]

import argparse
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

from docservice.config import WorkerSettings, setup_logging
from docservice.db import ClaimedJob, Database
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

    def __init__(self, base_url: str, *, timeout: float = 5.0) -> None:
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
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise EnricherError(f"enricher unreachable: {reason}", retryable=True) from exc
        except ValueError as exc:
            raise EnricherError(f"enricher answered invalid JSON: {exc}", retryable=True) from exc
        if not isinstance(body, dict):
            raise EnricherError("enricher answered a non-object", retryable=True)
        return body


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
        self.db = db or Database(settings.db_path)
        self.storage = Storage(settings.storage_dir)
        self.queue = JobQueue(
            self.db,
            settings.worker_id,
            lease_seconds=settings.lease_seconds,
            backoff_base=settings.backoff_base,
            backoff_max=settings.backoff_max,
        )
        self.enricher = enricher or EnricherClient(settings.enricher_url, timeout=settings.enricher_timeout)
        self.stop = stop or threading.Event()
        self.processed = 0

    def run(self) -> None:
        """Process jobs until `stop` is set; the job in hand is always finished first."""
        self.db.initialize()
        self.storage.initialize()
        log.info(
            "worker %s started (db=%s, enricher=%s, poll=%ss, lease=%ss)",
            self.settings.worker_id,
            self.settings.db_path,
            self.settings.enricher_url,
            self.settings.poll_interval,
            self.settings.lease_seconds,
        )
        while not self.stop.is_set():
            if not self.run_once():
                self.stop.wait(self.settings.poll_interval)
        log.info("worker %s stopped after %d jobs", self.settings.worker_id, self.processed)

    def run_once(self) -> bool:
        """Claim and process one job; False when there was none (or the queue failed)."""
        try:
            job = self.queue.claim()
        except Exception:  # a locked or unreachable database must not kill the worker
            log.exception("could not claim a job")
            return False
        if job is None:
            return False
        started = time.perf_counter()
        try:
            outcome, detail = self.process(job)
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
        if not self.queue.heartbeat(job):
            return Outcome.LOST, "lease lost before enrichment"
        try:
            enrichment = self.enricher.classify(stats.excerpt)
        except EnricherError as exc:
            if exc.retryable:
                return self.queue.retry_or_fail(job, str(exc)), str(exc)
            return self.queue.fail(job, str(exc)), str(exc)
        result: dict[str, Any] = {
            **stats.as_dict(),
            "enrichment": enrichment,
            "worker": self.settings.worker_id,
            "attempts": job.attempts,
            "processed_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        }
        outcome = self.queue.complete(job, result)
        return outcome, "" if outcome is Outcome.DONE else "lease lost before completion"


def parse_args(argv: Sequence[str] | None = None) -> WorkerSettings:
    env = os.environ
    parser = argparse.ArgumentParser(prog="python -m docservice.worker", description=__doc__)
    parser.add_argument("--db", default=env.get("DOCSERVICE_DB", "data/docservice.db"))
    parser.add_argument("--storage", default=env.get("DOCSERVICE_STORAGE", "data/files"))
    parser.add_argument("--enricher-url", default=env.get("DOCSERVICE_ENRICHER_URL", "http://127.0.0.1:8001"))
    parser.add_argument(
        "--worker-id",
        default=env.get("DOCSERVICE_WORKER_ID", f"{socket.gethostname()}:{os.getpid()}"),
    )
    parser.add_argument(
        "--poll-interval", type=float, default=float(env.get("DOCSERVICE_POLL_INTERVAL", "0.1"))
    )
    parser.add_argument("--lease", type=float, default=float(env.get("DOCSERVICE_LEASE", "30")))
    parser.add_argument(
        "--backoff-base", type=float, default=float(env.get("DOCSERVICE_BACKOFF_BASE", "0.5"))
    )
    parser.add_argument("--backoff-max", type=float, default=float(env.get("DOCSERVICE_BACKOFF_MAX", "30")))
    parser.add_argument(
        "--enricher-timeout",
        type=float,
        default=float(env.get("DOCSERVICE_ENRICHER_TIMEOUT", "5")),
    )
    args = parser.parse_args(argv)
    return WorkerSettings(
        db_path=Path(args.db),
        storage_dir=Path(args.storage),
        enricher_url=args.enricher_url,
        worker_id=args.worker_id,
        poll_interval=args.poll_interval,
        lease_seconds=args.lease,
        backoff_base=args.backoff_base,
        backoff_max=args.backoff_max,
        enricher_timeout=args.enricher_timeout,
    )


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_args(argv)
    setup_logging("worker")
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
