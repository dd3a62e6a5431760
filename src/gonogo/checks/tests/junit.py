"""JUnit XML reports, from any producer, reduced to test counts as the producer means them.

Each `<testcase>` element is one test. Each test ends in exactly one bucket, so
`total == passed + failed + errors + skipped`:

- a `<failure>` (or, failing that, a Surefire/nextest `<rerunFailure>`) makes it *failed*;
- else an `<error>` (or `<rerunError>`) makes it an *error*;
- else a `<skipped>`, or a `status` of `disabled`/`notrun` (googletest, CTest, Catch2-style
  reporters write no `<skipped>` for disabled tests), makes it *skipped* (pytest's xfail
  included; its xpass, written as a plain testcase, passes);
- else it *passed*.

A rerun is only what the report marks as one; a name seen twice proves nothing. Mocha and
Jest repeat titles across describe blocks, TestNG data providers and PHPUnit data sets
repeat a method name within one suite, and a report may hold several unnamed testcases:
each of those testcases is a test of its own. What marks a rerun:

- Surefire and nextest write the reruns inside the one testcase: `<flakyFailure>` /
  `<flakyError>` (failed, then passed) and `<rerunFailure>` / `<rerunError>` (failed again);
- pytest-rerunfailures writes each attempt as its own testcase with the same classname and
  name, the failed attempts with no result element at all (they look like passes). So inside
  a suite written by pytest (named `pytest`, its default, or under pytest's
  `<testsuites name="pytest tests">`), a classname + name repeated after a pass-looking
  testcase is a rerun of that test. Repeated after a failure or error it is no rerun: pytest
  writes a teardown error of a failed test as a second testcase; the two stay one test, in
  one bucket (failed before error before skipped);
- gotestsum `--rerun-fails` writes each rerun as another testcase of the package's suite,
  unmarked, but Go names are unique in a package (`go test` renames a repeated subtest
  `name#01`), so in a Go suite (one with a `go.version` property, as gotestsum and
  go-junit-report write) a repeated name is a rerun (or a `-count=N` repetition);
- Xcode results converted by fastlane's trainer write each repetition of a test (retry on
  failure, `-test-iterations`) as its own testcase carrying a `repetition` property
  ("First Run", "Repetition 2 of 3"); the suite's `tests=` counts the test once. A testcase
  with that property is folded with the earlier ones of the same classname + name in its
  suite, like a Go rerun (a parameterised case written once per repetition, each copy
  with the same repetition name, folds too: one test).

A rerun test is counted once and its last attempt decides (so a pass after a failure
passes; a failure after a pass fails). It is *flaky* when that last attempt passed after
at least one failed attempt, as the markers above show.

Counts come from the testcases, not from the suites' `tests=`/`failures=`/`errors=`/
`skipped=`/`disabled=` headers, which producers get wrong (pytest counts a test that fails
and then errors in teardown once in `failures` and again in `errors`; mocha's xunit reporter
puts failures under `errors`; mocha-junit-reporter counts pending tests it does not write).
A suite whose header disagrees with its testcases gives a warning that names both counts.
A suite (or `<testsuites>`) that lists no testcase but whose header says it had tests is
counted from its header, with a warning: a report that lost its testcases still failed.

Per-test outcomes (`parse_junit(..., outcomes=True)`, for the history of flaky tests): one
`TestOutcome` per test as counted above, its id `<classname>::<name>` (the innermost suite's
name when the testcase has no classname; the name alone when they are the same, as jest-junit
writes them), its final outcome, its attempts and whether it
passed only on a rerun. Ids need not be unique (mocha and jest repeat titles): the caller
decides how to fold them.

Memory: the file is streamed; what is kept grows only with the number of distinct tests of
pytest and Go suites and of testcases marked as repetitions (about 100 bytes each, to fold
their reruns), never with the file's size; asked for per-test outcomes, with the number of
tests (up to `MAX_OUTCOMES`).
"""

