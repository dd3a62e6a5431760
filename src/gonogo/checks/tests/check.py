"""The `tests` check kind: run a test command, then ingest the reports it wrote.

Metrics (names relative to the check; see docs/metrics.md):

- `command.exit_code`, `command.duration` - how the command ended, and its wall time.
- `total`, `passed`, `failed`, `errors`, `skipped`, `flaky` - distinct tests, reruns
  folded into their final attempt (see `junit`).
- `pass_rate` = passed / (total - skipped): of the tests that ran, the share whose final
  attempt passed. Flaky tests that passed in the end count as passed; gate on `flaky` to
  catch them. Not recorded when no test ran.
- `duration` - the sum of the testcases' own times (reruns included); with parallel
  runners it can exceed the wall time.
- `coverage.lines`, `coverage.branches`, `coverage.critical.lines` - ratios; see
  `coverage`.

A report only counts if this run wrote it: files matching the globs that existed before
the command started and were not rewritten are ignored (never deleted). A command that
cannot start, times out, or leaves no readable report gives an `error` outcome and no test
metrics, so their gates are *not measured* rather than passed.
"""

from __future__ import annotations

__all__ = ["TestsCheck"]

import glob
import json
import os
import shlex
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import ClassVar

from gonogo.checks.base import ArtifactRef, CheckContext, CheckKind, CheckOutcome, CommandResult
from gonogo.checks.tests.coverage import CoverageReport, merge_reports, parse_coverage
from gonogo.checks.tests.junit import JUnitSummary, parse_junit, sum_summaries
from gonogo.checks.tests.settings import TestsSettings
from gonogo.errors import InputFileError
from gonogo.units import Unit

LISTED_TESTS = 20  # failing / flaky tests named in the outcome details

Signature = tuple[int, int, int]  # mtime_ns, size, inode: changes when a file is rewritten


class TestsCheck(CheckKind[TestsSettings]):
    """Run the project's own test suite (any language) and ingest JUnit XML and coverage."""

    __test__: ClassVar[bool] = False  # a check kind, not a pytest test class

    kind = "tests"
    Settings = TestsSettings

    def run(self, settings: TestsSettings, ctx: CheckContext) -> CheckOutcome:
        return _Run(settings, ctx).run()


