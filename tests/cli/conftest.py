"""Fixtures of the command-line tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from cli_support import JUNIT_FIXTURE, SESSION_VARIABLE, write_plan


@pytest.fixture
def web_plan(tmp_path: Path) -> Path:
    """A small real system: a static web server, a test report and a journey."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text("<h1>hello</h1>\n")
    return write_plan(
        tmp_path,
        f"""
        name: web
        system:
          services:
            web:
              command: [python, -m, http.server, "{{port.web}}", --bind, 127.0.0.1, --directory, site]
              ready: {{http: "http://127.0.0.1:{{port.web}}/", timeout: 20s}}
              grace: 2s
          base_url: "http://127.0.0.1:{{port.web}}"
        checks:
          unit:
            kind: tests
            junit: ["{JUNIT_FIXTURE}"]
          smoke:
            kind: journeys
            journeys:
              home:
                iterations: 4
                concurrency: 2
                steps:
                  - name: index
                    request: {{path: /index.html}}
                    expect: {{status: 200}}
        gates:
          smoke.success_rate: ">= 100%"
          smoke.home.index.latency.p95: {{expr: "< 2s", severity: should}}
        score:
          minimum: 50
        """,
    )


@pytest.fixture
def no_leftovers() -> Iterator[None]:
    """Fail a test that leaves a process of a gonogo run behind (and kill it)."""
    before = {p.pid for p in psutil.process_iter()}
    yield
    leftovers = []
    for process in psutil.process_iter():
        if process.pid in before:
            continue
        try:
            environ = process.environ()
            if environ.get(SESSION_VARIABLE) != str(os.getpid()):
                continue  # another test session's, running at the same time
            # stress-ng is listed by name too: a fault must never leave one behind, token or not.
            if "GONOGO_RUN_TOKEN" in environ or process.name() == "stress-ng":
                leftovers.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    for process in leftovers:
        process.kill()
    assert not leftovers, f"processes left behind: {[p.cmdline() for p in leftovers]}"
