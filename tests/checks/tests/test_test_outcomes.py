"""Per-test outcomes: every real report gives one per counted test, and the `tests` check stores
them as `test-outcomes.json`, the evidence the history of flaky tests reads."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from gonogo.checks.tests import TestsCheck, TestsSettings
from gonogo.checks.tests.junit import parse_junit

if TYPE_CHECKING:  # only the `ctx` fixture (tests/checks/tests/conftest.py) is used at run time
    from recording_context import RecordingContext

JUNIT = Path(__file__).resolve().parents[2] / "fixtures" / "junit"
CORPUS = JUNIT / "corpus"
EXPECTED: dict[str, Any] = {
    name: entry
    for name, entry in json.loads((CORPUS / "expected.json").read_text()).items()
    if name not in ("_about", "other/header-only-pytest.xml")  # no testcase to name: counted from the header
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_counted_test_of_a_real_report_has_one_outcome(name: str) -> None:
    outcomes = parse_junit(CORPUS / name, outcomes=True).outcomes
    by_outcome = Counter(outcome.outcome for outcome in outcomes)
    flaky = sum(outcome.passed_on_rerun for outcome in outcomes)
    counted = [len(outcomes), *(by_outcome[o] for o in ("passed", "failed", "error", "skipped")), flaky]
    assert counted == EXPECTED[name]["counts"]
    assert all(outcome.id for outcome in outcomes)


def test_outcomes_are_only_kept_when_asked_for() -> None:
    assert parse_junit(JUNIT / "pytest_reruns.xml").outcomes == ()


def stored_outcomes(ctx: RecordingContext, **settings: Any) -> dict[str, dict[str, Any]]:
    outcome = TestsCheck().run(TestsSettings(**settings), ctx)
    assert outcome.status == "completed", outcome
    document = json.loads(ctx.artifact("test-outcomes.json"))
    assert document["format"] == 1
    return {test["id"]: test for test in document["tests"]}


def test_surefire_reruns_are_stored_per_test(ctx: RecordingContext) -> None:
    tests = stored_outcomes(ctx, junit=[str(JUNIT / "surefire" / "TEST-*.xml")])
    assert len(tests) == 11  # both reports
    flaky = tests["com.acme.docs.OrderServiceTest::retriesPaymentTimeout"]  # flakyFailure, then passed
    assert (flaky["outcome"], flaky["reruns"], flaky["passed_on_rerun"]) == ("passed", 1, True)
    failing = tests["com.acme.docs.OrderServiceTest::cancelsOrder"]  # failure + 2 rerunFailures
    assert (failing["outcome"], failing["reruns"], failing["passed_on_rerun"]) == ("failed", 2, False)
    assert tests["com.acme.docs.OrderServiceTest::loadsFixtures"]["outcome"] == "error"
    assert tests["com.acme.docs.OrderServiceTest::exportsInvoice"]["outcome"] == "skipped"


def test_pytest_rerunfailures_attempts_fold_into_one_test(ctx: RecordingContext) -> None:
    tests = stored_outcomes(ctx, junit=[str(JUNIT / "pytest_reruns.xml")])
    assert {name: (t["outcome"], t["reruns"], t["passed_on_rerun"]) for name, t in tests.items()} == {
        "tests.test_worker::test_eventually_ok": ("passed", 1, True),
        "tests.test_worker::test_always_fails": ("failed", 2, False),
        "tests.test_worker::test_stable": ("passed", 0, False),
        "tests.test_worker::test_fail_then_pass": ("passed", 1, True),
        "tests.test_worker::test_needs_gpu": ("skipped", 0, False),
    }


def test_testcases_sharing_an_id_are_one_entry_with_the_worst_outcome(ctx: RecordingContext) -> None:
    # jest writes `test.each` rows under one title: "cart rounds 1" three times, passing each time
    shutil.copy(CORPUS / "jest" / "same-titles-default.xml", ctx.plan_dir / "a.xml")
    shutil.copy(JUNIT / "pytest_reruns.xml", ctx.plan_dir / "b.xml")
    shutil.copy(JUNIT / "pytest_reruns.xml", ctx.plan_dir / "c.xml")  # the same tests in two files
    tests = stored_outcomes(ctx, junit=["*.xml"])
    assert tests["cart rounds 1"]["cases"] == 3 and tests["cart rounds 1"]["outcome"] == "passed"
    twice = tests["tests.test_worker::test_always_fails"]
    assert (twice["cases"], twice["reruns"], twice["outcome"]) == (2, 4, "failed")


def test_an_unreadable_report_stores_no_outcomes(ctx: RecordingContext) -> None:
    shutil.copy(JUNIT / "pytest.xml", ctx.plan_dir / "a.xml")
    shutil.copy(JUNIT / "hostile" / "truncated.xml", ctx.plan_dir / "b.xml")
    outcome = TestsCheck().run(TestsSettings(junit=["*.xml"]), ctx)
    assert outcome.status == "error"
    assert "test-outcomes.json" not in ctx.artifact_names
