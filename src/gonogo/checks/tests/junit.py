"""JUnit XML reports, from any producer, reduced to test counts.

Counts come from the `<testcase>` elements, never from the suites' `tests=`/`failures=`
attributes, which producers get wrong (pytest counts a test that fails and then errors in
teardown twice; Surefire's `tests=` includes reruns). Each testcase ends in exactly one
bucket, so `total == passed + failed + errors + skipped`:

- a `<failure>` (or, failing that, a Surefire `<rerunFailure>`) makes it *failed*;
- else an `<error>` (or `<rerunError>`) makes it an *error*;
- else a `<skipped>` makes it *skipped* (pytest's xfail included);
- else it *passed*.

A test is identified by its innermost suite's name, its classname and its name. When the
same test appears more than once in a file, it was run again; the last attempt decides
its outcome and it is counted once. Reruns are how flakiness shows, so a test is *flaky*
when its final attempt passed and it either carries Surefire `<flakyFailure>` /
`<flakyError>` elements or was attempted more than once (rerun tools repeat a test only
after it failed, and pytest-rerunfailures writes the failed attempts as empty testcases
that look like passes).

Memory: the file is streamed; what is kept grows with the number of distinct tests
(about 100 bytes each), never with the file's size or captured output.
"""

from __future__ import annotations

__all__ = ["JUnitSummary", "ListedTest", "parse_junit", "sum_summaries"]

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
class JUnitSummary:
    """Counts of distinct tests, after reruns are folded into their final attempt."""

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

    @property
    def ran(self) -> int:
        """Tests that were executed: all but the skipped ones."""
        return self.total - self.skipped

    @property
    def pass_rate(self) -> float | None:
        """passed / (total - skipped); None when no test ran (a rate of nothing)."""
        return self.passed / self.ran if self.ran else None


def parse_junit(path: Path, *, max_listed: int = 20) -> JUnitSummary:
    """Read one JUnit XML file, streaming, and count its tests.

    Raises HostileInputError (DTD, entities, absurd nesting) or InputFileError (empty,
    truncated, malformed, not JUnit), naming the file and line.
    """
    target = _JUnitTarget(max_listed)
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
    )


class _Attempt:
    """What one `<testcase>` element says, filled in as its children stream past."""

    __slots__ = ("capture", "classname", "flaky_marker", "kinds", "message", "name", "suite")

    def __init__(self, suite: str, classname: str, name: str) -> None:
        self.suite = suite
        self.classname = classname
        self.name = name
        self.kinds: set[str] = set()
        self.flaky_marker = False
        self.message = ""
        self.capture: list[str] | None = None  # text of the first failure/error, bounded

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
        if "skipped" in kinds:
            return _SKIPPED
        return _PASSED

    def display_name(self) -> str:
        if self.classname and self.classname != self.name:
            return f"{self.classname}::{self.name}"
        return self.name or "(unnamed test)"


_RESULT_TAGS = frozenset({"failure", "error", "skipped", "rerunFailure", "rerunError"})
_FLAKY_TAGS = frozenset({"flakyFailure", "flakyError"})


class _JUnitTarget:
    def __init__(self, max_listed: int) -> None:
        self.max_listed = max_listed
        self.root_seen = False
        self.suites: list[str] = []  # names of the open <testsuite>s, innermost last
        self.suite_count = 0
        self.attempt: _Attempt | None = None
        self.depth_in_case = 0
        # digest of (suite, classname, name) -> outcome | flaky_evidence << 2 | attempts << 3
        # Small ints and 12-byte digests keep this at ~100 bytes per distinct test.
        self.seen: dict[bytes, int] = {}
        self.counts = [0, 0, 0, 0]
        self.flaky = 0
        self.duration = 0.0
        self.attempts = 0
        self.notable: dict[bytes, ListedTest] = {}

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
                return
            if tag in _RESULT_TAGS:
                attempt.kinds.add(tag)
                if tag in ("failure", "error") and not attempt.message:
                    attempt.message = _first_line(attrib.get("message", ""))
                    if not attempt.message:
                        attempt.capture = []
            elif tag in _FLAKY_TAGS:
                attempt.flaky_marker = True
            return
        if tag == "testsuite":
            self.suites.append(attrib.get("name", ""))
            self.suite_count += 1
        elif tag == "testcase":
            suite = self.suites[-1] if self.suites else ""
            self.attempt = _Attempt(suite, attrib.get("classname", ""), attrib.get("name", ""))
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
        if tag == "testsuite" and self.suites:
            self.suites.pop()

    def data(self, text: str) -> None:
        attempt = self.attempt
        if attempt is None or attempt.capture is None:
            return
        if sum(map(len, attempt.capture)) < 4 * _MESSAGE_CHARS:
            attempt.capture.append(text)

    # -- counting -------------------------------------------------------------------------

    def _count(self, attempt: _Attempt) -> None:
        self.attempts += 1
        outcome = attempt.outcome()
        key = hashlib.blake2b(
            f"{attempt.suite}\0{attempt.classname}\0{attempt.name}".encode("utf-8", "surrogatepass"),
            digest_size=12,
        ).digest()
        previous = self.seen.get(key)
        if previous is None:
            tries, evidence = 1, attempt.flaky_marker
        else:
            old_outcome = previous & 3
            self.counts[old_outcome] -= 1
            if old_outcome == _PASSED and previous & 4:
                self.flaky -= 1
            tries, evidence = (previous >> 3) + 1, True  # a repeat is a rerun
        self.counts[outcome] += 1
        is_flaky = outcome == _PASSED and evidence
        if is_flaky:
            self.flaky += 1
        self.seen[key] = outcome | (4 if evidence else 0) | (tries << 3)

        if outcome in (_FAILED, _ERROR) or is_flaky:
            if key in self.notable or len(self.notable) < _KEPT_NOTABLE:
                message = attempt.message[:_MESSAGE_CHARS] if outcome != _PASSED else ""
                self.notable[key] = ListedTest(attempt.display_name(), _OUTCOMES[outcome], tries, message)
        else:
            self.notable.pop(key, None)

    def summary(self) -> JUnitSummary:
        passed, failed, errors, skipped = self.counts
        listed = list(self.notable.values())
        return JUnitSummary(
            total=len(self.seen),
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
        )


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
