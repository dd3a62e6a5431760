"""The processing-job queue on top of the job table: claims with leases, retries, failure.

A worker claims a job and holds a lease on it until `lease_until`. While it works it
renews the lease; if it dies, the lease runs out and any worker may reclaim the job, so
a crashed worker's jobs are never stuck. Every claim counts as an attempt: a job that
fails with a retryable error goes back to the queue after an exponential backoff, and
once it has used `max_attempts` attempts (including attempts lost to crashes) it is
marked failed together with its document. Finishing a job is fenced by the claimant's
id: a worker whose lease was taken over cannot overwrite the new claimant's work.
"""

from __future__ import annotations

__all__ = ["JobQueue", "Outcome", "backoff_delay"]

import logging
import random
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from docservice.db import ClaimedJob, Database

log = logging.getLogger("docservice.jobs")


class Outcome(StrEnum):
    DONE = "done"
    RETRY = "retry"
    FAILED = "failed"
    LOST = "lost"  # the lease was taken over, or the document deleted meanwhile


def backoff_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    jitter: float = 0.0,
    rng: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before attempt `attempt + 1`: base * 2**(attempt-1), capped,
    plus up to `jitter` (a fraction) of random spread so retries do not stampede."""
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    delay = min(cap, base * 2.0 ** (attempt - 1))
    return delay * (1.0 + jitter * rng())


class JobQueue:
    def __init__(
        self,
        db: Database,
        worker_id: str,
        *,
        lease_seconds: float = 30.0,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        jitter: float = 0.1,
        reclaim: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        self.db = db
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.jitter = jitter
        self.reclaim = reclaim  # False only for DOCSERVICE_NO_RECLAIM=1 (broken on purpose)
        self.clock = clock

    def claim(self) -> ClaimedJob | None:
        """The next runnable job, now leased to this worker; None when there is none.

        A reclaimed job that has already used all its attempts (its workers kept dying)
        is failed here rather than run again, and the next job is tried instead.
        """
        while True:
            job = self.db.claim_job(
                self.worker_id, now=self.clock(), lease_seconds=self.lease_seconds, reclaim=self.reclaim
            )
            if job is None:
                return None
            if job.previous_claimant is not None:
                log.warning(
                    "job %s reclaimed from %s (lease expired), attempt %d/%d",
                    job.id,
                    job.previous_claimant,
                    job.attempts,
                    job.max_attempts,
                )
            if job.attempts <= job.max_attempts:
                return job
            self.db.fail_job(
                job.id,
                self.worker_id,
                f"gave up after {job.max_attempts} attempts (lease expired each time)",
                now=self.clock(),
            )
            log.error("job %s failed: attempts exhausted by expired leases", job.id)

    def heartbeat(self, job: ClaimedJob) -> bool:
        """Renew the lease; False means the job is no longer ours and work should stop."""
        return self.db.extend_lease(
            job.id, self.worker_id, now=self.clock(), lease_seconds=self.lease_seconds
        )

    def complete(self, job: ClaimedJob, result: dict[str, Any]) -> Outcome:
        if self.db.complete_job(job.id, self.worker_id, result, now=self.clock()):
            return Outcome.DONE
        return Outcome.LOST

    def fail(self, job: ClaimedJob, error: str) -> Outcome:
        """Give up at once (an error that retrying cannot fix)."""
        if self.db.fail_job(job.id, self.worker_id, error, now=self.clock()):
            return Outcome.FAILED
        return Outcome.LOST

    def retry_or_fail(self, job: ClaimedJob, error: str) -> Outcome:
        """After a retryable error: back to the queue with backoff, or failed when the
        job has no attempts left."""
        if job.attempts >= job.max_attempts:
            return self.fail(job, f"gave up after {job.attempts} attempts: {error}")
        now = self.clock()
        delay = backoff_delay(job.attempts, base=self.backoff_base, cap=self.backoff_max, jitter=self.jitter)
        if self.db.retry_job(job.id, self.worker_id, error, available_at=now + delay, now=now):
            log.info(
                "job %s attempt %d/%d failed (%s); retry in %.2fs",
                job.id,
                job.attempts,
                job.max_attempts,
                error,
                delay,
            )
            return Outcome.RETRY
        return Outcome.LOST

    def release(self, job: ClaimedJob) -> bool:
        """Give the job back unprocessed, e.g. when shutting down mid-job."""
        return self.db.release_job(job.id, self.worker_id, now=self.clock())
