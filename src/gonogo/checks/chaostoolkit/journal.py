"""A Chaos Toolkit journal (the `journal.json` that `chaos run` writes) reduced to what gonogo records.

`parse_journal_data` is a pure function of the file's bytes; it raises InputFileError naming
the file for anything that is not a complete journal (truncated JSON, an experiment file, a
JSON document of another kind).
"""

from __future__ import annotations

__all__ = [
    "MAX_JOURNAL_BYTES",
    "WHAT",
    "ActivityRun",
    "JournalSummary",
    "SteadyState",
    "parse_journal",
    "parse_journal_data",
    "read_journal",
]

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gonogo.errors import InputFileError
from gonogo.inputs import load_json

MAX_JOURNAL_BYTES = 256 * 1024 * 1024  # read whole; a journal holds every probe's output
WHAT = "a Chaos Toolkit journal (the journal.json written by `chaos run`)"
_STATUSES = ("completed", "failed", "aborted", "interrupted")


@dataclass(frozen=True)
class ActivityRun:
    """One activity as the journal saw it run."""

    name: str
    type: str  # "probe" or "action"
    status: str  # "succeeded" or "failed" (chaos's own words)
    duration: float | None  # seconds
    error: str | None  # the last line of its exception, when it failed
    tolerance_met: bool | None = None  # hypothesis probes only

    @property
    def failed(self) -> bool:
        return self.status != "succeeded"


@dataclass(frozen=True)
class SteadyState:
    met: bool
    probes: tuple[ActivityRun, ...]


@dataclass(frozen=True)
class JournalSummary:
    """What one run of an experiment did, from its journal."""

    title: str
    status: str  # completed, failed, aborted or interrupted
    deviated: bool
    before: SteadyState | None  # None: the hypothesis was not checked then (or there is none)
    after: SteadyState | None
    method: tuple[ActivityRun, ...]
    rollbacks: tuple[ActivityRun, ...]
    duration: float | None
    window: tuple[datetime, datetime] | None
    chaoslib_version: str | None

    @property
    def failed_activities(self) -> list[ActivityRun]:
        return [run for run in self.method if run.failed]

    @property
    def failed_rollbacks(self) -> list[ActivityRun]:
        return [run for run in self.rollbacks if run.failed]


def parse_journal(path: Path) -> JournalSummary:
    """Read the journal at `path`; raises InputFileError naming the file."""
    return parse_journal_data(read_journal(path), str(path))


def read_journal(path: Path) -> bytes:
    """The bytes of the journal at `path`, refusing a missing, empty or oversized file."""
    name = str(path)
    try:
        if not path.is_file():
            what = "not a regular file" if path.exists() else "no such file"
            raise InputFileError(f"{name}: {what}; expected {WHAT}")
        with path.open("rb") as handle:
            data = handle.read(MAX_JOURNAL_BYTES + 1)
    except OSError as error:
        raise InputFileError(f"{name}: cannot read: {error.strerror or error}") from None
    if len(data) > MAX_JOURNAL_BYTES:
        raise InputFileError(f"{name}: refused: over {MAX_JOURNAL_BYTES // 2**20} MiB for a journal")
    if not data.strip():
        raise InputFileError(f"{name}: the file is empty; expected {WHAT}")
    return data


