"""The context objects of a run: one `RunContext` per run, one `CheckRunContext` per check.

They are the only path from checks and services to the evidence store, so every
measurement is committed the moment it is made.
"""

from __future__ import annotations

__all__ = ["CheckRunContext", "RunContext"]

import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path

from gonogo.checks.base import ArtifactRef, CommandResult, SettingsT
from gonogo.evidence import EventRecord, MetricRecord, SampleSeries, Store
from gonogo.faults.targets import FaultTargets
from gonogo.plan import Plan
from gonogo.plan.model import PLACEHOLDER, SystemSpec
from gonogo.run.progress import Progress
from gonogo.system import Reaper, run_command, tail_lines
from gonogo.units import Unit

_UNSAFE_FILE_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class RunContext:
    """Everything one readiness run shares; passed around instead of globals."""

    plan: Plan
    store: Store
    run_id: str
    ports: dict[str, int]
    scratch_dir: Path  # {run_dir}: the services' data and the checks' work dirs
    reaper: Reaper
    progress: Progress
    fault_targets: FaultTargets = field(init=False)
    scrape_errors: dict[str, int] = field(default_factory=dict)  # service → failed scrapes of `metrics:`
    _samples: SampleRecorder = field(init=False)

    def __post_init__(self) -> None:
        self._samples = SampleRecorder(self.store, self.run_id)
        self.fault_targets = FaultTargets(reaper=self.reaper)  # filled in as the run sets them up

    @property
    def base_url(self) -> str | None:
        if self.plan.system.base_url is None:
            return None
        return self.expand(self.plan.system.base_url)

    def expand(self, text: str, work_dir: Path | None = None) -> str:
        def substitute(match: re.Match[str]) -> str:
            token = match.group(1)
            if token.startswith("port."):
                return str(self.ports[token[5:]])
            if token == "base_url":
                return self.base_url or match.group(0)
            if token == "plan_dir":
                return str(self.plan.directory)
            if token == "run_dir":
                return str(self.scratch_dir)
            return str(work_dir or self.scratch_dir)

        return PLACEHOLDER.sub(substitute, text)

    def event(self, source: str, kind: str, message: str) -> None:
        self.store.add_event(self.run_id, EventRecord(datetime.now(UTC), source, kind, message))

    # SystemObserver
    def on_event(self, source: str, kind: str, message: str) -> None:
        self.event(source, kind, message)
        self.progress.milestone(source, message)

    def on_sample(
        self,
        service: str,
        at: datetime,
        cpu_percent: float,
        rss_bytes: float,
        open_fds: float,
        threads: float,
    ) -> None:
        self._samples.add(service, at, cpu_percent, rss_bytes, open_fds, threads)

    def on_scrape(self, service: str, at: datetime, gauges: dict[str, float] | None) -> None:
        if gauges is None:
            self.scrape_errors[service] = self.scrape_errors.get(service, 0) + 1
            return
        self._samples.add_gauges(service, at, gauges)

    def flush_samples(self) -> None:
        self._samples.flush()

    def resource_samples(self, since: datetime) -> dict[tuple[str, str], list[tuple[datetime, float]]]:
        return self._samples.since(since)


class SampleRecorder:
    """Buffers resource samples a few seconds, so the store sees one write per series."""

    FLUSH_EVERY = 5.0
    _SERIES: tuple[tuple[str, Unit], ...] = (
        ("cpu", "ratio"),
        ("rss", "bytes"),
        ("fds", "count"),
        ("threads", "count"),
    )

    def __init__(self, store: Store, run_id: str) -> None:
        self._store, self._run_id = store, run_id
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], list[tuple[datetime, float]]] = {}
        # Every point of the run, kept for trends: 4 series per service, one point a second each.
        self._kept: dict[tuple[str, str], list[tuple[datetime, float]]] = {}
        self._last_flush = datetime.now(UTC)

    def add(self, service: str, at: datetime, cpu: float, rss: float, fds: float, threads: float) -> None:
        values = (cpu / 100.0, rss, fds, threads)
        with self._lock:
            for (name, _), value in zip(self._SERIES, values, strict=True):
                self._pending.setdefault((service, name), []).append((at, value))
                self._kept.setdefault((service, name), []).append((at, value))
            due = (at - self._last_flush).total_seconds() >= self.FLUSH_EVERY
        if due:
            self.flush()

    def add_gauges(self, service: str, at: datetime, gauges: Mapping[str, float]) -> None:
        """The gauges of a service's Prometheus endpoint, as series `metrics.<gauge>`."""
        with self._lock:
            for name, value in gauges.items():
                key = (service, f"metrics.{name}")
                self._pending.setdefault(key, []).append((at, value))
                self._kept.setdefault(key, []).append((at, value))

    def since(self, since: datetime) -> dict[tuple[str, str], list[tuple[datetime, float]]]:
        with self._lock:
            kept = {key: list(points) for key, points in self._kept.items()}
        return {key: [(at, value) for at, value in points if at >= since] for key, points in kept.items()}

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
            self._last_flush = datetime.now(UTC)
        units: dict[str, Unit] = dict(self._SERIES)
        for (service, name), points in pending.items():
            self._store.add_samples(
                self._run_id, SampleSeries(name, {"service": service}, units.get(name, "number"), points)
            )


