"""A fault on one process inside a service: a worker killed under load, replaced or not."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from chaos_support import metrics_of, report_of
from cli_support import gonogo, write_plan

pytestmark = pytest.mark.usefixtures("no_leftovers")

SERVICES = Path(__file__).parent / "services"
PREFORK = Path(__file__).parents[1] / "system" / "services" / "prefork.py"


def worker_kill_plan(directory: Path, command: str, process: str) -> Path:
    return write_plan(
        directory,
        f"""
        name: workers
        system:
          services:
            web:
              command: {command}
              ready: {{http: "http://127.0.0.1:{{port.web}}/", timeout: 30s, interval: 100ms}}
              grace: 3s
          base_url: "http://127.0.0.1:{{port.web}}"
        checks:
          worker_kill:
            kind: chaos
            load: {{rate: 100/s, requests: [{{name: pid, path: /}}]}}
            hypothesis:
              interval: 250ms
              probes: [{{name: up, http: /, status: 200}}]
            faults:
              - {{kill: web, process: {process}}}
            before: 1s
            duration: 3s
            recovery: {{timeout: 20s, sustain: 1s}}
        gates:
          worker_kill.fault_applied: "== 1"
          worker_kill.service.web.process.replaced: "== 1"
          worker_kill.availability.during: ">= 95%"
        score:
          minimum: 50
        """,
    )


def test_gunicorn_replaces_a_killed_worker_and_users_barely_notice(tmp_path: Path) -> None:
    command = (
        f'[{sys.executable}, -m, gunicorn, --workers, "2", --bind, "127.0.0.1:{{port.web}}", '
        f'--chdir, "{SERVICES}", "wsgi_pid:app"]'
    )
    plan = worker_kill_plan(tmp_path, command, "newest")
    result = gonogo("run", cwd=tmp_path, timeout=180)
    assert result.code == 0, result.text
    report = report_of(plan)
    metrics = metrics_of(report)
    assert metrics["worker_kill.fault_applied"] == 1
    assert metrics["worker_kill.service.web.process.replaced"] == 1
    assert 0 < metrics["worker_kill.service.web.process.time_to_replace"] < 3
    assert metrics["worker_kill.availability.during"] >= 0.95
    assert metrics["worker_kill.requests"] > 300
    # the master lived on: the service was never restarted, so it has no time_to_ready
    assert not any(name.endswith("time_to_ready") for name in metrics)
    events = [e for e in report["events"] if e["source"] == "web"]
    assert [e["kind"] for e in events].count("started") == 1
    assert any(e["kind"] == "killed" and "gunicorn" in e["message"] for e in events)


def test_a_worker_nobody_replaces_is_no_go_naming_the_gate(tmp_path: Path) -> None:
    command = f'[{sys.executable}, "{PREFORK}", --port, "{{port.web}}", --workers, "2", --no-respawn]'
    worker_kill_plan(tmp_path, command, "{pick: oldest}")
    result = gonogo("run", cwd=tmp_path, timeout=180)
    assert result.code == 1, result.text
    metrics = metrics_of(report_of(tmp_path / "gonogo.yaml"))
    assert metrics["worker_kill.fault_applied"] == 1
    assert metrics["worker_kill.service.web.process.replaced"] == 0
    assert "worker_kill.service.web.process.time_to_replace" not in metrics
    assert "worker_kill.service.web.process.replaced" in result.out


def test_a_process_choice_that_matches_nothing_is_not_applied_and_no_go(tmp_path: Path) -> None:
    command = f'[{sys.executable}, "{PREFORK}", --port, "{{port.web}}", --workers, "2"]'
    worker_kill_plan(tmp_path, command, '{matching: "no such worker"}')
    result = gonogo("run", cwd=tmp_path, timeout=180)
    assert result.code == 1, result.text
    metrics = metrics_of(report_of(tmp_path / "gonogo.yaml"))
    assert metrics["worker_kill.fault_applied"] == 0
    assert "no process of web" in result.text
