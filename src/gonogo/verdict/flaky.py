"""Flaky tests from a plan's history: which tests of this run pass and fail without a change.

The input is a window of runs of one plan, oldest first and this run last, each with the
per-test outcomes its `tests` checks stored (`test-outcomes.json`, see
`gonogo.evidence.test_outcomes`; read by `gonogo.run` and `gonogo.verify`: this module reads no
file). For each test of this run (a check name and a test id):

- its *counted outcomes* are its outcomes in the window's runs where it ran: passed, failed or
  error. A run where it is missing or skipped does not count (a skip says nothing of whether
  it passes);
- a *flip* is a change between passing (passed) and failing (failed or error) from one counted
  run to the next (failed → error is no flip: it fails either way);
- its *flip rate* is flips / (counted runs - 1), None with fewer than two counted runs;
- it is **flaky** when it passed only on a rerun in this run (its final attempt passed after a
  failed one), or when it flipped at least twice in the window. One flip is a change (a test
  broken, or fixed), not flakiness: ✓✓✗✗ is a regression, ✓✗✓ is a flaky test.

Only tests that ran in this run (not skipped) are judged: a test that flickered in older runs
and is gone now is no risk of this release.
"""

from __future__ import annotations

__all__ = [
    "FLAKY_ARTIFACT",
    "FlakyHistory",
    "FlakyTest",
    "RunOutcomes",
    "find_flaky",
    "read_flaky_history",
]

import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gonogo.evidence.test_outcomes import RecordedOutcome

FLAKY_ARTIFACT = "flaky-tests.json"  # the run artifact `find_flaky`'s result is stored as
FLAKY_AFTER_FLIPS = 2  # flips in the window that make a test flaky
_PASSING = "passed"
_FAILING = frozenset({"failed", "error"})
_SYMBOLS = {"passed": "✓", "failed": "✗", "error": "E"}


@dataclass(frozen=True)
class RunOutcomes:
    """The per-test outcomes one run stored: (check, test id) → its outcome."""

    run_id: str
    tests: Mapping[tuple[str, str], RecordedOutcome]


@dataclass(frozen=True)
class FlakyTest:
    check: str
    test: str
    flips: int
    flip_rate: float | None  # None: fewer than two counted runs
    outcomes: tuple[str, ...]  # counted outcomes, oldest first (this run's last)
    runs: tuple[str, ...]  # the run of each counted outcome
    reruns: int  # this run's reruns of it
    passed_on_rerun: bool  # in this run

    @property
    def symbols(self) -> str:
        """The counted outcomes as ✓ (passed), ✗ (failed) and E (error), oldest first."""
        return "".join(_SYMBOLS.get(outcome, "?") for outcome in self.outcomes)

    @property
    def reason(self) -> str:
        """Why it is flaky, in words."""
        said: list[str] = []
        if self.passed_on_rerun:
            said.append(f"passed on rerun ({self.reruns} rerun{'s' if self.reruns != 1 else ''})")
        if self.flips >= FLAKY_AFTER_FLIPS:
            said.append(f"flipped {self.flips} times in {len(self.outcomes)} runs")
        return "; ".join(said)

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "test": self.test,
            "flip_rate": self.flip_rate,
            "flips": self.flips,
            "outcomes": list(self.outcomes),
            "runs": list(self.runs),
            "reruns": self.reruns,
            "passed_on_rerun": self.passed_on_rerun,
        }


@dataclass(frozen=True)
class FlakyHistory:
    """The flaky tests of a run, judged over `window` (run ids, oldest first, this run last)."""

    window: tuple[str, ...]
    tests: tuple[FlakyTest, ...] = ()  # the flaky ones, highest flip rate first
    judged: int = 0  # tests of this run that ran (not skipped), each judged
    unreadable: tuple[str, ...] = field(default=())  # runs whose stored outcomes could not be read

    def to_json(self) -> dict[str, Any]:
        return {
            "window": list(self.window),
            "judged": self.judged,
            "unreadable": list(self.unreadable),
            "tests": [test.to_json() for test in self.tests],
        }


def find_flaky(window: Sequence[RunOutcomes], *, unreadable: Sequence[str] = ()) -> FlakyHistory:
    """The flaky tests of the window's last run (this run), judged over the whole window."""
    if not window:
        return FlakyHistory(window=(), unreadable=tuple(unreadable))
    current = window[-1]
    flaky: list[FlakyTest] = []
    judged = 0
    for key, now in current.tests.items():
        if now.outcome != _PASSING and now.outcome not in _FAILING:
            continue  # skipped in this run: nothing to judge
        judged += 1
        counted = [
            (run.run_id, run.tests[key].outcome)
            for run in window
            if key in run.tests and (run.tests[key].outcome == _PASSING or run.tests[key].outcome in _FAILING)
        ]
        passing = [outcome == _PASSING for _, outcome in counted]
        flips = sum(1 for before, after in itertools.pairwise(passing) if before != after)
        rate = flips / (len(counted) - 1) if len(counted) > 1 else None
        if now.passed_on_rerun or flips >= FLAKY_AFTER_FLIPS:
            flaky.append(
                FlakyTest(
                    check=key[0],
                    test=key[1],
                    flips=flips,
                    flip_rate=rate,
                    outcomes=tuple(outcome for _, outcome in counted),
                    runs=tuple(run_id for run_id, _ in counted),
                    reruns=now.reruns,
                    passed_on_rerun=now.passed_on_rerun,
                )
            )
    flaky.sort(key=lambda test: (-(test.flip_rate or 0.0), -test.reruns, test.check, test.test))
    return FlakyHistory(
        window=tuple(run.run_id for run in window),
        tests=tuple(flaky),
        judged=judged,
        unreadable=tuple(unreadable),
    )


def read_flaky_history(content: bytes) -> FlakyHistory | None:
    """A stored `flaky-tests.json` back as a `FlakyHistory`; None when it cannot be read (`gonogo
    verify` is what reports an altered artifact)."""
    try:
        document = json.loads(content)
        return FlakyHistory(
            window=tuple(str(run) for run in document["window"]),
            judged=int(document.get("judged", 0)),
            unreadable=tuple(str(run) for run in document.get("unreadable", [])),
            tests=tuple(
                FlakyTest(
                    check=str(item["check"]),
                    test=str(item["test"]),
                    flips=int(item["flips"]),
                    flip_rate=None if item.get("flip_rate") is None else float(item["flip_rate"]),
                    outcomes=tuple(str(outcome) for outcome in item["outcomes"]),
                    runs=tuple(str(run) for run in item.get("runs", [])),
                    reruns=int(item.get("reruns", 0)),
                    passed_on_rerun=bool(item.get("passed_on_rerun", False)),
                )
                for item in document["tests"]
            ),
        )
    except (ValueError, TypeError, KeyError):
        return None
