"""What every run records of every service, whatever its checks: `service.<s>.…`.

Once the system has stopped: exits nobody asked for (a crash healed by a restart policy
included), restarts, error lines and tracebacks in its log, how it stopped (time from the stop
signal to its exit, SIGKILL needed or not, requests in flight answered or not), and the trend of
each resource sampled since its last start (`gonogo.system.resource_trends`), with the gauges of
its Prometheus endpoint when the plan names one.
"""

from __future__ import annotations

__all__ = ["record_service_metrics"]

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from gonogo.evidence import MetricRecord
from gonogo.plan.model import Service
from gonogo.plan.names import SERVICE_PREFIX
from gonogo.run.context import RunContext
from gonogo.system import System
from gonogo.system.process import describe_exit
from gonogo.system.resource_trends import RESOURCES, SeriesTrend, resource_limit, series_trend
from gonogo.system.system import ServiceEvent
from gonogo.units import Unit, format_value

_TRACEBACK = re.compile(
    r"Traceback \(most recent call last\)|^panic: |^Exception in thread |^\s+at [\w$.]+\("
)
_MAX_LINES_KEPT = 500  # error lines kept as evidence per service; all are counted


def record_service_metrics(run: RunContext, system: System) -> None:
    """Record the run-level metrics of every service `system` started (after `system.stop()`)."""
    shutdowns = system.shutdowns()
    fd_limits = system.fd_limits()
    logs = system.log_files()
    for name, service in run.plan.system.services.items():
        try:
            history = system.history(name)
        except KeyError:
            continue  # never started: the run says why
        recorder = _ServiceRecorder(run, name)
        recorder.exits(history)
        if name in logs and logs[name].exists():
            recorder.log(logs[name], service)
        if name in shutdowns:
            shutdown = shutdowns[name]
            source = f"{name}: {shutdown.message}"
            recorder.metric("shutdown.seconds", shutdown.seconds, "seconds", "operations", source)
            recorder.metric("shutdown.clean", float(shutdown.clean), "count", "operations", source)
            if shutdown.exit_code is not None:
                recorder.metric("shutdown.exit_code", shutdown.exit_code, "number", "operations", source)
            if shutdown.in_flight is not None:
                detail = f"{name}: {shutdown.in_flight.detail}"
                recorder.metric(
                    "shutdown.in_flight", shutdown.in_flight.in_flight, "count", "operations", detail
                )
                recorder.metric(
                    "shutdown.in_flight_lost", shutdown.in_flight.lost, "count", "operations", detail
                )
        recorder.trends(history, service, fd_limits.get(name))
        if service.metrics is not None:
            errors = run.scrape_errors.get(name, 0)
            source = f"failed reads of {run.expand(service.metrics)}"
            recorder.metric("metrics.scrape_errors", errors, "count", "reliability", source)