from __future__ import annotations

__all__ = ["MAX_OUTCOMES", "JUnitSummary", "ListedTest", "TestOutcome", "parse_junit", "sum_summaries"]

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gonogo.checks.tests._xml import XmlContentError, stream_xml

Outcome = Literal["passed", "failed", "error", "skipped"]

_PASSED, _FAILED, _ERROR, _SKIPPED = 0, 1, 2, 3
_OUTCOMES: tuple[Outcome, ...] = ("passed", "failed", "error", "skipped")
_MESSAGE_CHARS = 200
_KEPT_NOTABLE = 500  # tests remembered by name (failing or flaky); bounds memory
_KEPT_WARNINGS = 20  # header disagreements named one by one; the rest are only counted
MAX_OUTCOMES = 100_000  # per-test outcomes kept per file (about 200 bytes each); bounds memory


@dataclass(frozen=True)
class ListedTest:
    """A test worth naming in a summary: one that failed, errored or was flaky."""

    name: str
    outcome: Outcome  # of its final attempt
    attempts: int
    message: str = ""

    def __str__(self) -> str:
        text = f"{self.name} ({self.outcome}"
        if self.attempts > 1:
            text += f" after {self.attempts} attempts"
        text += ")"
        return f"{text}: {self.message}" if self.message else text


@dataclass(frozen=True)
class TestOutcome:
    """One test's result in a report: its final attempt, and whether a rerun saved it."""

    __test__ = False  # not a pytest test class

    id: str  # `<classname or suite>::<name>`; not necessarily unique within a report
    outcome: Outcome  # of its final attempt
    attempts: int  # 1 + its reruns
    passed_on_rerun: bool  # it passed after at least one failed attempt (flaky in this run)

    @property
    def reruns(self) -> int:
        return self.attempts - 1


@dataclass(frozen=True)
class JUnitSummary:
    """Counts of distinct tests, marked reruns folded into their final attempt."""

    __test__ = False  # not a pytest test class, despite the name pattern in callers

    total: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    flaky: int = 0
    duration: float = 0.0  # sum of testcase times, reruns included (not wall time)
    suites: int = 0
    attempts: int = 0  # testcase elements read, reruns included
    failing: tuple[ListedTest, ...] = ()  # first failed/errored tests, in file order
    flaky_tests: tuple[ListedTest, ...] = ()  # first flaky tests, in file order
    warnings: tuple[str, ...] = ()  # where the report contradicts itself, and what was done
    outcomes: tuple[TestOutcome, ...] = ()  # per test, in file order; only when asked for

    @property
    def ran(self) -> int:
        """Tests that were executed: all but the skipped ones."""
        return self.total - self.skipped

    @property
    def pass_rate(self) -> float | None:
        """passed / (total - skipped); None when no test ran (a rate of nothing)."""
        return self.passed / self.ran if self.ran else None


def parse_junit(path: Path, *, max_listed: int = 20, outcomes: bool = False) -> JUnitSummary:
    """Read one JUnit XML file, streaming, and count its tests; with `outcomes`, keep each
    test's outcome too (`JUnitSummary.outcomes`, up to `MAX_OUTCOMES`).

    Raises HostileInputError (DTD, entities, absurd nesting) or InputFileError (empty,
    truncated, malformed, not JUnit), naming the file and line.
    """
    target = _JUnitTarget(max_listed, keep_outcomes=outcomes)
    stream_xml(path, target)
    return target.summary()


