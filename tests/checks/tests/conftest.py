"""A real-enough CheckContext for the `tests` check: it runs commands with subprocess and
keeps metrics and artifacts in lists. The context is the runner's side, not what these
tests are about."""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gonogo.checks.base import ArtifactRef, CommandResult
from gonogo.units import Unit

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


@dataclass
class Metric:
    name: str
    value: float
    unit: Unit
    dimension: str
    source: str
    artifact: ArtifactRef | None
    window: tuple[datetime, datetime] | None


@dataclass
class FakeContext:
    plan_dir: Path
    work_dir: Path
    check_name: str = "unit"
    base_url: str | None = None
    metrics: list[Metric] = field(default_factory=list)
    artifacts: dict[str, bytes] = field(default_factory=dict)  # sha256 -> content
    artifact_names: list[str] = field(default_factory=list)
    commands: list[CommandResult] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)

    def expand(self, text: str) -> str:
        return text.replace("{work_dir}", str(self.work_dir)).replace("{plan_dir}", str(self.plan_dir))

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
        assert not any(m.name == name for m in self.metrics), f"{name} recorded twice"
        self.metrics.append(Metric(name, value, unit, dimension, source, artifact, window))

    def store_artifact(
        self, content: Path | bytes, *, name: str, media_type: str = "application/octet-stream"
    ) -> ArtifactRef:
        data = content.read_bytes() if isinstance(content, Path) else content
        digest = hashlib.sha256(data).hexdigest()
        self.artifacts[digest] = data
        self.artifact_names.append(name)
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
        args: str | list[str] = (
            argv
            if shell and isinstance(argv, str)
            else (shlex.split(argv) if isinstance(argv, str) else list(argv))
        )
        started = datetime.now(UTC)
        full_env = {**os.environ, **(env or {})}
        try:
            done = subprocess.run(
                args, cwd=cwd, env=full_env, shell=shell, timeout=timeout, capture_output=True
            )
        except OSError as error:
            result = CommandResult(
                list(args) if isinstance(args, list) else [args],
                None,
                started,
                datetime.now(UTC),
                start_error=str(error),
            )
        except subprocess.TimeoutExpired as error:
            output = (error.stdout or b"") + (error.stderr or b"")
            result = CommandResult(
                list(args) if isinstance(args, list) else [args],
                None,
                started,
                datetime.now(UTC),
                timed_out=True,
                output=self.store_artifact(output, name=f"{name}.log"),
            )
        else:
            result = CommandResult(
                list(args) if isinstance(args, list) else [args],
                done.returncode,
                started,
                datetime.now(UTC),
                output=self.store_artifact(done.stdout + done.stderr, name=f"{name}.log"),
            )
        self.commands.append(result)
        return result

    def progress(self, message: str) -> None:
        self.messages.append(message)

    # -- test helpers ---------------------------------------------------------------------

    def metric(self, name: str) -> Metric:
        found = [m for m in self.metrics if m.name == name]
        assert found, f"{name} not recorded; recorded: {[m.name for m in self.metrics]}"
        return found[0]

    def values(self) -> dict[str, float]:
        return {m.name: m.value for m in self.metrics}


@pytest.fixture
def ctx(tmp_path: Path) -> FakeContext:
    plan_dir = tmp_path / "plan"
    work_dir = tmp_path / "work"
    plan_dir.mkdir()
    work_dir.mkdir()
    return FakeContext(plan_dir=plan_dir, work_dir=work_dir)
