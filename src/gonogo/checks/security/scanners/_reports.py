"""What the scanner readers share: finding the report files a source names, reading each one
and keeping it as evidence, and running a scanner that is installed.

Every problem a user can cause (a glob matching nothing, a file that is not a report, a
scanner not installed or failing) is a `ReportError` whose message names the file or the tool
and what was expected; the caller turns it into the part's *not measured* reason.
"""

from __future__ import annotations

__all__ = [
    "SCANNER_TIMEOUT",
    "ReportError",
    "ScannerRun",
    "display",
    "excerpt",
    "find_reports",
    "first_line",
    "read_report",
    "resolve",
    "run_scanner",
    "scanner_command",
]

import glob
import importlib.util
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gonogo.checks.base import CheckContext
from gonogo.checks.security.findings import Finding, PartResult, Tally
from gonogo.errors import GonogoError, InputFileError
from gonogo.inputs import load_json, read_bounded

# A scanner run by gonogo is stopped after this long: the check is bounded, and a scan of a
# service's own code takes seconds to a few minutes.
SCANNER_TIMEOUT = 600.0

_EXCERPT = 1500  # characters of a message or snippet kept in a finding


class ReportError(GonogoError):
    """Why a source's findings cannot be counted (the part is then *not measured*)."""


def display(path: Path, ctx: CheckContext) -> str:
    """The path as the user wrote it: relative to the plan's folder when inside it."""
    try:
        return path.relative_to(ctx.plan_dir).as_posix()
    except ValueError:
        return str(path)


def resolve(path: str, ctx: CheckContext) -> Path:
    """A path of the plan, placeholders expanded, relative to the plan's folder."""
    expanded = Path(ctx.expand(path))
    return expanded if expanded.is_absolute() else ctx.plan_dir / expanded


def find_reports(patterns: Sequence[str], ctx: CheckContext, what: str) -> list[Path]:
    """The regular files each pattern (a path or a glob) names, in order, each once. A
    pattern naming no file is an error: a missing report is no evidence of a clean scan."""
    found: list[Path] = []
    for pattern in patterns:
        full = resolve(pattern, ctx)
        if glob.has_magic(pattern):
            matches = sorted(Path(match) for match in glob.glob(str(full), recursive=True))
            files = [match for match in matches if match.is_file()]
            if not files:
                raise ReportError(f"no file matches {pattern!r} (in {ctx.plan_dir}); expected {what}")
        else:
            files = [full]  # read_report says what is wrong with it
        found += [path for path in files if path not in found]
    return found


def read_report(path: Path, ctx: CheckContext, *, what: str, media_type: str) -> Any:
    """The JSON document in `path`, after storing the file as an artifact (kept even when it
    turns out not to be a report, so the evidence shows what was given)."""
    shown = display(path, ctx)
    try:
        data = read_bounded(path, what)
    except InputFileError as error:
        raise ReportError(str(error).replace(str(path), shown, 1)) from None
    ctx.store_artifact(data, name=f"scanners/{_artifact_name(path, ctx)}", media_type=media_type)
    try:
        return load_json(data, shown, what)
    except InputFileError as error:
        raise ReportError(str(error)) from None


def _artifact_name(path: Path, ctx: CheckContext) -> str:
    """Relative to the check's work folder when gonogo wrote the report there (the same name
    every run), else as the plan names it."""
    try:
        return path.relative_to(ctx.work_dir).as_posix()
    except ValueError:
        return display(path, ctx)


def scanner_command(executable: str, module: str) -> list[str] | None:
    """How to start a scanner: its executable on PATH, else this interpreter's `-m module`
    when the module is installed beside gonogo; None when neither is there."""
    found = shutil.which(executable)
    if found is not None:
        return [found]
    if importlib.util.find_spec(module) is not None:
        return [sys.executable, "-m", module]
    return None


@dataclass(frozen=True)
class ScannerRun:
    """A scanner gonogo runs: its name in messages, the command, and the report it writes."""

    tool: str  # "Bandit", "pip-audit"
    argv: list[str]
    output: Path
    ok_exit_codes: frozenset[int]  # exit codes after which the report is complete


def run_scanner(run: ScannerRun, ctx: CheckContext, *, name: str) -> None:
    """Run the scanner in the plan's folder and make sure it wrote its report; else a
    ReportError with how it ended and its last output line."""
    shown = " ".join(run.argv)
    ctx.progress(f"running {run.tool}: {shown}")
    if run.output.exists():
        os.remove(run.output)  # a report left by an earlier run must not pass for this one's
    result = ctx.run_command(run.argv, cwd=ctx.plan_dir, timeout=SCANNER_TIMEOUT, name=name)
    tail = next((line.strip() for line in reversed(result.output_tail) if line.strip()), "")
    said = f"; its last output line: {tail}" if tail else ""
    if result.start_error is not None:
        raise ReportError(f"{run.tool} could not be started ({shown}): {result.start_error}")
    if result.timed_out or result.returncode is None:
        raise ReportError(
            f"{run.tool} was stopped after {SCANNER_TIMEOUT:g} s without finishing ({shown}){said}"
        )
    if result.returncode not in run.ok_exit_codes or not run.output.is_file():
        raise ReportError(
            f"{run.tool} exited with code {result.returncode} without writing its report "
            f"{run.output.name} ({shown}){said}"
        )


Parsed = tuple[list[Finding], Tally, list[str]]


def collect_json_report(
    part: str,
    path_of: Callable[[], Path],
    ctx: CheckContext,
    *,
    what: str,
    parse: Callable[[Any, str], Parsed],
    errors: tuple[type[Exception], ...],
) -> PartResult:
    """One JSON report as a part's result: `path_of()` finds it (or runs the scanner that writes
    it), it is stored as evidence, then parsed; any of `errors` makes the part *not measured*."""
    result = PartResult(part)
    try:
        path = path_of()
        document = read_report(path, ctx, what=what, media_type="application/json")
        result.findings, result.tally, result.notes = parse(document, display(path, ctx))
    except ReportError as error:
        result.not_measured = str(error)
    except errors as error:
        result.not_measured = str(error)
    return result


def excerpt(text: str, limit: int = _EXCERPT) -> str:
    """`text` cut to `limit` characters, saying so."""
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def first_line(text: str, limit: int = 160) -> str:
    """The first non-empty line of `text`, cut to `limit` characters."""
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return excerpt(line, limit)
