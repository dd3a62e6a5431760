"""Flaky tests from the history of a plan's runs, through the real `gonogo` command: a test
command whose one test passes, fails, then passes again is flaky on the third run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_support import gonogo, write_plan

pytestmark = pytest.mark.usefixtures("no_leftovers")

# Writes a JUnit report (to the path given) whose `flicker` test fails on every second run (a
# counter file says which).
REPORTER = """
import pathlib, sys
counter = pathlib.Path("counter")
run = int(counter.read_text()) + 1 if counter.exists() else 1
counter.write_text(str(run))
failure = '<failure message="boom"/>' if run % 2 == 0 else ""
pathlib.Path(sys.argv[1]).write_text(
    '<testsuite name="api">'
    f'<testcase classname="t.api" name="test_&lt;script&gt;flicker">{failure}</testcase>'
    '<testcase classname="t.api" name="test_stable"/>'
    "</testsuite>"
)
"""


def test_a_test_that_passes_fails_and_passes_again_is_flaky(tmp_path: Path) -> None:
    (tmp_path / "reporter.py").write_text(REPORTER)
    write_plan(
        tmp_path,
        """
        name: flicker
        history: {runs: 5}
        checks:
          unit:
            kind: tests
            command: [python, reporter.py, "{work_dir}/junit.xml"]
            junit: ["{work_dir}/junit.xml"]
        gates:
          history.flaky_tests: "== 0"
        """,
    )
    decisions = []
    for _ in range(3):
        result = gonogo("run", cwd=tmp_path)
        decisions.append(result.code)
    # ✓ GO; ✓✗ one flip, a change, not flaky: GO; ✓✗✓ two flips: flaky, NO-GO
    assert decisions == [0, 0, 1], result.text
    assert "of plan flicker (gonogo.yaml) started" in result.out
    assert "Flaky tests (over 3 runs, oldest first)" in result.out
    assert "t.api::test_<script>flicker" in result.out and "✓✗✓" in result.out

    report = json.loads(gonogo("report", "latest", "--format", "json", cwd=tmp_path).out)
    metrics = {m["full_name"]: m for m in report["metrics"]}
    assert metrics["history.flaky_tests"]["value"] == 1
    assert metrics["history.tests_compared_runs"]["value"] == 3
    window = report["history"]["window"]
    assert len(window) == 3 and window[-1] == report["run"]["id"]
    assert all(run in metrics["history.flaky_tests"]["source"] for run in window)
    # the report's path as a reader can follow it from the plan's folder, no `{work_dir}` left
    work_dir = f".gonogo/runs/{window[-1]}/scratch/checks/unit"
    assert metrics["unit.pass_rate"]["source"] == (
        f"{work_dir}/junit.xml written by `python reporter.py {work_dir}/junit.xml`"
    )
    (flaky,) = report["history"]["flaky_tests"]
    assert flaky["check"] == "unit" and flaky["test"] == "t.api::test_<script>flicker"
    assert flaky["outcomes"] == ["passed", "failed", "passed"] and flaky["flip_rate"] == 1.0
    (gate,) = report["gates"]
    assert gate["metric"] == "history.flaky_tests" and gate["status"] == "fail"

    markdown = gonogo("report", "latest", "--format", "md", cwd=tmp_path).out
    assert "## Flaky tests" in markdown
    row = "| unit | `t.api::test_<script>flicker` | ✓✗✓ | 2 | 100% | 0 | flipped 2 times in 3 runs |"
    assert row in markdown
    verified = gonogo("verify", "latest", cwd=tmp_path)
    assert verified.code == 0, verified.text
    assert "flaky-tests.json: recomputed from the test outcomes of its 3 runs: 1 flaky test" in verified.out

    # Run 2 → 3: the flicker test's flip is no functional difference, run 3 judged it flaky.
    compared = gonogo("compare", window[1], "--format", "json", cwd=tmp_path)
    assert compared.code == 0, compared.text
    document = json.loads(compared.out)
    assert document["functional"]["differences"] == [] and document["summary"]["flaky_tests"] == 1
    (test,) = document["functional"]["tests"]
    assert (test["test"], test["a"], test["b"]) == ("t.api::test_<script>flicker", "failed", "passed")
    assert test["flaky"] == {"B": "flipped 2 times in 3 runs"}
    terminal = gonogo("compare", window[1], cwd=tmp_path)
    assert "1 flaky test(s) differ, not counted" in terminal.out