def sum_summaries(summaries: Iterable[JUnitSummary], *, max_listed: int = 20) -> JUnitSummary:
    """Add up the summaries of several files (a test in two files counts twice)."""
    items = list(summaries)
    return JUnitSummary(
        total=sum(s.total for s in items),
        passed=sum(s.passed for s in items),
        failed=sum(s.failed for s in items),
        errors=sum(s.errors for s in items),
        skipped=sum(s.skipped for s in items),
        flaky=sum(s.flaky for s in items),
        duration=sum(s.duration for s in items),
        suites=sum(s.suites for s in items),
        attempts=sum(s.attempts for s in items),
        failing=tuple(t for s in items for t in s.failing)[:max_listed],
        flaky_tests=tuple(t for s in items for t in s.flaky_tests)[:max_listed],
        warnings=tuple(w for s in items for w in s.warnings),
        outcomes=tuple(o for s in items for o in s.outcomes),
    )


class _Attempt:
    """What one `<testcase>` element says, filled in as its children stream past."""

    __slots__ = (
        "capture",
        "classname",
        "disabled",
        "kinds",
        "marked_reruns",
        "message",
        "name",
        "repetition",
    )

    def __init__(self, classname: str, name: str, status: str) -> None:
        self.classname = classname
        self.name = name
        self.disabled = status.lower() in _NOT_RUN_STATUSES
        self.kinds: set[str] = set()
        self.marked_reruns = 0  # flaky*/rerun* elements: earlier attempts of this test
        self.message = ""
        self.capture: list[str] | None = None  # text of the first failure/error, bounded
        self.repetition = False  # a `repetition` property: one run of a repeated test (trainer)

    def outcome(self) -> int:
        kinds = self.kinds
        if "failure" in kinds:
            return _FAILED
        if "error" in kinds:
            return _ERROR
        # Surefire writes `failure` plus `rerunFailure`s for a test that failed every
        # run; reruns alone are still failures: nothing says it ever passed.
        if "rerunFailure" in kinds:
            return _FAILED
        if "rerunError" in kinds:
            return _ERROR
        if "skipped" in kinds or self.disabled:
            return _SKIPPED
        return _PASSED

    def display_name(self) -> str:
        if self.classname and self.classname != self.name:
            return f"{self.classname}::{self.name}"
        return self.name or "(unnamed test)"


_RESULT_TAGS = frozenset({"failure", "error", "skipped", "rerunFailure", "rerunError"})
_FLAKY_TAGS = frozenset({"flakyFailure", "flakyError"})
_RERUN_TAGS = frozenset({"rerunFailure", "rerunError", *_FLAKY_TAGS})
_NOT_RUN_STATUSES = frozenset({"disabled", "notrun"})
_PYTEST_SUITE, _PYTEST_ROOT = "pytest", "pytest tests"
_GO_PROPERTY = "go.version"  # written by gotestsum and go-junit-report in each package suite
_REPETITION_PROPERTY = "repetition"  # trainer (Xcode): this testcase is one run of a repeated test
_UNMARKED, _PYTEST, _GO = 0, 1, 2  # how a suite's producer writes reruns

# Header attributes, each compared with the bucket(s) it claims to count.
_HEADER_FIELDS = (("tests", "tests"), ("failures", "failures"), ("errors", "errors"))
_SKIP_ATTRIBUTES = ("skipped", "disabled", "skip")  # `skip`: nose; `disabled`: googletest


class _Suite:
    """One open `<testsuite>`/`<testsuites>`: its header and the counts of its subtree."""

    __slots__ = ("counts", "header", "name", "reruns", "serial")

    def __init__(self, name: str, header: dict[str, int], *, reruns: int, serial: int) -> None:
        self.name = name
        self.header = header
        self.reruns = reruns  # _PYTEST or _GO: a repeated testcase may be a rerun
        self.serial = serial
        self.counts = [0, 0, 0, 0, 0]  # total, then one per outcome (+1 offset)


