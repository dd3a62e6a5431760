"""A check kind's optional command that writes report files, which the kind then reads.

`CommandSettings` holds the plan's `command`, `shell`, `cwd`, `env` and `timeout` for such a
kind; `CommandRun` runs the command once and tells which report files this run wrote.
Used by `tests` (JUnit XML, coverage) and `load_results` (k6, Locust).

A report only counts if this run wrote it: files matching the globs that existed before the
command started and were not rewritten are stale, and ignored (never deleted).
"""

from __future__ import annotations

__all__ = ["CommandRun", "CommandSettings", "ReportFiles"]

import glob
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gonogo.checks.base import ArtifactRef, CheckContext, CheckOutcome
from gonogo.plan.model import Duration, require_splits
from gonogo.units import Unit

_Signature = tuple[int, int, int]  # mtime_ns, size, inode: changes when a file is rewritten

_LISTED_STALE = 5  # stale files named in the note about them


class CommandSettings(BaseModel):
    """The settings of the command a check runs (optional) before reading its reports."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    without_command: ClassVar[str] = "only read existing reports"
    """What the check does when `command` is omitted, as in "omit it to ..."; set per kind."""

    command: list[str] | str | None = None
    shell: bool = False
    cwd: str | None = Field(default=None, description="relative to the plan's directory")
    env: dict[str, str] = Field(default_factory=dict)
    timeout: Duration | None = None

    @field_validator("timeout", mode="before")
    @classmethod
    def _no_zero_timeout(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, bool) and value in (0, "0"):
            raise ValueError("a timeout of 0 would stop the command at once; omit it instead")
        return value

    @field_validator("command")
    @classmethod
    def _non_empty(cls, value: list[str] | str | None) -> list[str] | str | None:
        if value is not None and (not value or (isinstance(value, str) and not value.strip())):
            raise ValueError(f"a command must not be empty; omit it to {cls.without_command}")
        return value

    @model_validator(mode="after")
    def _command_splits(self) -> Self:
        require_splits(self.command, shell=self.shell)
        return self


@dataclass(frozen=True)
class ReportFiles:
    """The regular files matching a check's globs, split by whether this run wrote them."""

    fresh: list[Path]  # written by this run's command; every match when no command ran
    stale: list[Path]  # there before the command started and unchanged by it
    stale_note: str | None  # names the stale files, for the outcome's details; None if none


