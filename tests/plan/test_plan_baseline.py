"""`baseline:` in a plan: how many passing runs make the baseline, and the confidence of the
latency comparison; mistakes reported at their line."""

from __future__ import annotations

import re
import textwrap
from importlib.resources import files
from pathlib import Path

import pytest

from gonogo.errors import PlanError
from gonogo.plan import Plan, parse_plan

BASE = """
checks: {unit: {kind: tests, junit: [a.xml]}}
gates: {unit.pass_rate: ">= -1% baseline"}
"""


def parse(text: str, tmp_path: Path) -> Plan:
    return parse_plan(textwrap.dedent(BASE) + textwrap.dedent(text), tmp_path / "gonogo.yaml")


def test_defaults_and_settings(tmp_path: Path) -> None:
    default = parse("", tmp_path)
    assert default.has_relative_gates
    assert (default.baseline.runs, default.baseline.confidence) == (5, 0.95)
    plan = parse("baseline: {runs: 3, confidence: 99%}\n", tmp_path)
    assert (plan.baseline.runs, plan.baseline.confidence) == (3, 0.99)
    assert parse("baseline: {confidence: 0.9}\n", tmp_path).baseline.confidence == 0.9


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "baseline: {runs: 0}\n",
            "gonogo.yaml:4:18: baseline.runs: Input should be greater than or equal to 1",
        ),
        ("baseline: {runs: many}\n", "baseline.runs: expected a whole number (got 'many')"),
        ("baseline: {confidence: 1}\n", "baseline.confidence: 1 is not a confidence between 50% and 100%"),
        # compare's --tolerance is the one knob; a plan from before says so instead of being ignored
        ("baseline: {tolerance: 5%}\n", "baseline.tolerance: unknown key 'tolerance'"),
        ("baseline: {run: 3}\n", "baseline.run: unknown key 'run'; did you mean 'runs'?"),
        ("baseline: 5\n", "baseline: expected a mapping"),
        ("baselin: {runs: 3}\n", "unknown key 'baselin'; did you mean 'baseline'?"),
    ],
)
def test_mistakes_are_located(text: str, expected: str, tmp_path: Path) -> None:
    with pytest.raises(PlanError) as raised:
        parse(text, tmp_path)
    assert expected in str(raised.value)


def test_the_starter_plans_baseline_example_is_valid_once_uncommented(tmp_path: Path) -> None:
    text = files("gonogo.plan").joinpath("starter.yaml").read_text().replace("{project}", "x")
    text = re.sub(r"(?m)^# (baseline:)", r"\1", text)
    text = re.sub(r"(?m)^  # (smoke\.\S+: \{expr: \"<= \+10% baseline\")", r"  \1", text)
    plan = parse_plan(text, tmp_path / "gonogo.yaml")
    assert plan.baseline.runs == 5 and plan.baseline.confidence == 0.95 and plan.has_relative_gates


def test_validate_says_what_relative_gates_compare_with(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from gonogo.cli import cli

    path = tmp_path / "gonogo.yaml"
    path.write_text(textwrap.dedent(BASE) + "baseline: {runs: 3}\n")
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    said = "compare with the run pinned with `gonogo baseline set`, else the last 3 passing run(s)"
    assert said in result.output
