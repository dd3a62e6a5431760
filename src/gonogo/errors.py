"""The exception hierarchy: callers catch precisely what they can handle.

`UserError` and its subclasses are mistakes the user can fix (a bad plan, a missing
file); the CLI prints them without a traceback and exits 2. `RunFailed` means the
readiness run could not be completed (exit 3). Every other exception gonogo defines
derives from `GonogoError` too (with `ValueError` as a second base where pydantic or
callers expect one), so `except GonogoError` catches whatever gonogo raises on purpose;
only interruptions derive from `KeyboardInterrupt` instead. tests/test_architecture.py
holds it.
"""

from __future__ import annotations

__all__ = [
    "GonogoError",
    "HostileInputError",
    "InputFileError",
    "PlanError",
    "PlanIssue",
    "RunFailed",
    "ServiceFailed",
    "UserError",
]

from dataclasses import dataclass, field


class GonogoError(Exception):
    """Base of every error gonogo raises on purpose."""


class UserError(GonogoError):
    """A mistake in what the user gave us; shown without a traceback."""


@dataclass(frozen=True)
class PlanIssue:
    """One problem in a plan file, located as precisely as the YAML allows."""

    file: str
    line: int | None
    column: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        subject = f" {self.field}:" if self.field else ""
        return f"{where}:{subject} {self.message}"


@dataclass
class PlanError(UserError):
    """A plan that cannot be used; carries every issue found, not just the first."""

    issues: list[PlanIssue] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join(str(issue) for issue in self.issues)


class InputFileError(UserError):
    """An input file (test report, coverage report) that cannot be read."""


class HostileInputError(InputFileError):
    """An input file refused because it tries something dangerous (entities, DTDs, bombs)."""


class RunFailed(GonogoError):
    """The readiness run could not be completed (exit code 3)."""


class ServiceFailed(RunFailed):
    """A service of the system under test exited or never became ready."""

    def __init__(self, service: str, reason: str, last_log_lines: list[str] | None = None):
        self.service = service
        self.reason = reason
        self.last_log_lines = list(last_log_lines or [])
        tail = "\n".join(f"    {line}" for line in self.last_log_lines)
        text = f"service {service!r} {reason}"
        if tail:
            text += f"\n  last log lines of {service!r}:\n{tail}"
        super().__init__(text)