class _Run:
    """One execution of the check; collects problems and details as it goes."""

    def __init__(self, settings: TestsSettings, ctx: CheckContext) -> None:
        self.settings = settings
        self.ctx = ctx
        self.cwd = ctx.plan_dir / ctx.expand(settings.cwd) if settings.cwd else ctx.plan_dir
        self.junit_globs = [ctx.expand(pattern) for pattern in settings.junit]
        coverage = settings.coverage
        self.coverage_glob = ctx.expand(coverage.file) if coverage else None
        self.problems: list[str] = []  # each one makes the outcome an error
        self.notes: list[str] = []
        self.summary_parts: list[str] = []
        self.command_text: str | None = None
        self.window: tuple[datetime, datetime] | None = None
        self.before: dict[str, Signature] | None = None  # None: no command, all files count
        self.exit_code: int | None = None
        self.output_tail: list[str] = []  # the command's last output lines

    def run(self) -> CheckOutcome:
        if not self.cwd.is_dir():
            return CheckOutcome("error", f"the check's cwd {self.cwd} is not a directory")
        if self.settings.command is not None:
            result = self._run_command()
            if isinstance(result, CheckOutcome):
                return result
        summary = self._ingest_junit() if self.junit_globs else None
        if self.coverage_glob is not None:
            self._ingest_coverage(self.coverage_glob)
        details = list(self.notes)
        if summary is not None:
            details += [f"failing: {test}" for test in summary.failing]
            hidden = summary.failed + summary.errors - len(summary.failing)
            if hidden > 0:
                details.append(f"... and {hidden} more failing tests")
            details += [f"flaky: {test}" for test in summary.flaky_tests]
        if self.problems:
            message = "; ".join(self.problems)
            if self.summary_parts:
                message += " (measured: " + "; ".join(self.summary_parts) + ")"
            if self.output_tail:
                details.append("last output of the command: " + " ⏎ ".join(self.output_tail))
            return CheckOutcome("error", message, details)
        return CheckOutcome("completed", "; ".join(self.summary_parts), details)

    # -- the command ---------------------------------------------------------------------------

    def _run_command(self) -> CommandResult | CheckOutcome:
        settings, ctx = self.settings, self.ctx
        command = settings.command
        argv: str | list[str]
        if isinstance(command, str) and settings.shell:
            argv = ctx.expand(command)
            self.command_text = argv
        elif isinstance(command, str):
            # Split before expanding, so a placeholder's value with spaces stays one word.
            argv = [ctx.expand(word) for word in shlex.split(command)]
            self.command_text = shlex.join(argv)
        else:
            argv = [ctx.expand(part) for part in command or []]
            self.command_text = shlex.join(argv)
        env = {key: ctx.expand(value) for key, value in settings.env.items()}
        globs = [*self.junit_globs, *([self.coverage_glob] if self.coverage_glob else [])]
        # Taken just before the start: any of these files unchanged afterwards is stale.
        self.before = {str(path): _signature(path) for path in _find(self.cwd, globs)}
        result = ctx.run_command(
            argv,
            cwd=self.cwd,
            env=env,
            shell=settings.shell,
            timeout=settings.timeout,
            name="tests",
        )
        if result.start_error is not None or (result.returncode is None and not result.timed_out):
            why = result.start_error or "it ended without an exit status"
            return CheckOutcome(
                "error", f"the test command could not be started: {why} ({self.command_text})"
            )
        self.window = (result.started_at, result.ended_at)
        self._metric("command.duration", result.duration, "seconds", self.command_text, result.output)
        if result.timed_out or result.returncode is None:
            return CheckOutcome(
                "error",
                f"the test command timed out after {result.duration:.1f} s and was stopped; "
                "its reports, if any, are incomplete and were not counted",
            )
        self.exit_code = result.returncode
        self.output_tail = result.output_tail
        self._metric("command.exit_code", result.returncode, "number", self.command_text, result.output)
        self.summary_parts.append(f"command exited {result.returncode} in {result.duration:.1f} s")
        return result

    # -- JUnit ----------------------------------------------------------------------------------

    def _ingest_junit(self) -> JUnitSummary | None:
        files = self._fresh(self.junit_globs, "JUnit report")
        if not files:
            return None
        ctx = self.ctx
        summaries: list[JUnitSummary] = []
        manifest: list[dict[str, object]] = []
        artifacts: list[ArtifactRef] = []
        for path in files:
            name = self._display(path)
            artifact = ctx.store_artifact(path, name=name, media_type="application/xml")
            artifacts.append(artifact)
            try:
                summary = parse_junit(path, max_listed=LISTED_TESTS)
            except InputFileError as error:
                # One unreadable file makes every count partial, so none is recorded.
                self.problems.append(str(error))
                return None
            summaries.append(summary)
            manifest.append(_manifest_entry(name, artifact, summary))
        total = sum_summaries(summaries, max_listed=LISTED_TESTS)
        source = self._source(files, self.junit_globs)
        artifact = artifacts[0] if len(artifacts) == 1 else self._manifest("junit-reports.json", manifest)
        for metric in ("total", "passed", "failed", "errors", "skipped", "flaky"):
            self._metric(metric, getattr(total, metric), "count", source, artifact)
        self._metric("duration", total.duration, "seconds", source, artifact)
        if total.pass_rate is not None:
            self._metric("pass_rate", total.pass_rate, "ratio", source, artifact)
        else:
            self.notes.append(
                f"pass_rate not recorded: no test ran ({total.total} tests, {total.skipped} skipped)"
            )
        self.summary_parts.append(_describe(total))
        exit_code = self.exit_code
        if exit_code not in (None, 0) and total.failed + total.errors == 0:
            self.notes.append(
                f"the command exited {exit_code} although its reports show no failure or "
                "error: a crash, a collection error or a coverage threshold may have cut the "
                "run short; gate on command.exit_code to catch this"
            )
        return total

    def _manifest(self, name: str, entries: list[dict[str, object]]) -> ArtifactRef:
        """Several report files: one artifact that lists each stored report, so a metric
        computed from all of them still points at every one."""
        content = json.dumps({"reports": entries}, indent=2).encode()
        return self.ctx.store_artifact(content, name=name, media_type="application/json")

    # -- coverage -------------------------------------------------------------------------------

    def _ingest_coverage(self, pattern: str) -> None:
        coverage = self.settings.coverage
        assert coverage is not None
        files = self._fresh([pattern], "coverage report")
        if not files:
            return
        reports: list[CoverageReport] = []
        artifacts: list[ArtifactRef] = []
        names = [self._display(path) for path in files]
        try:
            for path, name in zip(files, names, strict=True):
                # Stored before parsing: a report we refuse is evidence too.
                artifacts.append(self.ctx.store_artifact(path, name=name, media_type=_media_type(path)))
                reports.append(parse_coverage(path, coverage.format, max_json_bytes=coverage.max_json_size))
            report = reports[0] if len(reports) == 1 else merge_reports(reports, names)
        except InputFileError as error:
            self.problems.append(str(error))
            return
        source = self._source(files, [pattern])
        if len(artifacts) == 1:
            artifact = artifacts[0]
        else:
            entries: list[dict[str, object]] = [
                {"file": name, "sha256": ref.sha256, "format": part.format, "files": len(part.files)}
                for name, ref, part in zip(names, artifacts, reports, strict=True)
            ]
            artifact = self._manifest("coverage-reports.json", entries)
        totals = report.totals()
        parts: list[str] = []
        if totals.line_rate is None:
            self.notes.append("coverage.lines not recorded: the coverage report lists no lines")
        else:
            self._metric("coverage.lines", totals.line_rate, "ratio", source, artifact, "coverage")
            parts.append(f"{totals.line_rate:.1%} of lines")
        if totals.branch_rate is None:
            self.notes.append("coverage.branches not recorded: the report has no branch data")
        else:
            rate = totals.branch_rate
            self._metric("coverage.branches", rate, "ratio", source, artifact, "coverage")
            parts.append(f"{rate:.1%} of branches")
        if coverage.critical:
            globs = [self.ctx.expand(pattern) for pattern in coverage.critical]
            critical = report.select(globs, root=self.cwd)
            if critical is None:
                sample = ", ".join(f.path for f in report.files[:5]) or "none"
                self.notes.append(
                    "coverage.critical.lines not recorded: no file in the coverage report "
                    f"matches the critical globs {globs} (the report's paths look like: "
                    f"{sample})"
                )
            elif critical.line_rate is None:
                self.notes.append(
                    f"coverage.critical.lines not recorded: the {critical.files} critical "
                    "files have no executable lines"
                )
            else:
                rate = critical.line_rate
                self._metric("coverage.critical.lines", rate, "ratio", source, artifact, "coverage")
                parts.append(f"{rate:.1%} of critical lines ({critical.files} files)")
        self.summary_parts.append("coverage: " + (", ".join(parts) or "nothing measurable"))

    # -- helpers ------------------------------------------------------------------------------------

    def _fresh(self, globs: Sequence[str], what: str) -> list[Path]:
        """Files matching `globs` that this run wrote; records a problem when there are none."""
        found = _find(self.cwd, globs)
        before = self.before
        if before is None:
            fresh, stale = found, []
        else:
            fresh = [p for p in found if before.get(str(p)) != _signature(p)]
            stale = [p for p in found if before.get(str(p)) == _signature(p)]
        if stale:
            names = ", ".join(self._display(p) for p in stale[:5])
            self.notes.append(
                f"ignored {len(stale)} {what} file(s) left by an earlier run "
                f"(unchanged by this command): {names}"
            )
        if not fresh:
            where = ", ".join(globs)
            if before is None:
                self.problems.append(f"no {what} found: nothing matches {where} in {self.cwd}")
            else:
                self.problems.append(
                    f"the command wrote no {what}: nothing new matches {where} in {self.cwd}"
                )
        return fresh

    def _metric(
        self,
        name: str,
        value: float,
        unit: Unit,
        source: str,
        artifact: ArtifactRef | None,
        dimension: str = "tests",
    ) -> None:
        self.ctx.record_metric(
            name,
            float(value),
            unit,
            dimension=dimension,
            source=source,
            artifact=artifact,
            window=self.window,
        )

    def _source(self, files: Sequence[Path], globs: Sequence[str]) -> str:
        if len(files) <= 3:
            reports = ", ".join(self._display(path) for path in files)
        else:
            reports = f"{len(files)} files matching " + ", ".join(globs)
        return f"{reports} written by `{self.command_text}`" if self.command_text else reports

    def _display(self, path: Path) -> str:
        try:
            return path.relative_to(self.cwd).as_posix()
        except ValueError:
            return str(path)


