"""`signoff:` in a plan: the roles that must sign a GO off, and the confidence that counts."""

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
gates: {unit.pass_rate: ">= 99%"}
"""


def parse(text: str, tmp_path: Path) -> Plan:
    return parse_plan(textwrap.dedent(BASE) + textwrap.dedent(text), tmp_path / "gonogo.yaml")


def test_roles_and_minimum_confidence(tmp_path: Path) -> None:
    plan = parse("signoff:\n  roles: [qa, security, operations]\n  min_confidence: 8\n", tmp_path)
    assert plan.signoff.roles == ["qa", "security", "operations"] and plan.signoff.min_confidence == 8
    assert parse("", tmp_path).signoff.roles == []  # none required


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "signoff: {roles: [qa], min_confidence: 11}\n",
            "gonogo.yaml:4:40: signoff.min_confidence: Input should be less than or equal to 10 (got 11)",
        ),
        ("signoff: {roles: [qa, qa]}\n", "signoff.roles: role 'qa' is listed twice"),
        ("signoff: {roles: [q a]}\n", "signoff.roles: a role is one word"),
        ("signoff: {role: [qa]}\n", "signoff.role: unknown key 'role'; did you mean 'roles'?"),
        ("signof: {roles: [qa]}\n", "unknown key 'signof'; did you mean 'signoff'?"),
    ],
)
def test_mistakes_are_located(text: str, expected: str, tmp_path: Path) -> None:
    with pytest.raises(PlanError) as raised:
        parse(text, tmp_path)
    assert expected in str(raised.value)


def test_the_starter_plans_signoff_example_is_valid_once_uncommented(tmp_path: Path) -> None:
    text = files("gonogo.plan").joinpath("starter.yaml").read_text().replace("{project}", "x")
    plan = parse_plan(re.sub(r"(?m)^# (signoff:)", r"\1", text), tmp_path / "gonogo.yaml")
    assert plan.signoff.roles == ["qa", "security"] and plan.signoff.min_confidence == 8
