"""The `operation` check kind: the plan's deploy, rollback, backup and restore, exercised under load.

1. *before* — the background load starts (and the watcher, see `watch`); for `before` seconds
   no request may fail, or no operation runs: failures that were there already would be
   blamed on the first switch.
2. *operations* — in rounds: round 1 runs every operation once, in the order listed, round 2
   again, and so on, an operation leaving the rounds once run `repeat` times (so a deploy and
   its rollback alternate). Each run: the version endpoint is read, the action runs, the
   check waits `pause`, the version is read again. A run's window, in which failed requests
   and downtime count for it, lasts from its start to that second reading.
3. *restore drill* (`restore_check`, see `restore`) — writes, backup, writes expected lost,
   destroy, restore, every write acknowledged before the backup read back.

Figures are in docs/metrics.md; every run's moments, versions, outputs and failures are in the
`<check>-operations.json` artifact, the drill's in `<check>-restore.json`.
"""

from __future__ import annotations

__all__ = ["OperationCheck"]

import contextlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gonogo.checks.base import CheckContext, CheckKind, CheckOutcome, MetricPatterns, PlanNames, Reference
from gonogo.checks.operation.actions import ActionResult, run_action
from gonogo.checks.operation.restore import RestoreDrill
from gonogo.checks.operation.settings import Operation, OperationSettings
from gonogo.checks.operation.traffic import first_figures
from gonogo.checks.operation.version import VersionReader, version_url
from gonogo.checks.operation.watch import INTERVAL, Watcher
from gonogo.experiment.settings import HttpProbe
from gonogo.experiment.traffic import BackgroundTraffic, start_background_traffic
from gonogo.journey.once import resolve_base_url, run_setup
from gonogo.units import Unit, format_value

DIMENSION = "operations"
_OPERATION_FIGURES = ("runs", "success_rate", "duration.max")
_RESTORE_FIGURES = ("writes", "lost_writes", "verified", "duration")
# How long a restart may take, for the bound on the load (a restart has no timeout of its own).
_RESTART_BOUND = 300.0


class OperationCheck(CheckKind[OperationSettings]):
    kind = "operation"
    Settings = OperationSettings
    series_metrics = frozenset[str]()
    live_metrics = frozenset[str]()  # nothing followed while it runs

    @classmethod
    def metric_names(cls, settings: OperationSettings, plan: PlanNames) -> MetricPatterns:
        names: list[str] = []
        for operation in settings.operations:
            figures = list(_OPERATION_FIGURES)
            figures += ["requests", "failed_requests"] if settings.load is not None else []
            figures += ["downtime"] if watch_probe(settings) is not None else []
            figures += ["version_changed"] if settings.version is not None else []
            names += [f"{operation.name}.{figure}" for figure in figures]
        if settings.restore_check is not None:
            names += [f"restore.{figure}" for figure in _RESTORE_FIGURES]
        return names

    @classmethod
    def default_gates(cls, settings: OperationSettings) -> Mapping[str, str | Mapping[str, object]]:
        gates: dict[str, str | Mapping[str, object]] = {}
        for operation in settings.operations:
            gates[f"{operation.name}.success_rate"] = "== 100%"
            if settings.load is not None:
                gates[f"{operation.name}.failed_requests"] = "== 0"  # zero downtime
            if settings.version is not None and operation.expect_version is not None:
                gates[f"{operation.name}.version_changed"] = "== 100%"
        if settings.restore_check is not None:
            gates["restore.lost_writes"] = "== 0"
            gates["restore.verified"] = "== 1"
        return gates

    @classmethod
    def references(cls, settings: OperationSettings) -> list[Reference]:
        found = [
            Reference("service", operation.restart, ("operations", index, "restart"))
            for index, operation in enumerate(settings.operations)
            if operation.restart is not None
        ]
        drill = settings.restore_check
        if drill is not None:
            for step in ("backup", "destroy", "restore"):
                service = getattr(drill, step).restart
                if service is not None:
                    found.append(Reference("service", service, ("restore_check", step, "restart")))
        return found

    def run(self, settings: OperationSettings, ctx: CheckContext) -> CheckOutcome:
        base_url, problem = resolve_base_url(settings.base_url, ctx)
        needs_base_url = (
            settings.load is not None
            or settings.restore_check is not None
            or (settings.version is not None and not settings.version.url.startswith(("http://", "https://")))
        )
        if problem and needs_base_url:
            return CheckOutcome("error", problem)
        return _Session(settings, ctx, base_url).run()