def _find(cwd: Path, globs: Sequence[str]) -> list[Path]:
    """Regular files matching any glob (relative to cwd, or absolute), sorted, unique."""
    found: set[Path] = set()
    for pattern in globs:
        full = pattern if os.path.isabs(pattern) else os.path.join(glob.escape(str(cwd)), pattern)
        found.update(Path(match) for match in glob.glob(full, recursive=True))
    return sorted(path for path in found if path.is_file())


def _media_type(path: Path) -> str:
    suffix = path.suffix.lower()
    return {".xml": "application/xml", ".json": "application/json"}.get(suffix, "text/plain")


def _signature(path: Path) -> Signature:
    try:
        stat = path.stat()
    except OSError:
        return (-1, -1, -1)
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


def _manifest_entry(name: str, artifact: ArtifactRef, summary: JUnitSummary) -> dict[str, object]:
    return {
        "file": name,
        "sha256": artifact.sha256,
        "total": summary.total,
        "passed": summary.passed,
        "failed": summary.failed,
        "errors": summary.errors,
        "skipped": summary.skipped,
        "flaky": summary.flaky,
        "duration": summary.duration,
    }


def _describe(summary: JUnitSummary) -> str:
    text = (
        f"{summary.total} tests: {summary.passed} passed, {summary.failed} failed, "
        f"{summary.errors} errors, {summary.skipped} skipped"
    )
    if summary.flaky:
        text += f", {summary.flaky} flaky"
    if summary.pass_rate is not None:
        text += f" (pass rate {summary.pass_rate:.2%})"
    return text
