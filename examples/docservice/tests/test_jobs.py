"""The job queue: claiming with leases, reclaiming after a crash, retries and backoff."""

from __future__ import annotations

import threading

import pytest

from conftest import FakeClock, add_document
from docservice.db import Database
from docservice.jobs import JobQueue, Outcome, backoff_delay
from docservice.storage import Storage


def queue(db: Database, clock: FakeClock, worker: str = "w1", **kwargs: float) -> JobQueue:
    options = {"lease_seconds": 10.0, "backoff_base": 1.0, "backoff_max": 8.0, "jitter": 0.0}
    options.update(kwargs)
    return JobQueue(db, worker, clock=clock, **options)


def test_backoff_doubles_and_is_capped() -> None:
    delays = [backoff_delay(n, base=0.5, cap=3.0) for n in range(1, 6)]
    assert delays == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert backoff_delay(1, base=1.0, cap=10.0, jitter=0.5, rng=lambda: 1.0) == 1.5
    with pytest.raises(ValueError):
        backoff_delay(0, base=1.0, cap=1.0)


def test_lease_must_be_positive(db: Database) -> None:
    with pytest.raises(ValueError):
        JobQueue(db, "w", lease_seconds=0)


def test_claims_oldest_first_and_each_job_once(db: Database, storage: Storage, clock: FakeClock) -> None:
    first = add_document(db, storage, b"1", now=clock.now - 2)
    second = add_document(db, storage, b"2", now=clock.now - 1)
    q = queue(db, clock)
    job_a, job_b = q.claim(), q.claim()
    assert job_a is not None and job_b is not None
    assert (job_a.document_id, job_b.document_id) == (first, second)
    assert q.claim() is None
    doc = db.get_document(first)
    assert doc is not None and doc.status == "processing" and doc.attempts == 1


def test_an_expired_lease_is_reclaimed_by_another_worker(
    db: Database, storage: Storage, clock: FakeClock
) -> None:
    add_document(db, storage, b"x", now=clock.now)
    crashed, survivor = queue(db, clock, "crashed"), queue(db, clock, "survivor")
    job = crashed.claim()
    assert job is not None
    clock.advance(9)
    assert survivor.claim() is None  # lease still valid
    clock.advance(2)
    taken = survivor.claim()
    assert taken is not None and taken.id == job.id
    assert taken.previous_claimant == "crashed" and taken.attempts == 2
    # the crashed worker comes back: its late result must not win
    assert crashed.complete(job, {"late": True}) is Outcome.LOST
    assert crashed.heartbeat(job) is False
    assert survivor.complete(taken, {"ok": True}) is Outcome.DONE
    doc = db.get_document(job.document_id)
    assert doc is not None and doc.result == {"ok": True}


def test_heartbeat_keeps_the_lease(db: Database, storage: Storage, clock: FakeClock) -> None:
    add_document(db, storage, b"x", now=clock.now)
    q, other = queue(db, clock), queue(db, clock, "other")
    job = q.claim()
    assert job is not None
    clock.advance(8)
    assert q.heartbeat(job)
    clock.advance(8)  # past the first lease, within the renewed one
    assert other.claim() is None


def test_retry_backs_off_then_fails_after_max_attempts(
    db: Database, storage: Storage, clock: FakeClock
) -> None:
    doc_id = add_document(db, storage, b"x", max_attempts=3, now=clock.now)
    q = queue(db, clock)
    expected_delays = [1.0, 2.0]
    for attempt, delay in enumerate(expected_delays, start=1):
        job = q.claim()
        assert job is not None and job.attempts == attempt
        assert q.retry_or_fail(job, "enricher answered 503") is Outcome.RETRY
        doc = db.get_document(doc_id)
        assert doc is not None and doc.status == "pending" and doc.error == "enricher answered 503"
        clock.advance(delay - 0.01)
        assert q.claim() is None  # still backing off
        clock.advance(0.02)
    job = q.claim()
    assert job is not None and job.attempts == 3
    assert q.retry_or_fail(job, "enricher answered 503") is Outcome.FAILED
    doc = db.get_document(doc_id)
    assert doc is not None and doc.status == "failed"
    assert doc.error == "gave up after 3 attempts: enricher answered 503"
    clock.advance(100)
    assert q.claim() is None


def test_jobs_whose_workers_keep_dying_are_failed(db: Database, storage: Storage, clock: FakeClock) -> None:
    doomed = add_document(db, storage, b"x", max_attempts=2, now=clock.now)
    later = add_document(db, storage, b"y", max_attempts=2, now=clock.now + 15)
    q = queue(db, clock)
    for attempt in (1, 2):  # each claimant "crashes": its lease simply runs out
        job = q.claim()
        assert job is not None and job.document_id == doomed and job.attempts == attempt
        clock.advance(11)
    # the third claim finds doomed out of attempts: it is failed, and the next job is taken
    job = q.claim()
    assert job is not None and job.document_id == later
    doc = db.get_document(doomed)
    assert doc is not None and doc.status == "failed" and "lease expired" in (doc.error or "")


def test_fail_and_release(db: Database, storage: Storage, clock: FakeClock) -> None:
    doc_id = add_document(db, storage, b"x", now=clock.now)
    q = queue(db, clock)
    job = q.claim()
    assert job is not None
    assert q.release(job)
    doc = db.get_document(doc_id)
    assert doc is not None and doc.status == "pending" and doc.attempts == 0
    job = q.claim()
    assert job is not None and job.attempts == 1
    assert q.fail(job, "unfixable") is Outcome.FAILED
    assert q.fail(job, "again") is Outcome.LOST
    assert q.retry_or_fail(job, "again") is Outcome.LOST


def test_concurrent_workers_never_share_a_job(db: Database, storage: Storage) -> None:
    for i in range(30):
        add_document(db, storage, str(i).encode())
    claimed: dict[str, list[int]] = {}
    errors: list[BaseException] = []

    def work(name: str) -> None:
        q = JobQueue(db, name, lease_seconds=60)
        mine = claimed.setdefault(name, [])
        try:
            while (job := q.claim()) is not None:
                mine.append(job.id)
                assert q.complete(job, {}) is Outcome.DONE
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    all_ids = [job_id for ids in claimed.values() for job_id in ids]
    assert len(all_ids) == 30 and len(set(all_ids)) == 30
    assert db.count_documents_by_status() == {"processed": 30}
