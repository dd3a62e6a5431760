"""Flaky tests judged over a window of runs: flips, flip rates, what counts and what does not."""

from __future__ import annotations

import json

import pytest

from gonogo.evidence.test_outcomes import RecordedOutcome, read_test_outcomes
from gonogo.verdict.flaky import FlakyHistory, RunOutcomes, find_flaky, read_flaky_history

SYMBOL = {"✓": "passed", "✗": "failed", "E": "error", "s": "skipped"}


def window(**tests: str) -> list[RunOutcomes]:
    """Runs r0, r1, … from one string per test (`a="✓✗✓"`); `.` is a run where it is missing.
    A `↻` after a symbol: that run's final attempt passed after a failed one."""
    longest = max(len(sequence.replace("↻", "")) for sequence in tests.values())
    runs: list[dict[tuple[str, str], RecordedOutcome]] = [{} for _ in range(longest)]
    for name, sequence in tests.items():
        index = -1
        for symbol in sequence:
            if symbol == "↻":
                runs[index][("unit", name)] = RecordedOutcome("passed", reruns=1, passed_on_rerun=True)
                continue
            index += 1
            if symbol != ".":
                runs[index][("unit", name)] = RecordedOutcome(SYMBOL[symbol])
    return [RunOutcomes(f"r{index}", outcomes) for index, outcomes in enumerate(runs)]


def flaky_names(history: FlakyHistory) -> list[str]:
    return [test.test for test in history.tests]


def test_two_flips_make_a_test_flaky_one_flip_is_a_change() -> None:
    history = find_flaky(window(flicker="✓✓✗✓", broken="✓✓✗✗", fixed="✗✗✓✓", stable="✓✓✓✓"))
    assert flaky_names(history) == ["flicker"]
    (flicker,) = history.tests
    assert (flicker.flips, flicker.flip_rate, flicker.symbols) == (2, pytest.approx(2 / 3), "✓✓✗✓")
    assert flicker.runs == ("r0", "r1", "r2", "r3")
    assert history.window == ("r0", "r1", "r2", "r3") and history.judged == 4
    assert flicker.reason == "flipped 2 times in 4 runs"


def test_the_flip_rate_is_flips_over_counted_runs_minus_one() -> None:
    (test,) = find_flaky(window(t="✓✗✗✗✓✓")).tests
    assert test.flips == 2 and test.flip_rate == pytest.approx(2 / 5)


def test_skipped_and_missing_runs_do_not_count_and_failed_to_error_is_no_flip() -> None:
    # counted: ✓ ✗ ✓ (the skip and the gap left out): 2 flips over 3 counted runs
    (test,) = find_flaky(window(t="✓s.✗✓")).tests
    assert test.outcomes == ("passed", "failed", "passed") and test.runs == ("r0", "r3", "r4")
    assert test.flip_rate == 1.0
    assert find_flaky(window(t="✓✗E✗")).tests == ()  # one flip: it broke and stays broken


def test_passing_only_on_a_rerun_in_this_run_is_flaky_even_alone() -> None:
    (test,) = find_flaky(window(t="✓↻")).tests
    assert test.passed_on_rerun and test.reruns == 1
    assert test.flips == 0 and test.flip_rate is None  # one counted run: no rate
    assert test.reason == "passed on rerun (1 rerun)"
    # a rerun in an earlier run alone does not make it flaky now
    assert find_flaky(window(t="✓↻✓")).tests == ()


def test_only_tests_that_ran_in_this_run_are_judged() -> None:
    history = find_flaky(window(gone="✓✗✓.", skipped_now="✓✗✓s", still="✓✗✓✓"))
    assert flaky_names(history) == ["still"]
    assert history.judged == 1


def test_the_same_test_id_in_two_checks_is_two_tests_and_the_worst_flip_rate_comes_first() -> None:
    runs = [
        RunOutcomes("r0", {("a", "t"): RecordedOutcome("passed"), ("b", "t"): RecordedOutcome("passed")}),
        RunOutcomes("r1", {("a", "t"): RecordedOutcome("failed"), ("b", "t"): RecordedOutcome("passed")}),
        RunOutcomes("r2", {("a", "t"): RecordedOutcome("passed"), ("b", "t"): RecordedOutcome("failed")}),
        RunOutcomes("r3", {("a", "t"): RecordedOutcome("passed"), ("b", "t"): RecordedOutcome("passed")}),
        RunOutcomes("r4", {("a", "t"): RecordedOutcome("passed"), ("b", "t"): RecordedOutcome("failed")}),
    ]
    history = find_flaky(runs)
    assert [(test.check, test.flips) for test in history.tests] == [("b", 3), ("a", 2)]
    assert [test.flip_rate for test in history.tests] == [pytest.approx(3 / 4), pytest.approx(2 / 4)]


def test_the_stored_document_reads_back_the_same() -> None:
    history = find_flaky(window(t="✓✗✓", u="✓↻"), unreadable=["r9"])
    content = json.dumps(history.to_json()).encode()
    assert read_flaky_history(content) == history
    assert read_flaky_history(b"{not json") is None
    assert find_flaky([]) == FlakyHistory(window=())


def test_test_outcomes_documents_of_another_format_are_refused() -> None:
    entry = {"id": "a::b", "outcome": "failed", "reruns": 2, "passed_on_rerun": False}
    good = {"format": 1, "tests": [entry]}
    assert read_test_outcomes(json.dumps(good).encode()) == {"a::b": RecordedOutcome("failed", 2, False)}
    for bad in ({"format": 2, "tests": []}, {"format": 1}, [], {"format": 1, "tests": [{"outcome": "x"}]}):
        with pytest.raises(ValueError):
            read_test_outcomes(json.dumps(bad).encode())
