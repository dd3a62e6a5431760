"""Running one command to completion for a check (a test suite, a deploy script)."""

from __future__ import annotations

__all__ = ["CommandOutcome", "run_command"]

import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from gonogo.system.process import describe_start_error, resolve_argv, spawn
from gonogo.system.reaper import Reaper

# A command that timed out gets SIGTERM and this long to write what it has (a JUnit report).
TERMINATE_GRACE = 2.0


@dataclass(frozen=True)
class CommandOutcome:
    argv: list[str]  # as executed (split, or wrapped in /bin/sh -c)
    returncode: int | None  # None: not started, or killed on timeout
    started_at: datetime
    ended_at: datetime
    timed_out: bool = False
    start_error: str | None = None

    @property
    def duration(self) -> float:
        return (self.ended_at - self.started_at).total_seconds()


def run_command(
    argv: Sequence[str] | str,
    *,
    cwd: Path,
    env: Mapping[str, str] | None,
    shell: bool,
    timeout: float | None,
    log_path: Path,
    reaper: Reaper,
) -> CommandOutcome:
    """Run a command in its own process group, stdout and stderr to `log_path`.

    On timeout the whole tree gets SIGTERM, then SIGKILL after `TERMINATE_GRACE`; on any
    exception while waiting (Ctrl-C, a check's time limit) it is killed at once and the
    exception re-raised. Whatever the command left running when it exited is stopped the
    same way. A command that cannot be started is reported in `start_error`, not raised.
    """
    started_at = datetime.now(UTC)
    shown = [argv] if isinstance(argv, str) else list(argv)
    try:
        resolved = resolve_argv(argv, shell=shell)
        tree = spawn(resolved, cwd=cwd, env=env, log_path=log_path, reaper=reaper)
    except (OSError, ValueError) as error:
        message = describe_start_error(error)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text(f"gonogo: could not start {shown}: {message}\n")
        return CommandOutcome(shown, None, started_at, datetime.now(UTC), start_error=message)
    try:
        code = tree.wait_exit(timeout)
        ended_at = datetime.now(UTC)
        tree.stop(signal.SIGTERM, TERMINATE_GRACE)
    except BaseException:
        tree.stop(signal.SIGKILL, 0)
        raise
    return CommandOutcome(resolved, code, started_at, ended_at, timed_out=code is None)
