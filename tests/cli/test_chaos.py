"""Chaos experiments run by the real `gonogo` command against real services."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from chaos_support import INTEGRITY, metrics_of, report_of, store_plan
from cli_support import gonogo

pytestmark = pytest.mark.usefixtures("no_leftovers")


def kill_experiment(name: str = "crash") -> str:
    return f"""
{name}:
  kind: chaos
  load: {{rate: 50/s, requests: [{{name: health, path: /health}}]}}
  hypothesis:
    interval: 250ms
    probes:
      - {{name: health, http: /health, status: 200, latency: "< 1s"}}
  faults:
    - {{kill: store, signal: SIGKILL}}
  before: 2s
  duration: 2s
  recovery: {{timeout: 30s, sustain: 2s}}
{textwrap.indent(INTEGRITY.strip(), "  ")}
"""


GATES = """
crash.integrity.lost: "== 0"
crash.fault_applied: "== 1"
crash.recovered: "== 1"
crash.time_to_recover: "< 20s"
"""


def test_a_killed_service_that_stores_before_acknowledging_recovers_and_loses_nothing(tmp_path: Path) -> None:
    plan = store_plan(tmp_path, kill_experiment(), GATES)
    result = gonogo("run", cwd=tmp_path, timeout=240)
    assert result.code == 0, result.text
    metrics = metrics_of(report_of(plan))
    assert metrics["crash.fault_applied"] == 1
    assert metrics["crash.hypothesis.before"] == 1
    assert metrics["crash.integrity.acknowledged"] > 20
    assert metrics["crash.integrity.lost"] == 0 and metrics["crash.integrity.corrupted"] == 0
    assert metrics["crash.recovered"] == 1
    assert 0 <= metrics["crash.time_to_recover"] < 20
    assert metrics["crash.time_to_detect"] < 2
    assert metrics["crash.availability.during"] < 1.0  # the service was really down for a while
    assert metrics["crash.error_rate.before"] == 0
    assert metrics["crash.rollback.clean"] == 1


def test_a_service_that_acknowledges_before_committing_loses_data_and_is_no_go(tmp_path: Path) -> None:
    plan = store_plan(tmp_path, kill_experiment(), GATES, store_flags=", --ack-before-commit")
    result = gonogo("run", cwd=tmp_path, timeout=240)
    assert result.code == 1, result.text
    report = report_of(plan)
    assert metrics_of(report)["crash.integrity.lost"] > 0
    assert any(r.startswith("crash.integrity.lost = ") for r in report["verdict"]["reasons"])
