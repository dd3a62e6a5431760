"""A real-enough CheckContext for the check kinds' tests, made by the `recording_context`
fixture (tests/checks/conftest.py).

It keeps what a check records in memory, asserting what the runner's context and the
evidence store would refuse, and runs commands for real (in their own process group, with
a timeout). The context is the runner's side, not what these tests are about.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import shlex
import signal
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import get_args

from pydantic import BaseModel

from gonogo.checks.base import ArtifactRef, CommandResult, SettingsT
from gonogo.plan.model import DIMENSIONS
from gonogo.plan.names import MetricPatterns, matches
from gonogo.units import Unit

UNITS = get_args(Unit)
TAIL_LINES = 15  # as many output lines as the runner's context keeps in `output_tail`
TERMINATE_GRACE = 2.0  # seconds between SIGTERM and SIGKILL for a command that timed out


@dataclass
class Metric:
    name: str
    value: float
    unit: Unit
    dimension: str
    source: str
    artifact: ArtifactRef | None
    window: tuple[datetime, datetime] | None
    labels: Mapping[str, str] | None


@dataclass(frozen=True)
class StoredArtifact:
    ref: ArtifactRef
    media_type: str


@dataclass
class RecordingContext:
    """Collects what a check records, as the runner's context would store it."""

    plan_dir: Path
    work_dir: Path
    check_name: str = "check"
    base_url: str | None = None
    metrics: dict[str, Metric] = field(default_factory=dict)
    artifacts: dict[str, bytes] = field(default_factory=dict)  # sha256 -> content
    stored: list[StoredArtifact] = field(default_factory=list)  # every store_artifact call, in order
    commands: list[CommandResult] = field(default_factory=list)
    progress_messages: list[str] = field(default_factory=list)
    milestones: list[str] = field(default_factory=list)  # the progress messages always printed
    series: dict[str, list[tuple[datetime, float]]] = field(default_factory=dict)
    series_labels: dict[str, dict[str, str]] = field(default_factory=dict)  # the labels of each series
    # metric name (relative) -> why to stop: what the runner would say for an abort_on_fail gate
    abort_when: dict[str, Callable[[float | None, Sequence[tuple[datetime, float]]], str | None]] = field(
        default_factory=dict
    )
    # What the running kind declares it can record with its settings (`CheckKind.metric_names`),
    # set by the `declarations_are_honest` fixture: recording anything else fails the test.
    declared: MetricPatterns | None = None
    declared_by: str = ""
    other_checks: dict[str, BaseModel] = field(default_factory=dict)  # the plan's other checks' settings

    def plan_checks(self, settings_type: type[SettingsT]) -> dict[str, SettingsT]:
        checks = self.other_checks.items()
        return {name: settings for name, settings in checks if isinstance(settings, settings_type)}

    def expand(self, text: str) -> str:
        for name, value in (
            ("{base_url}", self.base_url or ""),
            ("{plan_dir}", str(self.plan_dir)),
            ("{work_dir}", str(self.work_dir)),
        ):
            text = text.replace(name, value)
        return text

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
        assert name not in self.metrics, f"{name} recorded twice"
        assert self.declared is None or matches(name, self.declared), (
            f"{name} recorded, but {self.declared_by}.metric_names does not declare it for these "
            f"settings, so `gonogo validate` would refuse a gate on it"
        )
        assert isinstance(value, int | float) and math.isfinite(value), (name, value)
        assert unit in UNITS, (name, unit)
        assert dimension in DIMENSIONS, (name, dimension)
        assert artifact is None or artifact.sha256 in self.artifacts, f"{name}: artifact never stored"
        self.metrics[name] = Metric(name, float(value), unit, dimension, source, artifact, window, labels)

    def store_artifact(
        self, content: Path | bytes, *, name: str, media_type: str = "application/octet-stream"
    ) -> ArtifactRef:
        data = content.read_bytes() if isinstance(content, Path) else content
        ref = ArtifactRef(hashlib.sha256(data).hexdigest(), name, len(data))
        self.artifacts[ref.sha256] = data
        self.stored.append(StoredArtifact(ref, media_type))
        return ref

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
        shown = [argv] if isinstance(argv, str) else list(argv)
        if shell:
            args = ["/bin/sh", "-c", argv if isinstance(argv, str) else " ".join(argv)]
        else:
            args = shlex.split(argv) if isinstance(argv, str) else list(argv)
        started = datetime.now(UTC)
        with tempfile.TemporaryFile() as log:  # stdout and stderr, interleaved
            try:
                process = subprocess.Popen(
                    args,
                    cwd=cwd,
                    env={**os.environ, **(env or {})},
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group, stopped as a whole
                )
            except OSError as error:
                result = CommandResult(shown, None, started, datetime.now(UTC), start_error=str(error))
                self.commands.append(result)
                return result
            returncode: int | None = None
            try:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    returncode = process.wait(timeout)
                ended = datetime.now(UTC)
                if returncode is None:  # timed out: a moment to write what it has, then killed
                    _signal_group(process, signal.SIGTERM)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        process.wait(TERMINATE_GRACE)
            finally:  # whatever is left of it, also on Ctrl-C or a test's time limit
                _signal_group(process, signal.SIGKILL)
                process.wait()
            log.seek(0)
            output = log.read()
        result = CommandResult(
            shown,
            returncode,
            started,
            ended,
            timed_out=returncode is None,
            output=self.store_artifact(output, name=f"{name}.log", media_type="text/plain"),
            output_tail=output.decode(errors="replace").splitlines()[-TAIL_LINES:],
        )
        self.commands.append(result)
        return result

    def record_series(
        self,
        name: str,
        unit: Unit,
        points: Sequence[tuple[datetime, float]],
        *,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        assert unit in UNITS, (name, unit)
        self.series.setdefault(name, []).extend(points)
        self.series_labels[name] = dict(labels or {})

    def breached(
        self, name: str, *, so_far: float | None, per_second: Sequence[tuple[datetime, float]]
    ) -> str | None:
        rule = self.abort_when.get(name)
        return rule(so_far, per_second) if rule else None

    def aborts_on(self, name: str) -> bool:
        return name in self.abort_when

    def progress(self, message: str, *, milestone: bool = False) -> None:
        self.progress_messages.append(message)
        if milestone:
            self.milestones.append(message)

    # -- helpers for assertions -----------------------------------------------------------

    def metric(self, name: str) -> Metric:
        assert name in self.metrics, f"{name} not recorded; recorded: {sorted(self.metrics)}"
        return self.metrics[name]

    def value(self, name: str) -> float:
        return self.metric(name).value

    def values(self) -> dict[str, float]:
        return {name: metric.value for name, metric in self.metrics.items()}

    @property
    def artifact_names(self) -> list[str]:
        return [artifact.ref.name for artifact in self.stored]

    def artifact(self, name: str) -> bytes:
        """The content of the one artifact stored under `name`."""
        found = {artifact.ref.sha256 for artifact in self.stored if artifact.ref.name == name}
        assert len(found) == 1, f"{len(found)} artifacts named {name}"
        return self.artifacts[found.pop()]


MakeContext = Callable[..., RecordingContext]  # the `recording_context` fixture


def _signal_group(process: subprocess.Popen[bytes], signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)
