"""What the API tells its operators: Prometheus metrics (`GET /metrics`) and the state of its
dependencies (`GET /health`).

Metrics come from `prometheus_client` on a registry of the app's own (so several apps in one
test process do not collide): the process's own gauges (`process_resident_memory_bytes`,
`process_open_fds`, ...), HTTP requests by route and status, 5xx answers, failed calls to a
dependency, whether each dependency answered its last health check, and the document and job
queues read from the database at scrape time. While the database is gone `/metrics` still
answers, without the queue gauges and with `docservice_dependency_up{dependency="database"} 0`.

`/health` asks the database every time (it is the API's hard dependency: without it nothing
works, so the API answers 503) and the enricher at most once a second (a soft one: the API
degrades without it, so the answer stays 200 with `status: degraded`; see `HealthReport`).
"""

from __future__ import annotations

__all__ = ["ApiMetrics", "DependencyProbe", "HealthReport"]

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from docservice.db import Database, DatabaseFull, DatabaseUnavailable

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DEPENDENCIES = ("database", "enricher")


class QueueCollector(Collector):
    """Documents and jobs by status and the oldest queued job's age, read at scrape time."""

    def __init__(self, db: Database, up: Gauge) -> None:
        self.db = db
        self.up = up

    def collect(self) -> Iterator[Metric]:
        try:
            documents = self.db.count_documents_by_status()
            jobs = self.db.count_jobs_by_status()
            oldest = self.db.oldest_queued_age(time.time())
        except (DatabaseUnavailable, DatabaseFull):
            self.up.labels("database").set(0)
            return
        by_document = GaugeMetricFamily("docservice_documents", "documents by status", labels=["status"])
        for state, count in sorted(documents.items()):
            by_document.add_metric([state], count)
        by_job = GaugeMetricFamily("docservice_jobs", "jobs by status", labels=["status"])
        for state, count in sorted(jobs.items()):
            by_job.add_metric([state], count)
        yield by_document
        yield by_job
        yield GaugeMetricFamily(
            "docservice_jobs_oldest_queued_seconds", "how long the oldest due job has waited", value=oldest
        )


class ApiMetrics:
    """The API's Prometheus registry and the instruments the routes and middleware update."""

    def __init__(self, db: Database) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.requests = Counter(
            "docservice_http_requests",
            "HTTP requests answered, by route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.errors = Counter(
            "docservice_http_errors",
            "HTTP requests answered with a 5xx status",
            ["method", "route"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "docservice_http_request_duration_seconds",
            "time to answer a request, by route template",
            ["method", "route"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.dependency_errors = Counter(
            "docservice_dependency_errors",
            "calls to a dependency that failed (unreachable, timed out, refused)",
            ["dependency"],
            registry=self.registry,
        )
        self.dependency_up = Gauge(
            "docservice_dependency_up",
            "1 when the dependency answered the API's last call or health check, else 0",
            ["dependency"],
            registry=self.registry,
        )
        for dependency in DEPENDENCIES:  # present (0) from the start, so a rate has a baseline
            self.dependency_errors.labels(dependency)
            self.dependency_up.labels(dependency).set(1)
        self.registry.register(QueueCollector(db, self.dependency_up))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.duration.labels(method, route).observe(seconds)
        if status >= 500:
            self.errors.labels(method, route).inc()

    def dependency_failed(self, dependency: str) -> None:
        self.dependency_errors.labels(dependency).inc()
        self.dependency_up.labels(dependency).set(0)

    def dependency_answered(self, dependency: str) -> None:
        self.dependency_up.labels(dependency).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)


@dataclass(frozen=True)
class HealthReport:
    """`GET /health`: `status` ok (everything answers), degraded (the enricher does not: the
    API still serves, summaries fall back) or error (the database does not: 503)."""

    database: str  # "ok" or "error: <why>"
    enricher: str

    @property
    def status(self) -> str:
        if self.database != "ok":
            return "error"
        return "ok" if self.enricher == "ok" else "degraded"

    @property
    def status_code(self) -> int:
        return 503 if self.status == "error" else 200

    def as_json(self) -> dict[str, str]:
        return {"status": self.status, "db": self.database, "enricher": self.enricher}


class DependencyProbe:
    """A dependency's health, asked at most once per `max_age` seconds whatever the rate of
    health checks (a probe every 100 ms must not become 10 calls a second to the dependency);
    callers arriving while a probe is under way wait for it instead of sending their own."""

    def __init__(self, probe: Callable[[], Awaitable[None]], *, max_age: float = 1.0) -> None:
        self.probe = probe
        self.max_age = max_age
        self._checked_at = -float("inf")
        self._state = "not checked"
        self._lock = asyncio.Lock()

    async def state(self) -> str:
        """`ok`, or `error: <why>`."""
        async with self._lock:
            if time.monotonic() - self._checked_at >= self.max_age:
                try:
                    await self.probe()
                    self._state = "ok"
                except Exception as exc:
                    self._state = f"error: {type(exc).__name__}: {exc}".rstrip(": ")
                self._checked_at = time.monotonic()
            return self._state
