"""JUnit XML from each producer, counted from the testcases; hostile files refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from gonogo.checks.tests.junit import JUnitSummary, parse_junit, sum_summaries
from gonogo.errors import HostileInputError, InputFileError

JUNIT = Path(__file__).resolve().parents[2] / "fixtures" / "junit"
SUREFIRE = JUNIT / "surefire"


def counts(summary: JUnitSummary) -> tuple[int, int, int, int, int, int]:
    return (
        summary.total,
        summary.passed,
        summary.failed,
        summary.errors,
        summary.skipped,
        summary.flaky,
    )


# (file, (total, passed, failed, errors, skipped, flaky), duration, suites)
PRODUCERS = [
    # Suite says errors="2": pytest counts a teardown error on a failed test twice.
    ("pytest.xml", (9, 4, 2, 1, 2, 0), 0.983, 1),
    # pytest-rerunfailures: failed attempts are empty testcases before the final one (as the
    # plugin writes them: an attempt it reruns never carries its <failure>; the hand-made
    # fixture had one, which real pytest writes only before a teardown-error testcase).
    ("pytest_reruns.xml", (5, 3, 1, 0, 1, 2), 3.8, 1),
    ("surefire/TEST-com.acme.docs.OrderServiceTest.xml", (7, 4, 1, 1, 1, 2), 1202.268, 1),
    ("surefire/TEST-com.acme.docs.PaymentGatewayTest.xml", (4, 3, 1, 0, 0, 0), 0.874, 1),
    # The third suite (a package without tests) has no testcase at all.
    ("go-junit-report.xml", (6, 2, 2, 1, 1, 0), 0.035, 3),
    ("jest-junit.xml", (7, 4, 1, 1, 1, 0), 0.209, 3),
    # Same classname+name in two nested suites: two different tests, not a rerun.
    ("nested.xml", (5, 4, 1, 0, 0, 0), 0.103, 3),
    ("empty_suite.xml", (0, 0, 0, 0, 0, 0), 0.0, 1),
]


@pytest.mark.parametrize(("name", "expected", "duration", "suites"), PRODUCERS)
def test_counts_from_each_producer(
    name: str, expected: tuple[int, ...], duration: float, suites: int
) -> None:
    summary = parse_junit(JUNIT / name)
    assert counts(summary) == expected
    assert summary.duration == pytest.approx(duration)
    assert summary.suites == suites
    assert summary.total == summary.passed + summary.failed + summary.errors + summary.skipped


def test_pass_rate_is_passed_over_tests_that_ran() -> None:
    summary = parse_junit(JUNIT / "pytest.xml")
    assert summary.ran == 7
    assert summary.pass_rate == pytest.approx(4 / 7)


def test_pass_rate_is_undefined_when_nothing_ran() -> None:
    assert parse_junit(JUNIT / "empty_suite.xml").pass_rate is None


def test_failing_tests_are_named_with_their_first_message_line() -> None:
    failing = parse_junit(JUNIT / "pytest.xml").failing
    assert [str(test) for test in failing] == [
        "tests.test_api.TestAuth::test_token_expiry (failed): AssertionError: assert 200 == 401",
        "tests.test_db::test_migrations (error): failed on setup with \"fixture 'postgres' not found\"",
        "tests.test_db::test_cleanup (failed): assert 3 == 0",
    ]


def test_message_falls_back_to_the_failure_text() -> None:
    # jest-junit writes no message attribute, only the text.
    failing = parse_junit(JUNIT / "jest-junit.xml").failing
    assert failing[0].message == "Error: expect(received).toBe(expected) // Object.is equality"
    assert failing[1].outcome == "error"
    assert failing[1].message == "● Test suite failed to run"


def test_reruns_fold_into_the_final_attempt() -> None:
    summary = parse_junit(JUNIT / "pytest_reruns.xml")
    assert summary.attempts == 9
    [failing] = summary.failing
    assert (failing.name, failing.outcome, failing.attempts) == (
        "tests.test_worker::test_always_fails",
        "failed",
        3,
    )
    assert [(t.name, t.attempts) for t in summary.flaky_tests] == [
        ("tests.test_worker::test_eventually_ok", 2),
        ("tests.test_worker::test_fail_then_pass", 2),
    ]


def test_surefire_flaky_and_rerun_elements() -> None:
    summary = parse_junit(SUREFIRE / "TEST-com.acme.docs.OrderServiceTest.xml")
    flaky = {t.name.split("::")[1] for t in summary.flaky_tests}
    assert flaky == {"retriesPaymentTimeout", "connectsToLedger"}
    outcomes = {t.name.split("::")[1]: t.outcome for t in summary.failing}
    assert outcomes == {"cancelsOrder": "failed", "loadsFixtures": "error"}


def test_rerun_failure_without_failure_is_still_a_failure() -> None:
    summary = parse_junit(SUREFIRE / "TEST-com.acme.docs.PaymentGatewayTest.xml")
    assert [t.name for t in summary.failing] == ["com.acme.docs.PaymentGatewayTest::reconcilesLedger"]


def test_a_later_failure_after_a_pass_counts_as_failed(tmp_path: Path) -> None:
    # Folding happens only where a repeat means a rerun: a suite written by pytest.
    report = tmp_path / "r.xml"
    report.write_text(
        '<testsuite name="pytest">'
        '<testcase classname="c" name="t"/>'
        '<testcase classname="c" name="t"><failure message="boom"/></testcase>'
        "</testsuite>"
    )
    summary = parse_junit(report)
    assert counts(summary) == (1, 0, 1, 0, 0, 0)


def test_a_repeated_name_outside_pytest_is_another_test(tmp_path: Path) -> None:
    # TestNG data providers, PHPUnit data sets and mocha titles repeat a name; no rerun marking.
    report = tmp_path / "r.xml"
    report.write_text(
        '<testsuite name="com.acme.DataTest">'
        '<testcase classname="c" name="t"/>'
        '<testcase classname="c" name="t"><failure message="boom"/></testcase>'
        '<testcase classname="c" name="t"/>'
        "</testsuite>"
    )
    summary = parse_junit(report)
    assert counts(summary) == (3, 2, 1, 0, 0, 0)
    assert [t.attempts for t in summary.failing] == [1]


def test_several_files_add_up() -> None:
    files = sorted(SUREFIRE.glob("TEST-*.xml"))
    total = sum_summaries(parse_junit(path) for path in files)
    assert counts(total) == (11, 7, 2, 1, 1, 2)
    assert total.duration == pytest.approx(1202.268 + 0.874)
    assert len(total.failing) == 3


def test_namespaced_elements_are_understood(tmp_path: Path) -> None:
    report = tmp_path / "ns.xml"
    report.write_text(
        '<j:testsuite xmlns:j="urn:junit" name="s"><j:testcase name="a"/>'
        '<j:testcase name="b"><j:skipped/></j:testcase></j:testsuite>'
    )
    assert counts(parse_junit(report)) == (2, 1, 0, 0, 1, 0)


def test_listed_tests_are_bounded(tmp_path: Path) -> None:
    report = tmp_path / "many.xml"
    cases = "".join(f'<testcase name="t{i}"><failure message="m"/></testcase>' for i in range(50))
    report.write_text(f"<testsuite>{cases}</testsuite>")
    summary = parse_junit(report, max_listed=20)
    assert summary.failed == 50
    assert len(summary.failing) == 20


# -- refused input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("billion_laughs.xml", "DTD"),
        ("external_entity.xml", "DTD"),
        ("dtd.xml", "DTD"),
    ],
)
def test_hostile_xml_is_refused(name: str, words: str) -> None:
    path = JUNIT / "hostile" / name
    with pytest.raises(HostileInputError) as caught:
        parse_junit(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:2: refused")
    assert words in message


def test_undeclared_entity_reference_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "ref.xml"
    path.write_text('<testsuite><testcase name="&passwd;"/></testsuite>')
    with pytest.raises(InputFileError, match=r"ref\.xml:1: not well-formed XML \(undefined entity"):
        parse_junit(path)


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "deep.xml"
    path.write_text("<testsuites>" + "<testsuite>" * 1000 + "</testsuite>" * 1000 + "</testsuites>")
    with pytest.raises(HostileInputError, match=r"deep\.xml:1: refused: elements nested"):
        parse_junit(path)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("truncated.xml", r"truncated\.xml:6: the XML ends before the document is complete"),
        ("malformed.xml", r"malformed\.xml:6: not well-formed XML \(mismatched tag\)"),
        ("empty.xml", r"empty\.xml: the file is empty"),
        ("not_junit.xml", r"not_junit\.xml:2: not a JUnit XML report: the root element is <coverage>"),
    ],
)
def test_broken_files_name_file_and_line(name: str, expected: str) -> None:
    with pytest.raises(InputFileError, match=expected) as caught:
        parse_junit(JUNIT / "hostile" / name)
    assert not isinstance(caught.value, HostileInputError)


def test_whitespace_only_file_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "blank.xml"
    path.write_text("\n  \n")
    with pytest.raises(InputFileError, match=r"blank\.xml: the file is empty"):
        parse_junit(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"nope\.xml: cannot read"):
        parse_junit(tmp_path / "nope.xml")
