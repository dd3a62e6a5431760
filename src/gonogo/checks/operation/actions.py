"""Running one action: its command (in its own process group, output kept as an artifact), then
the graceful restart of a plan service it names."""

from __future__ import annotations

__all__ = ["ActionResult", "run_action"]

import shlex
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gonogo.checks.base import ArtifactRef, CheckContext
from gonogo.checks.operation.settings import Action
from gonogo.units import format_value


@dataclass
class ActionResult:
    started: float  # time.monotonic()
    ended: float
    started_at: datetime
    ended_at: datetime
    ok: bool
    detail: str  # how it ended, in words
    command: str | None = None  # as run, placeholders filled
    exit_code: int | None = None
    output: ArtifactRef | None = None
    output_tail: list[str] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return self.ended - self.started

    def evidence(self) -> dict[str, Any]:
        return {
            "started": self.started_at.isoformat(),
            "ended": self.ended_at.isoformat(),
            "seconds": round(self.duration, 3),
            "ok": self.ok,
            "detail": self.detail,
            "command": self.command,
            "exit_code": self.exit_code,
            "output": {"name": self.output.name, "sha256": self.output.sha256} if self.output else None,
        }


def run_action(action: Action, ctx: CheckContext, *, name: str) -> ActionResult:
    """Run `action`; `name` names its output artifact (`<name>.log`). Never raises for a command
    that fails or a service that does not come back: the result says so."""
    started, started_at = time.monotonic(), datetime.now(UTC)
    result = ActionResult(started, started, started_at, started_at, ok=True, detail="")
    parts: list[str] = []
    if action.command is not None:
        _run_command(action, ctx, name, result)
        parts.append(result.detail)
    if action.restart is not None and result.ok:
        ok, said = _restart(action.restart, ctx)
        result.ok = ok
        parts.append(said)
    result.ended, result.ended_at = time.monotonic(), datetime.now(UTC)
    result.detail = "; ".join(parts)
    return result


def _run_command(action: Action, ctx: CheckContext, name: str, result: ActionResult) -> None:
    assert action.command is not None
    argv: str | list[str]
    if isinstance(action.command, str) and action.shell:
        argv = text = ctx.expand(action.command)
    else:
        # Split before expanding, so a placeholder's value with spaces stays one word.
        words = shlex.split(action.command) if isinstance(action.command, str) else action.command
        argv = [ctx.expand(word) for word in words]
        text = shlex.join(argv)
    result.command = text
    ran = ctx.run_command(argv, cwd=ctx.plan_dir, shell=action.shell, timeout=action.timeout, name=name)
    result.exit_code, result.output, result.output_tail = ran.returncode, ran.output, ran.output_tail
    if ran.start_error is not None:
        result.ok, result.detail = False, f"could not be started: {ran.start_error}"
    elif ran.timed_out or ran.returncode is None:
        result.ok = False
        result.detail = f"timed out after {format_value(action.timeout, 'seconds')} and was stopped"
    elif ran.returncode != 0:
        result.ok, result.detail = False, f"exited with code {ran.returncode}"
    else:
        result.detail = f"exited 0 in {format_value(ran.duration, 'seconds')}"


def _restart(service: str, ctx: CheckContext) -> tuple[bool, str]:
    services = ctx.fault_targets.services
    if services is None:
        return False, f"cannot restart {service}: this run started no services (it targets a URL)"
    started = time.monotonic()
    try:
        services.restart(service)
    except Exception as error:  # it did not come back: the run's supervision says why
        return False, f"restart of {service} failed: {error}"
    return True, f"{service} restarted and ready in {format_value(time.monotonic() - started, 'seconds')}"