def watch_probe(settings: OperationSettings) -> HttpProbe | None:
    """What the watcher asks for during the switches: the version endpoint, else the load's
    first GET request (a 4xx/5xx or no answer is a failure, as for the load); None: neither."""
    if settings.version is not None:
        version = settings.version
        return HttpProbe.model_validate({"name": "watch", "http": version.url, "timeout": version.timeout})
    load = settings.load
    request = next((r for r in load.requests if r.method == "GET"), None) if load is not None else None
    if load is None or request is None:
        return None
    statuses = request.expect.status if request.expect is not None else None
    return HttpProbe.model_validate(
        {
            "name": "watch",
            "http": request.target(),
            "headers": request.headers,
            "status": list(statuses) if statuses else list(range(200, 400)),
            "timeout": load.request_timeout,
        }
    )


@dataclass
class _Run:
    """One run of one operation, and what users saw meanwhile."""

    operation: Operation
    number: int
    action: ActionResult
    window_end: float  # time.monotonic(): after the pause and the second version reading
    window_end_at: datetime
    version_before: tuple[str | None, str] = (None, "")
    version_after: tuple[str | None, str] = (None, "")
    requests: int | None = None
    failed_requests: int | None = None
    downtime: float | None = None
    watcher_failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def version_changed(self) -> bool:
        before, after = self.version_before[0], self.version_after[0]
        expected = self.operation.expect_version
        return after is not None and after != before and (expected is None or after == expected)

    def evidence(self) -> dict[str, Any]:
        return {
            "operation": self.operation.name,
            "run": self.number,
            **self.action.evidence(),
            "window": [self.action.started_at.isoformat(), self.window_end_at.isoformat()],
            "version_before": self.version_before[0] or None,
            "version_after": self.version_after[0] or None,
            "version_problems": [why for _, why in (self.version_before, self.version_after) if why],
            "requests": self.requests,
            "failed_requests": self.failed_requests,
            "downtime": self.downtime,
            "watcher_failures": self.watcher_failures,
        }


