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

Per-test outcomes go to the artifact `test-outcomes.json` (`gonogo.evidence.test_outcomes`),
the evidence the history of flaky tests reads in later runs (docs/flaky-tests.md):
`{"format": 1, "tests": [{"id", "outcome", "reruns", "passed_on_rerun", "cases"}]}`, one
entry per test id (`<classname or suite>::<name>`); testcases that share an id (mocha and
jest repeat titles, a test in two reports) are folded into one: failed before error before
passed before skipped, their reruns added, `cases` says how many.

A report only counts if this run wrote it: files matching the globs that existed before
the command started and were not rewritten are ignored (never deleted). A command that
cannot start, times out, or leaves no readable report gives an `error` outcome and no test
metrics, so their gates are *not measured* rather than passed.
"""

from __future__ import annotations

__all__ = ["TestsCheck", "outcomes_document"]

import json
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from gonogo.checks.base import ArtifactRef, CheckContext, CheckKind, CheckOutcome, MetricPatterns, PlanNames
from gonogo.checks.command import CommandRun
from gonogo.checks.tests.coverage import CoverageReport, merge_reports, parse_coverage
from gonogo.checks.tests.junit import JUnitSummary, TestOutcome, parse_junit, sum_summaries
from gonogo.checks.tests.settings import TestsSettings
from gonogo.errors import InputFileError
from gonogo.evidence.test_outcomes import OUTCOMES_ARTIFACT, OUTCOMES_FORMAT

LISTED_TESTS = 20  # failing / flaky tests named in the outcome details


class TestsCheck(CheckKind[TestsSettings]):
    """Run the project's own test suite (any language) and ingest JUnit XML and coverage."""

    __test__: ClassVar[bool] = False  # a check kind, not a pytest test class

    kind = "tests"
    series_metrics = frozenset[str]()
    live_metrics = frozenset[str]()  # nothing followed while it runs
    Settings = TestsSettings

    @classmethod
    def metric_names(cls, settings: TestsSettings, plan: PlanNames) -> MetricPatterns:
        names: list[str] = []
        if settings.command is not None:
            names += ["command.duration", "command.exit_code"]
        if settings.junit:
            names += ["total", "passed", "failed", "errors", "skipped", "flaky", "duration", "pass_rate"]
        if settings.coverage is not None:
            names += ["coverage.lines", "coverage.branches"]
            names += ["coverage.critical.lines"] if settings.coverage.critical else []
        return names

    @classmethod
    def writes_test_outcomes(cls, settings: TestsSettings) -> bool:
        return bool(settings.junit)

    def run(self, settings: TestsSettings, ctx: CheckContext) -> CheckOutcome:
        return _Run(settings, ctx).run()