class _ServiceRecorder:
    def __init__(self, run: RunContext, service: str) -> None:
        self._run = run
        self._service = service

    def metric(
        self,
        name: str,
        value: float,
        unit: Unit,
        dimension: str,
        source: str,
        *,
        artifact: str | None = None,
    ) -> None:
        self._run.store.add_metric(
            self._run.run_id,
            MetricRecord(
                check=SERVICE_PREFIX,
                name=f"{self._service}.{name}",
                value=float(value),
                unit=unit,
                dimension=dimension,
                source=source,
                recorded_at=datetime.now(UTC),
                artifact_sha256=artifact,
                labels={"service": self._service},
            ),
        )

    def exits(self, history: list[ServiceEvent]) -> None:
        exits = [event for event in history if event.kind == "exited"]
        unplanned = [event for event in exits if not event.planned]
        told = [
            f"{event.at:%H:%M:%S} pid {event.pid}: "
            + (describe_exit(event.exit_code) if event.exit_code is not None else event.detail or "exited")
            for event in unplanned
        ]
        source = f"{self._service}: " + ("; ".join(told[:5]) if told else "no exit nobody asked for")
        if len(told) > 5:
            source += f"; and {len(told) - 5} more (events)"
        self.metric("exits.unplanned", len(unplanned), "count", "reliability", source)
        planned = sum(1 for event in exits if event.planned)
        self.metric(
            "exits.planned", planned, "count", "reliability", f"{self._service}: exits caused by faults"
        )
        restarts = sum(1 for event in history if event.kind == "restarting")
        self.metric(
            "restarts", restarts, "count", "reliability", f"{self._service}: restarts by its restart policy"
        )

    def log(self, path: Path, service: Service) -> None:
        patterns = [re.compile(pattern) for pattern in service.log_errors]
        errors = tracebacks = 0
        kept: list[str] = []
        for number, line in _lines(path):
            if _TRACEBACK.search(line):
                tracebacks += 1
            if any(pattern.search(line) for pattern in patterns):
                errors += 1
                if len(kept) < _MAX_LINES_KEPT:
                    kept.append(f"{number}: {line}")
        artifact = None
        if kept:
            stored = self._run.store.add_artifact(
                self._run.run_id,
                ("\n".join(kept) + "\n").encode(),
                name=f"{self._service}-log-errors.txt",
                media_type="text/plain",
            )
            artifact = stored.sha256
        source = f"{self._service}.log: lines matching log_errors" + (
            f" (first: {kept[0][:160]})" if kept else ""
        )
        self.metric("log.errors", errors, "count", "reliability", source, artifact=artifact)
        self.metric(
            "log.tracebacks",
            tracebacks,
            "count",
            "reliability",
            f"{self._service}.log: tracebacks",
            artifact=artifact,
        )

    def trends(self, history: list[ServiceEvent], service: Service, fd_limit: int | None) -> None:
        started = [event.at for event in history if event.kind == "started"]
        if not started:
            return
        since = started[-1]  # a restart begins a new process: its memory starts again
        whole_run = {
            resource: points
            for (name, resource), points in self._run.resource_samples(
                datetime.min.replace(tzinfo=UTC)
            ).items()
            if name == self._service
        }
        series = {
            resource: [(at, v) for at, v in points if at >= since] for resource, points in whole_run.items()
        }
        settings = self._run.plan.system.trends
        summaries: dict[str, object] = {"since": since.isoformat(), "settings": settings.model_dump()}
        for resource, points in sorted(series.items()):
            if resource in RESOURCES:
                unit = RESOURCES[resource]
                limit = resource_limit(resource, service.limits)
                if resource == "fds" and limit is None and fd_limit is not None:
                    limit = float(fd_limit)
            elif resource.startswith("metrics."):
                unit, limit = "number", None
            else:
                continue
            fitted = series_trend(resource, points, since=since, settings=settings, unit=unit, limit=limit)
            summaries[resource] = {
                "summary": fitted.summary,
                "points": [[at.isoformat(), value] for at, value in points],
            }
            self._record_trend(resource, fitted, unit, limit, whole_run[resource])
        self._run.store.add_artifact(
            self._run.run_id,
            json.dumps(summaries, indent=1).encode(),
            name=f"{self._service}-trends.json",
            media_type="application/json",
        )

    def _record_trend(
        self,
        resource: str,
        fitted: SeriesTrend,
        unit: Unit,
        limit: float | None,
        everything: list[tuple[datetime, float]],
    ) -> None:
        source = f"{self._service}: {fitted.summary} ({self._service}-trends.json)"
        for figure in fitted.figures:
            self.metric(f"{resource}.{figure.name}", figure.value, figure.unit, "reliability", source)
        if fitted.trend is None:
            # Too short a run to fit a trend: no leak can be claimed, and none is flagged.
            self.metric(f"{resource}.leak", 0, "count", "reliability", source)
            if limit is not None:
                self.metric(f"{resource}.limit", limit, unit, "reliability", source)
                # Past the limit or not is still known: from the highest value seen in the whole run.
                highest = max((value for _, value in everything), default=None)
                if highest is not None:
                    told = (
                        f"{self._service}: {resource} at most {format_value(highest, unit)} in the run, "
                        f"limit {format_value(limit, unit)}"
                    )
                    self.metric(
                        f"{resource}.within_limit", float(highest < limit), "count", "reliability", told
                    )


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open("rb") as log:
        for number, raw in enumerate(log, start=1):
            yield number, raw.decode("utf-8", "replace").rstrip("\r\n")
