"""The `tests` check kind: a project's own test suites, any language, through JUnit XML
and coverage reports.

The parsers (`parse_junit`, `parse_coverage`, ...) are pure functions of a file, usable
without a check context.
"""

from gonogo.checks.tests.check import TestsCheck
from gonogo.checks.tests.coverage import (
    CoverageReport,
    CoverageTotals,
    FileCoverage,
    detect_format,
    parse_coverage,
)
from gonogo.checks.tests.junit import JUnitSummary, ListedTest, TestOutcome, parse_junit, sum_summaries
from gonogo.checks.tests.settings import CoverageSettings, TestsSettings

__all__ = [
    "CoverageReport",
    "CoverageSettings",
    "CoverageTotals",
    "FileCoverage",
    "JUnitSummary",
    "ListedTest",
    "TestOutcome",
    "TestsCheck",
    "TestsSettings",
    "detect_format",
    "parse_coverage",
    "parse_junit",
    "sum_summaries",
]