class _Run:
    """One execution of the check; collects problems and details as it goes."""

    def __init__(self, settings: TestsSettings, ctx: CheckContext) -> None:
        self.settings = settings
        self.ctx = ctx
        self.command = CommandRun(
            settings, ctx, noun="test", reports="reports", name="tests", dimension="tests"
        )
        self.cwd = self.command.cwd
        self.junit_globs = [ctx.expand(pattern) for pattern in settings.junit]
        coverage = settings.coverage
        self.coverage_glob = ctx.expand(coverage.file) if coverage else None
        self.problems: list[str] = []  # each one makes the outcome an error
        self.notes: list[str] = []
        self.summary_parts: list[str] = []

    def run(self) -> CheckOutcome:
        globs = [*self.junit_globs, *([self.coverage_glob] if self.coverage_glob else [])]
        failed = self.command.run(globs)
        if failed is not None:
            return failed
        if self.command.summary is not None:
            self.summary_parts.append(self.command.summary)
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
            if self.command.output_tail:
                details.append("last output of the command: " + " ⏎ ".join(self.command.output_tail))
            return CheckOutcome("error", message, details)
        return CheckOutcome("completed", "; ".join(self.summary_parts), details)

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
            name = self.command.artifact_name(path)
            artifact = ctx.store_artifact(path, name=name, media_type="application/xml")
            artifacts.append(artifact)
            try:
                summary = parse_junit(path, max_listed=LISTED_TESTS, outcomes=True)
            except InputFileError as error:
                # One unreadable file makes every count partial, so none is recorded.
                self.problems.append(str(error))
                return None
            summaries.append(summary)
            # Where a report contradicts itself (headers vs testcases), the reader should know.
            self.notes += [f"{name}: {warning}" for warning in summary.warnings]
            manifest.append(_manifest_entry(name, artifact, summary))
        total = sum_summaries(summaries, max_listed=LISTED_TESTS)
        ctx.store_artifact(
            json.dumps(outcomes_document(total.outcomes), indent=1).encode(),
            name=OUTCOMES_ARTIFACT,
            media_type="application/json",
        )
        source = self._source(files, self.junit_globs)
        artifact = artifacts[0] if len(artifacts) == 1 else self._manifest("junit-reports.json", manifest)
        for metric in ("total", "passed", "failed", "errors", "skipped", "flaky"):
            self.command.record(metric, getattr(total, metric), "count", source, artifact)
        self.command.record("duration", total.duration, "seconds", source, artifact)
        if total.pass_rate is not None:
            self.command.record("pass_rate", total.pass_rate, "ratio", source, artifact)
        else:
            self.notes.append(
                f"pass_rate not recorded: no test ran ({total.total} tests, {total.skipped} skipped)"
            )
        self.summary_parts.append(_describe(total))
        exit_code = self.command.exit_code
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
        names = [self.command.artifact_name(path) for path in files]
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
            self.command.record("coverage.lines", totals.line_rate, "ratio", source, artifact, "coverage")
            parts.append(f"{totals.line_rate:.1%} of lines")
        if totals.branch_rate is None:
            self.notes.append("coverage.branches not recorded: the report has no branch data")
        else:
            rate = totals.branch_rate
            self.command.record("coverage.branches", rate, "ratio", source, artifact, "coverage")
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
                self.command.record("coverage.critical.lines", rate, "ratio", source, artifact, "coverage")
                parts.append(f"{rate:.1%} of critical lines ({critical.files} files)")
        self.summary_parts.append("coverage: " + (", ".join(parts) or "nothing measurable"))

    # -- helpers ------------------------------------------------------------------------------------

    def _fresh(self, globs: Sequence[str], what: str) -> list[Path]:
        """Files matching `globs` that this run wrote; records a problem when there are none."""
        found = self.command.find(globs, what)
        if found.stale_note is not None:
            self.notes.append(found.stale_note)
        if not found.fresh:
            where = ", ".join(globs)
            if not self.command.ran:
                self.problems.append(f"no {what} found: nothing matches {where} in {self.cwd}")
            else:
                self.problems.append(
                    f"the command wrote no {what}: nothing new matches {where} in {self.cwd}"
                )
        return found.fresh

    def _source(self, files: Sequence[Path], globs: Sequence[str]) -> str:
        if len(files) <= 3:
            reports = ", ".join(self.command.display(path) for path in files)
        else:
            reports = f"{len(files)} files matching " + ", ".join(globs)
        return f"{reports} written by `{self.command.text}`" if self.command.text else reports


# Which outcome a folded id keeps: the worst of its testcases.
_OUTCOME_RANK = {"failed": 0, "error": 1, "passed": 2, "skipped": 3}


def outcomes_document(outcomes: Sequence[TestOutcome]) -> dict[str, object]:
    """The `test-outcomes.json` document: one entry per test id, in first-seen order."""
    folded: dict[str, TestOutcome] = {}
    cases: dict[str, int] = {}
    for outcome in outcomes:
        kept = folded.get(outcome.id)
        cases[outcome.id] = cases.get(outcome.id, 0) + 1
        if kept is None:
            folded[outcome.id] = outcome
            continue
        worst = min(kept.outcome, outcome.outcome, key=_OUTCOME_RANK.__getitem__)
        folded[outcome.id] = TestOutcome(
            outcome.id,
            worst,
            kept.attempts + outcome.attempts - 1,  # reruns add up
            kept.passed_on_rerun or outcome.passed_on_rerun,
        )
    tests = [
        {
            "id": test.id,
            "outcome": test.outcome,
            "reruns": test.reruns,
            "passed_on_rerun": test.passed_on_rerun,
            "cases": cases[test.id],
        }
        for test in folded.values()
    ]
    return {"format": OUTCOMES_FORMAT, "tests": tests}


def _media_type(path: Path) -> str:
    suffix = path.suffix.lower()
    return {".xml": "application/xml", ".json": "application/json"}.get(suffix, "text/plain")


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
