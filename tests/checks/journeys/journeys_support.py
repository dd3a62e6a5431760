"""Helpers for the journeys tests: a free port, stopping the server, a fake CheckContext."""

from __future__ import annotations

import hashlib
import math
import os
import signal
import socket
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from gonogo.checks.base import ArtifactRef, CheckOutcome, CommandResult
from gonogo.plan.model import DIMENSIONS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        except ProcessLookupError:
            pass
    if process.stderr:
        process.stderr.close()


@dataclass
class Metric:
    name: str
    value: float
    unit: str
    dimension: str
    source: str
    artifact: ArtifactRef | None
    window: tuple[datetime, datetime] | None
    labels: Mapping[str, str] | None


@dataclass
class FakeContext:
    """Collects what a check records, as the runner's context would store it."""

    plan_dir: Path
    work_dir: Path
    base_url: str | None
    check_name: str = "e2e"
    metrics: dict[str, Metric] = field(default_factory=dict)
    artifacts: dict[str, tuple[str, bytes, str]] = field(default_factory=dict)
    progress_messages: list[str] = field(default_factory=list)

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
        unit: Any,
        *,
        dimension: str,
        source: str,
        artifact: ArtifactRef | None = None,
        window: tuple[datetime, datetime] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        assert name not in self.metrics, f"{name} recorded twice"
        assert isinstance(value, int | float) and math.isfinite(value), (name, value)
        assert unit in ("ratio", "seconds", "bytes", "count", "number", "per_second")
        assert dimension in DIMENSIONS
        assert artifact is None or artifact.sha256 in self.artifacts
        self.metrics[name] = Metric(name, float(value), unit, dimension, source, artifact, window, labels)

    def store_artifact(
        self, content: Path | bytes, *, name: str, media_type: str = "application/octet-stream"
    ) -> ArtifactRef:
        data = content.read_bytes() if isinstance(content, Path) else content
        digest = hashlib.sha256(data).hexdigest()
        self.artifacts[digest] = (name, data, media_type)
        return ArtifactRef(digest, name, len(data))

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
        raise AssertionError("the journeys check runs no commands")

    def progress(self, message: str) -> None:
        self.progress_messages.append(message)

    # -- helpers for assertions --

    def value(self, name: str) -> float:
        assert name in self.metrics, f"{name} not recorded; recorded: {sorted(self.metrics)}"
        return self.metrics[name].value

    def artifact(self, name: str) -> bytes:
        found = [data for artifact_name, data, _ in self.artifacts.values() if artifact_name == name]
        assert len(found) == 1, f"{len(found)} artifacts named {name}"
        return found[0]


Run = Callable[..., tuple[CheckOutcome, "FakeContext"]]
