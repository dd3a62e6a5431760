"""A kind's own gates hold when the plan gates none of its check's metrics by name."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gonogo.errors import PlanError
from gonogo.plan import load_plan

PLAN = """
name: shop
system:
  services:
    api: {command: "python -m http.server {port.api}", ready: {http: "http://127.0.0.1:{port.api}/"}}
  base_url: "http://127.0.0.1:{port.api}"
checks:
  sec:
    kind: security
    fuzz: {enabled: false}
"""


def gates_of(tmp_path: Path, gates: str) -> dict[str, tuple[str, str]]:
    path = tmp_path / "gonogo.yaml"
    path.write_text(textwrap.dedent(PLAN).lstrip() + "gates:\n" + gates)
    return {gate.metric: (str(gate.expr), gate.severity) for gate in load_plan(path).gates}


def test_a_security_check_without_gates_must_have_no_critical_nor_high_finding(tmp_path: Path) -> None:
    gates = gates_of(tmp_path, "  {}\n")
    assert set(gates) == {"sec.findings.critical", "sec.findings.high", "sec.findings.medium"}
    assert gates["sec.findings.critical"][1] == "must"
    assert gates["sec.findings.high"][1] == "must"
    assert gates["sec.findings.medium"][1] == "should"


def test_the_plan_knows_which_gates_it_did_not_write(tmp_path: Path) -> None:
    path = tmp_path / "gonogo.yaml"
    path.write_text(textwrap.dedent(PLAN).lstrip() + 'gates:\n  "*.findings.low": "<= 10"\n')
    plan = load_plan(path)
    assert plan.default_gate_metrics == {"sec.findings.critical", "sec.findings.high", "sec.findings.medium"}


def test_a_gate_on_the_check_replaces_the_defaults(tmp_path: Path) -> None:
    gates = gates_of(tmp_path, '  sec.findings.total: "<= 3"\n')
    assert set(gates) == {"sec.findings.total"}


def test_a_glob_gate_does_not_replace_the_defaults(tmp_path: Path) -> None:
    gates = gates_of(tmp_path, '  "*.findings.critical": "== 0"\n')
    assert {
        "*.findings.critical",
        "sec.findings.critical",
        "sec.findings.high",
        "sec.findings.medium",
    } == set(gates)


def test_a_gate_on_fuzzing_without_an_openapi_document_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "gonogo.yaml"
    path.write_text(textwrap.dedent(PLAN).lstrip() + 'gates:\n  sec.fuzz.findings: "== 0"\n')
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    assert "sec.fuzz.findings" in str(caught.value)
