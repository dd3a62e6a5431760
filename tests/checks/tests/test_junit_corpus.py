"""Every report of the corpus (real files from each producer) is counted as its producer
means it; tests/fixtures/junit/corpus/README.md says where each file comes from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gonogo.checks.tests.junit import parse_junit

CORPUS = Path(__file__).resolve().parents[2] / "fixtures" / "junit" / "corpus"
EXPECTED: dict[str, dict[str, object]] = {
    name: entry
    for name, entry in json.loads((CORPUS / "expected.json").read_text()).items()
    if name != "_about"
}


def test_every_report_of_the_corpus_has_an_expectation() -> None:
    reports = {path.relative_to(CORPUS).as_posix() for path in CORPUS.rglob("*.xml")}
    assert reports == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_report_is_counted_as_its_producer_means_it(name: str) -> None:
    summary = parse_junit(CORPUS / name)
    counted = [summary.total, summary.passed, summary.failed, summary.errors, summary.skipped, summary.flaky]
    assert counted == EXPECTED[name]["counts"]


def test_header_only_suite_is_counted_from_its_header_and_says_so() -> None:
    [warning] = parse_junit(CORPUS / "other" / "header-only-pytest.xml").warnings
    assert warning.startswith('<testsuite name="pytest"> lists no testcase but its header says tests=6')
    assert "counted from the header: 6 tests (3 passed, 1 failed, 0 errors, 2 skipped)" in warning


def test_header_that_disagrees_with_the_testcases_gives_a_warning() -> None:
    warnings = parse_junit(CORPUS / "pytest" / "teardown-xfail-xpass.xml").warnings
    assert warnings == (
        '<testsuite name="pytest">: its header says tests=13, failures=2, errors=3, skipped=2 '
        "but its testcases give 12 tests (6 passed, 2 failed, 2 errors, 2 skipped); "
        "counted from the testcases",
    )


def test_header_that_agrees_gives_no_warning() -> None:
    assert parse_junit(CORPUS / "other" / "status-disabled.xml").warnings == ()


def test_pytest_rerun_attempts_are_listed_as_flaky() -> None:
    summary = parse_junit(CORPUS / "pytest" / "rerunfailures.xml")
    assert [(t.name, t.attempts) for t in summary.flaky_tests] == [
        ("test_flaky::test_fail_then_pass", 2),
        ("test_flaky::test_fails_twice_then_passes", 3),
        ("test_flaky::test_setup_error_then_pass", 2),
    ]
    assert [(t.name, t.attempts) for t in summary.failing] == [
        ("test_flaky::test_always_fails", 3),
        ("test_flaky::test_param[2]", 3),
    ]
