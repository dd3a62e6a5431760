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
    gates = load_plan(path).gates
    return {
        gate.metric: (str(gate.expr), gate.severity)
        for gate in gates
        if not gate.metric.startswith("service.")
    }


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
    assert plan.default_gate_metrics == {
        "sec.findings.critical",
        "sec.findings.high",
        "sec.findings.medium",
        "service.api.exits.unplanned",
        "service.api.shutdown.clean",
    }


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


def test_every_service_must_stay_up_and_stop_cleanly_unless_the_plan_gates_its_services(
    tmp_path: Path,
) -> None:
    path = tmp_path / "gonogo.yaml"
    path.write_text(textwrap.dedent(PLAN).lstrip())
    defaults = {(g.metric, g.expr.text) for g in load_plan(path).gates if g.metric.startswith("service.")}
    assert defaults == {("service.api.exits.unplanned", "== 0"), ("service.api.shutdown.clean", "== 1")}

    path.write_text(textwrap.dedent(PLAN).lstrip() + 'gates:\n  service.api.rss.leak: "== 0"\n')
    written = [g.metric for g in load_plan(path).gates if g.metric.startswith("service.")]
    assert written == ["service.api.rss.leak"]


@pytest.mark.parametrize(
    ("gate", "message"),
    [
        ("service.apj.rss.leak", "no service named 'apj' in this plan; did you mean 'api'?"),
        ("service.api.rss.lesk", "did you mean service.api.rss.leak?"),
        ("service.api.metrics.process_open_fds.leak", "records no metric"),
    ],
)
def test_a_gate_on_a_service_metric_no_run_records_is_refused(
    tmp_path: Path, gate: str, message: str
) -> None:
    path = tmp_path / "gonogo.yaml"
    path.write_text(textwrap.dedent(PLAN).lstrip() + f'gates:\n  {gate}: "== 0"\n')
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    assert message in str(caught.value)


def test_a_check_may_not_be_named_service(tmp_path: Path) -> None:
    path = tmp_path / "gonogo.yaml"
    path.write_text(textwrap.dedent(PLAN).lstrip().replace("  sec:", "  service:"))
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    assert "'service' cannot name a check" in str(caught.value)


def test_a_timeframe_on_a_service_metric_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "gonogo.yaml"
    path.write_text(textwrap.dedent(PLAN).lstrip() + 'gates:\n  service.api.rss.end: "< 1GB for 10s"\n')
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    assert "no such series" in str(caught.value)
