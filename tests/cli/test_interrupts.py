"""However gonogo ends — Ctrl-C, SIGTERM, kill -9 — nothing it started survives and the
evidence measured until then is kept, with the run marked aborted."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from cli_support import JUNIT_FIXTURE, gonogo, gonogo_env, write_plan

from gonogo.evidence import Store

pytestmark = pytest.mark.usefixtures("no_leftovers")


@pytest.fixture
def slow_plan(tmp_path: Path) -> Path:
    """A service, a quick check that records metrics, then a check that would take a minute."""
    return write_plan(
        tmp_path,
        f"""
        name: slow
        system:
          services:
            web:
              command: [python, -m, http.server, "{{port.web}}", --bind, 127.0.0.1]
              ready: {{http: "http://127.0.0.1:{{port.web}}/", timeout: 20s}}
            stubborn:
              # ignores SIGTERM and forks a grandchild that leaves the process group
              command: [python, -c, "{_STUBBORN}"]
              grace: 1s
          base_url: "http://127.0.0.1:{{port.web}}"
        checks:
          unit:
            kind: tests
            junit: ["{JUNIT_FIXTURE}"]
          slow:
            kind: journeys
            journeys:
              wait:
                steps:
                  - name: never
                    request: {{path: /}}
                    poll: {{until: {{"$.never": true}}, interval: 200ms, timeout: 60s}}
        gates:
          unit.pass_rate: ">= 0%"
          slow.success_rate: ">= 100%"
        """,
    )


_STUBBORN = (
    "import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "pid = os.fork(); os.setsid() if pid == 0 else None; time.sleep(300)"
)


def start_and_wait_for_slow_check(plan: Path) -> tuple[subprocess.Popen[bytes], str, list[int]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "gonogo", "run"],
        cwd=plan.parent,
        env=gonogo_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    store_url = f"sqlite:///{plan.parent / '.gonogo' / 'gonogo.db'}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.3)
        if not (plan.parent / ".gonogo" / "gonogo.db").exists():
            continue
        with Store.open(store_url, artifacts_dir=plan.parent / ".gonogo" / "artifacts") as store:
            runs = store.list_runs(1)
            if runs and any(c.name == "slow" for c in store.checks(runs[0].id)):
                descendants = [p.pid for p in psutil.Process(process.pid).children(recursive=True)]
                # the stubborn service's grandchild left the group but is still ours
                assert len(descendants) >= 4, descendants
                return process, runs[0].id, descendants
    process.kill()
    raise AssertionError("the run never reached its slow check")


def wait_gone(pids: list[int], seconds: float = 15) -> list[int]:
    deadline = time.monotonic() + seconds
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
        time.sleep(0.1)
    return alive


def run_status(plan: Path, run_id: str) -> str:
    store_url = f"sqlite:///{plan.parent / '.gonogo' / 'gonogo.db'}"
    with Store.open(store_url, artifacts_dir=plan.parent / ".gonogo" / "artifacts") as store:
        return store.resolve_run(run_id).status


def test_kill_9_of_gonogo_leaves_nothing_running_and_an_aborted_run(slow_plan: Path) -> None:
    process, run_id, descendants = start_and_wait_for_slow_check(slow_plan)
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    assert wait_gone(descendants) == []
    # the reaper closed the run; `show` lists it with what was measured before the kill
    deadline = time.monotonic() + 20
    while run_status(slow_plan, run_id) != "aborted" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert run_status(slow_plan, run_id) == "aborted"
    shown = gonogo("show", run_id, cwd=slow_plan.parent)
    assert shown.code == 0, shown.text
    assert "status aborted" in shown.out
    assert "unit.pass_rate" in shown.out and "57.14%" in shown.out


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_ctrl_c_stop_everything_and_keep_the_evidence(slow_plan: Path, signum: int) -> None:
    process, run_id, descendants = start_and_wait_for_slow_check(slow_plan)
    process.send_signal(signum)
    assert process.wait(30) == 3
    assert wait_gone(descendants, 5) == []
    assert run_status(slow_plan, run_id) == "aborted"
    report = (slow_plan.parent / ".gonogo" / "runs" / run_id / "report.json").read_text()
    assert '"decision": "NO-GO"' in report
    assert "before it completed" in report
    assert '"full_name": "unit.pass_rate"' in report
    # history says what happened to the run, not a verdict it never reached
    history = gonogo("history", cwd=slow_plan.parent)
    (line,) = [line for line in history.out.splitlines() if run_id in line]
    assert "interrupted" in line and "NO-GO" not in line