class _JUnitTarget:
    def __init__(self, max_listed: int, *, keep_outcomes: bool = False) -> None:
        self.max_listed = max_listed
        self.keep_outcomes = keep_outcomes
        # key (as for `notable`) -> (id, outcome, tries, passed on rerun); reruns overwrite
        self.outcomes: dict[object, tuple[str, int, int, bool]] = {}
        self.outcomes_dropped = 0
        self.root_seen = False
        # Innermost last; the bottom frame stands for the document and is never closed.
        self.suites: list[_Suite] = [_Suite("", {}, reruns=_UNMARKED, serial=0)]
        self.suite_count = 0
        self.attempt: _Attempt | None = None
        self.depth_in_case = 0
        # Only for pytest and Go suites and marked repetitions: digest of (suite serial,
        # classname, name) -> outcome | failed_before << 2 | attempts << 3. Small ints and
        # 12-byte digests keep this at ~100 bytes per distinct test.
        self.pytest_seen: dict[bytes, int] = {}
        self.flaky = 0
        self.duration = 0.0
        self.attempts = 0
        self.notable: dict[object, ListedTest] = {}
        self.warnings: list[str] = []
        self.unlisted_warnings = 0

    # -- events -------------------------------------------------------------------------

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        if not self.root_seen:
            self.root_seen = True
            if tag not in ("testsuites", "testsuite"):
                raise XmlContentError(
                    f"not a JUnit XML report: the root element is <{tag}>, "
                    "expected <testsuites> or <testsuite>"
                )
        attempt = self.attempt
        if attempt is not None:
            self.depth_in_case += 1
            if self.depth_in_case != 1:
                # <testcase><properties><property name="repetition" .../>
                if (
                    self.depth_in_case == 2
                    and tag == "property"
                    and attrib.get("name") == _REPETITION_PROPERTY
                ):
                    attempt.repetition = True
                return
            if tag in _RESULT_TAGS:
                attempt.kinds.add(tag)
                if tag in ("failure", "error") and not attempt.message:
                    attempt.message = _first_line(attrib.get("message", ""))
                    if not attempt.message:
                        attempt.capture = []
            if tag in _RERUN_TAGS:
                attempt.marked_reruns += 1
            return
        if tag in ("testsuite", "testsuites"):
            self._open_suite(tag, attrib)
        elif tag == "property" and attrib.get("name") == _GO_PROPERTY:
            self.suites[-1].reruns = _GO
        elif tag == "testcase":
            self.attempt = _Attempt(
                attrib.get("classname", ""), attrib.get("name", ""), attrib.get("status", "")
            )
            self.depth_in_case = 0
            self.duration += _seconds(attrib.get("time"))

    def end(self, tag: str) -> None:
        attempt = self.attempt
        if attempt is not None:
            if self.depth_in_case == 0:  # the </testcase> itself
                self._count(attempt)
                self.attempt = None
                return
            if self.depth_in_case == 1 and attempt.capture is not None:
                attempt.message = _first_line("".join(attempt.capture))
                attempt.capture = None
            self.depth_in_case -= 1
            return
        if tag in ("testsuite", "testsuites") and len(self.suites) > 1:
            self._close_suite(tag)

    def data(self, text: str) -> None:
        attempt = self.attempt
        if attempt is None or attempt.capture is None:
            return
        if sum(map(len, attempt.capture)) < 4 * _MESSAGE_CHARS:
            attempt.capture.append(text)

    # -- suites ---------------------------------------------------------------------------

    def _open_suite(self, tag: str, attrib: dict[str, str]) -> None:
        name = attrib.get("name", "")
        if tag == "testsuite":
            self.suite_count += 1
        parent = self.suites[-1]
        by_pytest = name == _PYTEST_ROOT if tag == "testsuites" else name == _PYTEST_SUITE
        reruns = _PYTEST if by_pytest else parent.reruns
        suite = _Suite(name, _header(attrib), reruns=reruns, serial=self.suite_count)
        self.suites.append(suite)

    def _close_suite(self, tag: str) -> None:
        suite = self.suites.pop()
        header = suite.header
        counts = suite.counts
        what = f"<{tag}{_quoted_name(suite.name)}>"
        if counts[0] == 0 and header.get("tests", 0) > 0:
            counts[:] = _counts_from_header(header)
            self._warn(
                f"{what} lists no testcase but its header says {_describe_header(header)}; "
                f"counted from the header: {_describe_counts(counts)}"
            )
        elif _disagrees(header, counts):
            self._warn(
                f"{what}: its header says {_describe_header(header)} but its testcases give "
                f"{_describe_counts(counts)}; counted from the testcases"
            )
        parent = self.suites[-1].counts
        for index, value in enumerate(counts):
            parent[index] += value

    def _warn(self, text: str) -> None:
        if len(self.warnings) < _KEPT_WARNINGS:
            self.warnings.append(text)
        else:
            self.unlisted_warnings += 1

    # -- counting -------------------------------------------------------------------------

    def _count(self, attempt: _Attempt) -> None:
        self.attempts += 1
        outcome = attempt.outcome()
        suite = self.suites[-1]
        tries = 1 + attempt.marked_reruns
        failed_before = attempt.marked_reruns > 0
        key: object = self.attempts  # an unmarked testcase is a test of its own
        if (suite.reruns != _UNMARKED or attempt.repetition) and attempt.name:
            key, outcome, tries, failed_before = self._fold_repeat(suite, attempt, outcome)
        else:
            suite.counts[0] += 1
        suite.counts[1 + outcome] += 1
        is_flaky = outcome == _PASSED and failed_before
        if is_flaky:
            self.flaky += 1
        if self.keep_outcomes:
            self._keep_outcome(key, suite, attempt, (outcome, tries, is_flaky))

        if outcome in (_FAILED, _ERROR) or is_flaky:
            kept = self.notable.get(key)
            if kept is not None and kept.outcome == _OUTCOMES[outcome] and kept.attempts == tries:
                return  # a teardown error after a failure: keep the failure's message
            if kept is not None or len(self.notable) < _KEPT_NOTABLE:
                message = attempt.message[:_MESSAGE_CHARS] if outcome != _PASSED else ""
                self.notable[key] = ListedTest(attempt.display_name(), _OUTCOMES[outcome], tries, message)
        else:
            self.notable.pop(key, None)

    def _keep_outcome(
        self, key: object, suite: _Suite, attempt: _Attempt, result: tuple[int, int, bool]
    ) -> None:
        if key not in self.outcomes and len(self.outcomes) >= MAX_OUTCOMES:
            self.outcomes_dropped += 1
            return
        scope = attempt.classname or suite.name
        name = attempt.name or "(unnamed test)"
        test_id = f"{scope}::{name}" if scope and scope != name else name  # jest: classname == name
        self.outcomes[key] = (test_id, *result)

    def _fold_repeat(self, suite: _Suite, attempt: _Attempt, outcome: int) -> tuple[bytes, int, int, bool]:
        """A repeat of classname + name in a pytest or Go suite, or of a testcase marked as
        a repetition: (key, outcome, tries, failed_before).

        In Go (gotestsum --rerun-fails) and for marked repetitions (trainer) every repeat
        is a rerun. In pytest, after a
        pass-looking testcase it is a pytest-rerunfailures rerun (the plugin writes the
        failed attempts it reruns as empty testcases); after a failure or error it is the
        same attempt's teardown error, which pytest writes as a second testcase, and the
        test stays in one bucket, failure first.
        """
        key = hashlib.blake2b(
            f"{suite.serial}\0{attempt.classname}\0{attempt.name}".encode("utf-8", "surrogatepass"),
            digest_size=12,
        ).digest()
        previous = self.pytest_seen.get(key)
        if previous is None:
            tries, failed_before = 1, False
            suite.counts[0] += 1
        else:
            old_outcome = previous & 3
            suite.counts[1 + old_outcome] -= 1
            tries, failed_before = previous >> 3, bool(previous & 4)
            if old_outcome == _PASSED and failed_before:
                self.flaky -= 1
            if suite.reruns == _GO or attempt.repetition:
                tries, failed_before = tries + 1, failed_before or old_outcome != _PASSED
            elif old_outcome == _PASSED:
                tries, failed_before = tries + 1, True
            elif outcome != _PASSED:
                outcome = min(outcome, old_outcome)  # failed before error before skipped
            else:
                outcome = old_outcome
        self.pytest_seen[key] = outcome | (4 if failed_before else 0) | (tries << 3)
        return key, outcome, tries, failed_before

    def summary(self) -> JUnitSummary:
        total, passed, failed, errors, skipped = self.suites[0].counts
        listed = list(self.notable.values())
        warnings = list(self.warnings)
        if self.unlisted_warnings:
            warnings.append(f"... and {self.unlisted_warnings} more suites whose header disagrees")
        if self.outcomes_dropped:
            warnings.append(
                f"per-test outcomes kept for the first {MAX_OUTCOMES} tests only; "
                f"{self.outcomes_dropped} more are counted but left out of the history of flaky tests"
            )
        return JUnitSummary(
            total=total,
            passed=passed,
            failed=failed,
            errors=errors,
            skipped=skipped,
            flaky=self.flaky,
            duration=self.duration,
            suites=self.suite_count,
            attempts=self.attempts,
            failing=tuple(t for t in listed if t.outcome != "passed")[: self.max_listed],
            flaky_tests=tuple(t for t in listed if t.outcome == "passed")[: self.max_listed],
            warnings=tuple(warnings),
            outcomes=tuple(
                TestOutcome(test_id, _OUTCOMES[outcome], tries, rerun_passed)
                for test_id, outcome, tries, rerun_passed in self.outcomes.values()
            ),
        )


