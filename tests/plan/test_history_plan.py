"""The plan's `history:` section and the `history.*` gates (flaky tests from earlier runs)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gonogo.errors import PlanError
from gonogo.plan import load_plan

UNIT = """
checks:
  unit: {kind: tests, junit: [junit.xml]}
"""


def plan_at(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gonogo.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def issues(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(PlanError) as caught:
        load_plan(plan_at(tmp_path, text))
    return [f"{issue.line}: {issue.message}" for issue in caught.value.issues]


def test_history_reads_ten_earlier_runs_unless_told(tmp_path: Path) -> None:
    assert load_plan(plan_at(tmp_path, UNIT)).history.runs == 10
    assert load_plan(plan_at(tmp_path, UNIT + "history: {runs: 3}\n")).history.runs == 3
    assert load_plan(plan_at(tmp_path, UNIT + "history:\n")).history.runs == 10


@pytest.mark.parametrize(
    ("section", "said"),
    [
        ("history: {runs: -1}", "greater than or equal to 0"),
        ("history: {runs: yes}", "expected a whole number"),
        ("history: {runs: 2.5}", "whole number"),
        ("history: {run: 3}", "did you mean 'runs'"),
        ("history: 5", "expected a mapping, e.g. history: {runs: 10}"),
    ],
)
def test_a_wrong_history_section_is_refused_at_its_line(tmp_path: Path, section: str, said: str) -> None:
    (issue,) = issues(tmp_path, UNIT + section + "\n")
    assert issue.startswith("3: ") and said in issue, issue


def test_a_tests_check_with_junit_gets_a_should_gate_on_flaky_tests(tmp_path: Path) -> None:
    plan = load_plan(plan_at(tmp_path, UNIT))
    (gate,) = [gate for gate in plan.gates if gate.metric.startswith("history.")]
    assert (gate.metric, gate.expr.text, gate.severity) == ("history.flaky_tests", "== 0", "should")
    assert "history.flaky_tests" in plan.default_gate_metrics
    # a plan that gates a history metric decides alone
    written = load_plan(plan_at(tmp_path, UNIT + 'gates:\n  history.flaky_tests: "<= 2"\n'))
    expected = [("history.flaky_tests", "<= 2", "must")]
    assert [(g.metric, g.expr.text, g.severity) for g in written.gates] == expected
    # no JUnit reports, no per-test outcomes: no gate
    coverage_only = "checks:\n  unit: {kind: tests, coverage: {file: c.xml}}\n"
    gates = load_plan(plan_at(tmp_path, coverage_only)).gates
    assert not [gate for gate in gates if gate.metric.startswith("history.")]


def test_history_gates_are_checked_like_any_other(tmp_path: Path) -> None:
    gates = 'gates:\n  history.flaky_test: "== 0"\n  history.tests_compared_runs: ">= 3 for 10s"\n'
    found = issues(tmp_path, UNIT + gates)
    assert found[0] == (
        "4: the run records no metric 'history.flaky_test' from its history; "
        "did you mean history.flaky_tests?"
    )
    assert "the history.* metrics are figures of the whole run" in found[1]


def test_a_history_gate_without_per_test_outcomes_is_refused(tmp_path: Path) -> None:
    text = 'checks:\n  unit: {kind: tests, coverage: {file: c.xml}}\ngates:\n  history.flaky_tests: "== 0"\n'
    (issue,) = issues(tmp_path, text)
    assert issue.startswith("4: history.flaky_tests is computed from the per-test outcomes of a tests check")


def test_no_check_may_be_called_history(tmp_path: Path) -> None:
    (issue,) = issues(tmp_path, "checks:\n  history: {kind: tests, junit: [a.xml]}\n")
    assert issue.startswith("2: 'history' cannot name a check")