class CommandRun:
    """One run of a check's command (if it has one), and the report files it wrote.

    `noun` names the command in messages ("the {noun} command could not be started"),
    `reports` what it writes ("its {reports}, if any, are incomplete"), `name` its output
    artifact; `dimension` is the check's default one, also of `command.duration` and
    `command.exit_code`.
    """

    def __init__(
        self,
        settings: CommandSettings,
        ctx: CheckContext,
        *,
        noun: str,
        reports: str,
        name: str,
        dimension: str,
    ) -> None:
        self.settings = settings
        self.ctx = ctx
        self.cwd = ctx.plan_dir / ctx.expand(settings.cwd) if settings.cwd else ctx.plan_dir
        self.work_dir = ctx.work_dir
        self.noun = noun
        self.reports = reports
        self.name = name
        self.dimension = dimension
        self.text: str | None = None  # the command as run, for sources and messages
        # The time the check's metrics cover: the command's run, or what the reports say.
        self.window: tuple[datetime, datetime] | None = None
        self.exit_code: int | None = None
        self.output_tail: list[str] = []  # the command's last output lines
        self.summary: str | None = None  # how it ended, for the outcome's message
        self._before: dict[str, _Signature] | None = None  # None: no command ran, every file counts

    @property
    def ran(self) -> bool:
        """Whether the command ran, so that only the files it wrote count."""
        return self._before is not None

    def run(self, globs: Sequence[str], *, announce: bool = False) -> CheckOutcome | None:
        """Check the cwd, then run the command if there is one, watching the files that match
        `globs`; an `error` outcome when the cwd is no directory, or the command could not
        start or timed out. `announce` tells the user the command is running."""
        if not self.cwd.is_dir():
            return CheckOutcome("error", f"the check's cwd {self.cwd} is not a directory")
        settings, ctx = self.settings, self.ctx
        command = settings.command
        if command is None:
            return None
        argv: str | list[str]
        if isinstance(command, str) and settings.shell:
            argv = ctx.expand(command)
            text = argv
        elif isinstance(command, str):
            # Split before expanding, so a placeholder's value with spaces stays one word.
            argv = [ctx.expand(word) for word in shlex.split(command)]
            text = shlex.join(argv)
        else:
            argv = [ctx.expand(part) for part in command]
            text = shlex.join(argv)
        self.text = text
        env = {key: ctx.expand(value) for key, value in settings.env.items()}
        # Taken just before the start: any of these files unchanged afterwards is stale.
        self._before = {str(path): _signature(path) for path in _find(self.cwd, globs)}
        if announce:
            ctx.progress(f"running {text}")
        result = ctx.run_command(
            argv, cwd=self.cwd, env=env, shell=settings.shell, timeout=settings.timeout, name=self.name
        )
        if result.start_error is not None or (result.returncode is None and not result.timed_out):
            why = result.start_error or "it ended without an exit status"
            return CheckOutcome("error", f"the {self.noun} command could not be started: {why} ({text})")
        self.window = (result.started_at, result.ended_at)
        self.record("command.duration", result.duration, "seconds", text, result.output)
        if result.timed_out or result.returncode is None:
            return CheckOutcome(
                "error",
                f"the {self.noun} command timed out after {result.duration:.1f} s and was stopped; "
                f"its {self.reports}, if any, are incomplete and were not counted",
            )
        self.exit_code = result.returncode
        self.output_tail = result.output_tail
        self.record("command.exit_code", result.returncode, "number", text, result.output)
        self.summary = f"command exited {result.returncode} in {result.duration:.1f} s"
        return None

    def find(self, globs: Sequence[str], what: str) -> ReportFiles:
        """The files matching `globs`, those this run wrote apart; `what` names them in the
        note about stale ones ("ignored 2 {what} file(s) left by an earlier run ...")."""
        found = _find(self.cwd, globs)
        before = self._before
        if before is None:
            return ReportFiles(found, [], None)
        fresh: list[Path] = []
        stale: list[Path] = []
        for path in found:
            (stale if before.get(str(path)) == _signature(path) else fresh).append(path)
        note = None
        if stale:
            names = ", ".join(self.display(path) for path in stale[:_LISTED_STALE])
            note = (
                f"ignored {len(stale)} {what} file(s) left by an earlier run "
                f"(unchanged by this command): {names}"
            )
        return ReportFiles(fresh, stale, note)

    def display(self, path: Path) -> str:
        """The path as the user knows it: relative to the cwd when inside it."""
        try:
            return path.relative_to(self.cwd).as_posix()
        except ValueError:
            return str(path)

    def artifact_name(self, path: Path) -> str:
        """The name a report file is stored under: relative to the check's work dir when
        written there (`{work_dir}/junit.xml` is `junit.xml`, the same every run), else as shown."""
        try:
            return path.relative_to(self.work_dir).as_posix()
        except ValueError:
            return self.display(path)

    def record(
        self,
        name: str,
        value: float,
        unit: Unit,
        source: str,
        artifact: ArtifactRef | None,
        dimension: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        """Record one of the check's metrics over `window`, under `dimension` or the check's own."""
        self.ctx.record_metric(
            name,
            float(value),
            unit,
            dimension=dimension or self.dimension,
            source=source,
            artifact=artifact,
            window=self.window,
            labels=labels,
        )


def _find(cwd: Path, globs: Sequence[str]) -> list[Path]:
    """Regular files matching any glob (relative to cwd, or absolute), sorted, unique."""
    found: set[Path] = set()
    for pattern in globs:
        full = pattern if os.path.isabs(pattern) else os.path.join(glob.escape(str(cwd)), pattern)
        found.update(Path(match) for match in glob.glob(full, recursive=True))
    return sorted(path for path in found if path.is_file())


def _signature(path: Path) -> _Signature:
    try:
        stat = path.stat()
    except OSError:
        return (-1, -1, -1)
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)