class CheckRunContext:
    """What one check sees of the run (implements gonogo.checks.base.CheckContext)."""

    def __init__(self, run: RunContext, check_name: str) -> None:
        self._run = run
        self._check_name = check_name
        self._work_dir = run.scratch_dir / "checks" / check_name
        self._work_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_recorded = 0

    @property
    def check_name(self) -> str:
        return self._check_name

    @property
    def plan_dir(self) -> Path:
        return self._run.plan.directory

    @property
    def work_dir(self) -> Path:
        return self._work_dir

    @property
    def base_url(self) -> str | None:
        return self._run.base_url

    @property
    def fault_targets(self) -> FaultTargets:
        return self._run.fault_targets

    def expand(self, text: str) -> str:
        return self._run.expand(text, self._work_dir)

    def plan_checks(self, settings_type: type[SettingsT]) -> dict[str, SettingsT]:
        return {
            name: spec.settings
            for name, spec in self._run.plan.checks.items()
            if isinstance(spec.settings, settings_type)
        }

    def record_metric(
        self,
        name: str,
        value: float,
        unit: Unit,
        *,
        dimension: str,
        source: str,
        artifact: ArtifactRef | None = None,
        window: tuple[datetime, datetime] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self._run.store.add_metric(
            self._run.run_id,
            MetricRecord(
                check=self._check_name,
                name=name,
                value=float(value),
                unit=unit,
                dimension=dimension,
                source=self._portable(source),
                recorded_at=datetime.now(UTC),
                artifact_sha256=artifact.sha256 if artifact else None,
                window_start=window[0] if window else None,
                window_end=window[1] if window else None,
                labels=dict(labels or {}),
            ),
        )
        self.metrics_recorded += 1

    def record_series(
        self,
        name: str,
        unit: Unit,
        points: Sequence[tuple[datetime, float]],
        *,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self._run.store.add_samples(
            self._run.run_id,
            SampleSeries(f"{self._check_name}.{name}", {"check": self._check_name, **(labels or {})}, unit,
                         list(points)),
        )  # fmt: skip

    def breached(
        self, name: str, *, so_far: float | None, per_second: Sequence[tuple[datetime, float]]
    ) -> str | None:
        full_name = f"{self._check_name}.{name}"
        for gate in self._run.plan.gates:
            if not gate.abort_on_fail or not fnmatchcase(full_name, gate.metric):
                continue
            threshold = gate.expr
            if threshold.timeframe is None:
                if so_far is not None and not threshold.holds(so_far):
                    return (
                        f"gate {gate.metric} {threshold.text} failed while running ({full_name} = {so_far:g})"
                    )
                continue
            breach = threshold.longest_breach([(t.timestamp(), value) for t, value in per_second])
            if breach is not None and breach.seconds >= threshold.timeframe:
                return (
                    f"gate {gate.metric} {threshold.text} failed while running "
                    f"({breach.seconds:.0f} s in breach)"
                )
        return None

    def aborts_on(self, name: str) -> bool:
        full_name = f"{self._check_name}.{name}"
        return any(
            gate.abort_on_fail and fnmatchcase(full_name, gate.metric) for gate in self._run.plan.gates
        )

    def _portable(self, source: str) -> str:
        """Paths inside the plan's folder read relative to it (the check's work dir as
        `.gonogo/runs/<run>/scratch/checks/<check>`): shorter, and still a path a reader can
        follow, where a placeholder such as `{work_dir}` would read as one left unfilled."""
        return source.replace(f"{self._run.plan.directory}/", "")

    def store_artifact(
        self, content: Path | bytes, *, name: str, media_type: str = "application/octet-stream"
    ) -> ArtifactRef:
        return self._run.store.add_artifact(
            self._run.run_id, content, name=name, media_type=media_type, check=self._check_name
        )

    def run_command(
        self,
        argv: Sequence[str] | str,
        *,
        cwd: Path,
        env: Mapping[str, str] | None = None,
        shell: bool = False,
        timeout: float | None = None,
        name: str = "command",
    ) -> CommandResult:
        safe_name = _UNSAFE_FILE_CHARACTERS.sub("_", name)
        log_path = self._work_dir / f"{safe_name}.log"
        shown = argv if isinstance(argv, str) else " ".join(argv)
        self._run.progress.milestone(self._check_name, f"running {shown}")
        outcome = run_command(
            argv, cwd=cwd, env=env, shell=shell, timeout=timeout, log_path=log_path, reaper=self._run.reaper
        )
        output, tail = None, []
        if log_path.exists():
            output = self.store_artifact(log_path, name=f"{safe_name}.log", media_type="text/plain")
            tail = tail_lines(log_path, 15)
        return CommandResult(
            argv=[argv] if isinstance(argv, str) else list(argv),
            returncode=outcome.returncode,
            started_at=outcome.started_at,
            ended_at=outcome.ended_at,
            timed_out=outcome.timed_out,
            start_error=outcome.start_error,
            output=output,
            output_tail=tail,
        )

    def progress(self, message: str, *, milestone: bool = False) -> None:
        if milestone:
            self._run.progress.milestone(self._check_name, message)
        else:
            self._run.progress.update(self._check_name, message)

    @property
    def system(self) -> SystemSpec:
        return self._run.plan.system

    def resource_samples(self, since: datetime) -> dict[tuple[str, str], list[tuple[datetime, float]]]:
        return self._run.resource_samples(since)