def parse_journal_data(data: bytes, name: str) -> JournalSummary:
    """The journal in `data`; `name` names its file in errors."""
    document = _load_json(data, name)
    if not isinstance(document, dict):
        raise InputFileError(f"{name}: a JSON {_kind(document)}, not {WHAT}")
    if "run" not in document and "method" in document:
        raise InputFileError(
            f"{name}: this is an experiment, not the journal of a run; give it as `experiment:` to run it"
        )
    missing = [key for key in ("experiment", "status", "run") if key not in document]
    if missing:
        raise InputFileError(f"{name}: no {', '.join(repr(key) for key in missing)}; expected {WHAT}")
    experiment = document["experiment"]
    if not isinstance(experiment, dict):
        raise InputFileError(f"{name}: 'experiment' is not a mapping; expected {WHAT}")
    status = document["status"]
    if status not in _STATUSES:
        raise InputFileError(
            f"{name}: status is {status!r}; a finished run's is one of {', '.join(_STATUSES)} "
            "(was the journal copied before the run ended?)"
        )
    title = experiment.get("title")
    steady_states = document.get("steady_states") or {}
    if not isinstance(steady_states, dict):
        raise InputFileError(f"{name}: 'steady_states' is not a mapping; expected {WHAT}")
    start, end = _time(document.get("start")), _time(document.get("end"))
    return JournalSummary(
        title=title if isinstance(title, str) else "(untitled)",
        status=status,
        deviated=document.get("deviated") is True,
        before=_steady_state(name, steady_states.get("before"), "steady_states.before"),
        after=_steady_state(name, steady_states.get("after"), "steady_states.after"),
        method=_runs(name, document["run"], "run"),
        rollbacks=_runs(name, document.get("rollbacks") or [], "rollbacks"),
        duration=_seconds(document.get("duration")),
        window=(start, end) if start is not None and end is not None and start <= end else None,
        chaoslib_version=_text(document.get("chaoslib-version")),
    )


def _load_json(data: bytes, name: str) -> Any:
    try:
        return load_json(data, name, WHAT)
    except InputFileError:
        # chaos writes the journal in one go and it always ends with `}`: a file cut short
        # anywhere (mid-string too, where the parser points at the string's start) is truncated
        if data.lstrip()[:1] == b"{" and not data.rstrip().endswith(b"}"):
            raise InputFileError(
                f"{name}: the JSON ends before the journal is complete (truncated?); expected {WHAT}"
            ) from None
        raise


def _steady_state(name: str, state: Any, where: str) -> SteadyState | None:
    if state is None:
        return None
    if not isinstance(state, dict) or not isinstance(state.get("steady_state_met"), bool):
        raise InputFileError(f"{name}: {where} has no steady_state_met true/false; expected {WHAT}")
    return SteadyState(state["steady_state_met"], _runs(name, state.get("probes") or [], f"{where}.probes"))


def _runs(name: str, runs: Any, where: str) -> tuple[ActivityRun, ...]:
    if not isinstance(runs, list):
        raise InputFileError(f"{name}: {where} is not a list; expected {WHAT}")
    found: list[ActivityRun] = []
    for index, run in enumerate(runs):
        activity = run.get("activity") if isinstance(run, dict) else None
        if not isinstance(activity, dict):
            raise InputFileError(f"{name}: {where}[{index}] is not an activity run; expected {WHAT}")
        status = run.get("status")
        if not isinstance(status, str):
            status = "aborted"  # chaos crashed while running it, so it never got a status
        tolerance_met = run.get("tolerance_met")
        found.append(
            ActivityRun(
                name=_text(activity.get("name")) or _text(activity.get("ref")) or f"#{index + 1}",
                type=_text(activity.get("type")) or "activity",
                status=status,
                duration=_seconds(run.get("duration")),
                error=_error(run.get("exception")),
                tolerance_met=tolerance_met if isinstance(tolerance_met, bool) else None,
            )
        )
    return tuple(found)


def _error(exception: Any) -> str | None:
    """The last line of a journal's exception: chaos's `ActivityFailed: ...` says what went wrong."""
    if isinstance(exception, list):
        lines = [line.strip() for part in exception if isinstance(part, str) for line in part.splitlines()]
        lines = [line for line in lines if line]
        return lines[-1] if lines else None
    return exception.strip() or None if isinstance(exception, str) else None


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and number >= 0 else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _kind(value: Any) -> str:
    return {list: "list", str: "string", bool: "boolean", int: "number", float: "number"}.get(
        type(value), "null" if value is None else type(value).__name__
    )