class _Session:
    def __init__(self, settings: OperationSettings, ctx: CheckContext, base_url: str | None) -> None:
        self.settings = settings
        self.ctx = ctx
        self.base_url = base_url
        self.variables: dict[str, Any] = {}
        self.messages: list[str] = []
        self.details: list[str] = []

    def run(self) -> CheckOutcome:
        load = self.settings.load
        if load is not None and load.setup is not None:
            assert self.base_url is not None
            self.variables, problem = run_setup(load.setup, load.request_timeout, self.base_url, self.ctx)
            if problem:
                return CheckOutcome("error", problem)
        if self.settings.operations:
            problem = self._operations()
            if problem:
                return CheckOutcome("error", problem, self.details)
        drill = self.settings.restore_check
        if drill is not None:
            journeys = self.settings.integrity_journeys
            assert journeys is not None and self.base_url is not None
            outcome = RestoreDrill(
                drill, journeys, self.ctx, self.base_url, self.variables, self._traffic
            ).run()
            self.messages.append(outcome.message)
            self.details += outcome.details
            if outcome.problem:
                return CheckOutcome("error", outcome.problem, self.details)
        return CheckOutcome("completed", "; ".join(self.messages), self.details)

    # -- the operations ---------------------------------------------------------------

    def _traffic(self, seconds: float) -> BackgroundTraffic | str | None:
        """The background load, if the plan has one, bounded to `seconds`; or why it cannot run."""
        if self.settings.load is None:
            return None
        assert self.base_url is not None
        return start_background_traffic(self.settings.load, self.base_url, self.variables, self.ctx, seconds)

    def _bound(self) -> float:
        """The longest the operations can take: the bound on the background load."""
        s = self.settings
        reading = 2 * s.version.timeout if s.version is not None else 0.0
        per_run = [
            (o.timeout if o.command is not None else 0)
            + (_RESTART_BOUND if o.restart else 0)
            + o.pause
            + reading
            for o in s.operations
        ]
        return (
            s.before + sum(seconds * o.repeat for seconds, o in zip(per_run, s.operations, strict=True)) + 30
        )

    def _operations(self) -> str | None:
        """Run every operation under load; record its figures. Why the check cannot go on, if so."""
        traffic = self._traffic(self._bound())
        if isinstance(traffic, str):
            return traffic
        probe = watch_probe(self.settings)
        watcher = None
        if probe is not None:
            watcher = Watcher(
                probe,
                base_url=self.base_url,
                cwd=self.ctx.plan_dir,
                expand=self.ctx.expand,
                variables=self.variables,
            )
            watcher.start()
        reader = self._version_reader()
        runs: list[_Run] = []
        interrupted: BaseException | None = None
        try:
            steady = self._steady(traffic, watcher)
            if steady is not None:
                return steady
            rounds = max(operation.repeat for operation in self.settings.operations)
            for number in range(1, rounds + 1):
                for operation in self.settings.operations:
                    if number <= operation.repeat:
                        runs.append(self._run_once(operation, number, reader, watcher))
        except BaseException as interrupt:  # Ctrl-C, the check's time limit: keep the runs done
            interrupted = interrupt
        finally:
            if watcher is not None:
                watcher.stop()
            if reader is not None:
                reader.close()
            self._stop(traffic)
        if interrupted is not None:
            with contextlib.suppress(Exception):
                self._measure(runs, traffic, watcher)
                self._record(runs, traffic, watcher)
            raise interrupted
        self._measure(runs, traffic, watcher)
        self._record(runs, traffic, watcher)
        return None

    def _stop(self, traffic: BackgroundTraffic | None) -> None:
        if traffic is None:
            return
        try:
            traffic.stop()
        except RuntimeError as error:  # its figures are not measured: their gates say so
            self.details.append(str(error))

    def _version_reader(self) -> VersionReader | None:
        endpoint = self.settings.version
        if endpoint is None:
            return None
        url = version_url(endpoint, self.base_url, self.ctx.expand)
        assert url is not None  # a path needs the base URL, checked in run
        return VersionReader(endpoint, url)

    def _steady(self, traffic: BackgroundTraffic | None, watcher: Watcher | None) -> str | None:
        """Watch the load for `before`: why the system is not steady, or None."""
        if traffic is None and watcher is None:
            return None  # nothing to watch
        seconds = self.settings.before
        self.ctx.progress(f"before: load for {format_value(seconds, 'seconds')}, no failure expected")
        start = time.monotonic()
        time.sleep(seconds)
        # Judged from the load's start: it began just before, and must not have failed since.
        last = first_figures(traffic) if traffic is not None else None
        problems = []
        if last is not None and (failed := last.errors + last.dropped):
            problems.append(f"{failed} of {last.requests} requests of the load failed")
        if watcher is not None and (failures := watcher.failures(start, time.monotonic())):
            problems.append(f"{len(failures)} of the watcher's requests failed ({failures[0].detail})")
        if traffic is not None and last is None:
            problems.append("the load reported no figures")
        if not problems:
            return None
        return (
            f"the system was not steady before any operation ({'; '.join(problems)}), so none ran: "
            "its failures would have been blamed on the first one"
        )

    def _run_once(
        self, operation: Operation, number: int, reader: VersionReader | None, watcher: Watcher | None
    ) -> _Run:
        label = f"{operation.name} {number}/{operation.repeat}"
        before = reader.read() if reader is not None else (None, "")
        self.ctx.progress(f"{label}: running")
        action = run_action(operation, self.ctx, name=f"{self.ctx.check_name}-{operation.name}-{number}")
        self.ctx.progress(f"{label}: {action.detail}; settling {format_value(operation.pause, 'seconds')}")
        time.sleep(operation.pause)
        after = reader.read() if reader is not None else (None, "")
        run = _Run(operation, number, action, time.monotonic(), datetime.now(UTC), before, after)
        said = [action.detail]
        if reader is not None:
            said.append(f"version {before[0] or '?'} → {after[0] or '?'}")
        if watcher is not None:
            said.append(
                f"downtime {format_value(watcher.downtime(action.started, run.window_end), 'seconds')}"
            )
        self.ctx.progress(f"{label}: " + ", ".join(said))
        return run

    def _measure(self, runs: list[_Run], traffic: BackgroundTraffic | None, watcher: Watcher | None) -> None:
        """Each run's requests and failures (the load) and downtime (the watcher), in its window."""
        for run in runs:
            start, end = run.action.started, run.window_end
            if traffic is not None and traffic.result is not None:
                figures = traffic.window(start, end)
                run.requests, run.failed_requests = figures.attempted, figures.errors
            if watcher is not None:
                run.downtime = watcher.downtime(start, end)
                run.watcher_failures = [
                    {"after": round(s.at - start, 3), "why": s.detail}
                    for s in watcher.failures(start, end)[:20]
                ]

    # -- figures ----------------------------------------------------------------------

    def _record(self, runs: list[_Run], traffic: BackgroundTraffic | None, watcher: Watcher | None) -> None:
        timeline = {
            "rounds": "round n runs every operation with repeat >= n once, in the order listed",
            "watcher": ({"target": watcher.target, "interval": INTERVAL} if watcher is not None else None),
            "runs": [run.evidence() for run in runs],
        }
        name = f"{self.ctx.check_name}-operations.json"
        artifact = self.ctx.store_artifact(
            json.dumps(timeline, indent=2, default=str).encode(), name=name, media_type="application/json"
        )

        def metric(metric_name: str, value: float, unit: Unit, source: str) -> None:
            self.ctx.record_metric(
                metric_name, value, unit, dimension=DIMENSION, source=f"{source} ({name})", artifact=artifact
            )

        for operation in self.settings.operations:
            own = [run for run in runs if run.operation is operation]
            if not own:
                continue
            op = operation.name
            ok = sum(1 for run in own if run.action.ok)
            what = _describe(operation)
            metric(f"{op}.runs", len(own), "count", f"runs of {what}")
            metric(f"{op}.success_rate", ok / len(own), "ratio", f"runs of {what} that succeeded")
            metric(
                f"{op}.duration.max",
                max(r.action.duration for r in own),
                "seconds",
                f"the longest run of {what}",
            )
            failed = [r.failed_requests for r in own if r.failed_requests is not None]
            requests = [r.requests for r in own if r.requests is not None]
            if traffic is not None and len(failed) == len(own):
                where = "background load, from each run's start to the end of its pause"
                metric(f"{op}.requests", sum(requests), "count", where)
                metric(f"{op}.failed_requests", sum(failed), "count", where)
            if watcher is not None:
                longest = max(r.downtime or 0.0 for r in own)
                every = format_value(INTERVAL, "seconds")
                source = f"longest failing stretch of {watcher.target}, asked every {every}"
                metric(f"{op}.downtime", longest, "seconds", source)
            if self.settings.version is not None:
                changed = sum(1 for run in own if run.version_changed)
                source = f"version endpoint {self.settings.version.url} before and after each run"
                metric(f"{op}.version_changed", changed / len(own), "ratio", source)
            self._summarise(operation, own)

    def _summarise(self, operation: Operation, runs: list[_Run]) -> None:
        ok = sum(1 for run in runs if run.action.ok)
        parts = [f"{operation.name}: {ok}/{len(runs)} succeeded"]
        if all(r.failed_requests is not None for r in runs) and self.settings.load is not None:
            failed = sum(r.failed_requests or 0 for r in runs)
            parts.append(f"{failed} of {sum(r.requests or 0 for r in runs)} requests failed")
        if any(r.downtime is not None for r in runs):
            parts.append(f"downtime {format_value(max(r.downtime or 0.0 for r in runs), 'seconds')}")
        if self.settings.version is not None:
            switches = sorted({f"{r.version_before[0] or '?'} → {r.version_after[0] or '?'}" for r in runs})
            parts.append("version " + ", ".join(switches))
        self.messages.append(", ".join(parts))
        for run in runs:
            if not run.action.ok:
                self.details.append(f"{operation.name} run {run.number}: {run.action.detail}")
                self.details += [f"  {line}" for line in run.action.output_tail[-5:]]
            elif operation.expect_version is not None and not run.version_changed:
                seen = run.version_after[0] or run.version_after[1]
                self.details.append(
                    f"{operation.name} run {run.number}: version {seen!r} afterwards, "
                    f"expected {operation.expect_version!r} (it was {run.version_before[0] or '?'} before)"
                )


def _describe(operation: Operation) -> str:
    what = []
    if operation.command is not None:
        command = operation.command
        what.append(command if isinstance(command, str) else " ".join(command))
    if operation.restart is not None:
        what.append(f"restart of {operation.restart}")
    return f"{operation.name} ({', then '.join(what)})"