# -- suite headers --------------------------------------------------------------------------


def _header(attrib: dict[str, str]) -> dict[str, int]:
    """The counts a suite's attributes claim; attributes absent or not a count are left out."""
    header: dict[str, int] = {}
    for attribute, field in _HEADER_FIELDS:
        value = _count_attribute(attrib.get(attribute))
        if value is not None:
            header[field] = value
    skips = [_count_attribute(attrib.get(attribute)) for attribute in _SKIP_ATTRIBUTES]
    if any(value is not None for value in skips):
        header["skipped"] = sum(value or 0 for value in skips)
    return header


def _count_attribute(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = int(text.strip())
    except ValueError:
        return None
    return value if value >= 0 else None


def _disagrees(header: dict[str, int], counts: list[int]) -> bool:
    total, _passed, failed, errors, skipped = counts
    claimed = {"tests": total, "failures": failed, "errors": errors, "skipped": skipped}
    return any(header[field] != value for field, value in claimed.items() if field in header)


def _counts_from_header(header: dict[str, int]) -> list[int]:
    total = header.get("tests", 0)
    # Clamped so that the buckets never add up to more tests than the header claims.
    failed = min(header.get("failures", 0), total)
    errors = min(header.get("errors", 0), total - failed)
    skipped = min(header.get("skipped", 0), total - failed - errors)
    return [total, total - failed - errors - skipped, failed, errors, skipped]


def _describe_header(header: dict[str, int]) -> str:
    return ", ".join(f"{field}={value}" for field, value in header.items())


def _describe_counts(counts: list[int]) -> str:
    total, passed, failed, errors, skipped = counts
    return f"{total} tests ({passed} passed, {failed} failed, {errors} errors, {skipped} skipped)"


def _quoted_name(name: str) -> str:
    return f' name="{name[:_MESSAGE_CHARS]}"' if name else ""


def _seconds(text: str | None) -> float:
    """A testcase's `time`; Surefire writes "1,234.5" past 1000 s. Garbage counts as 0."""
    if not text:
        return 0.0
    try:
        value = float(text.replace(",", ""))
    except ValueError:
        return 0.0
    return value if math.isfinite(value) and value >= 0 else 0.0


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:_MESSAGE_CHARS]
    return ""
