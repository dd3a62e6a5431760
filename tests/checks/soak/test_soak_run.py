"""`gonogo run` with soak checks on real services: a memory leak and an fd leak are NO-GO on their
leak gates (the default gates of a plan that writes none), a healthy but noisy service is GO.

Short soaks (a few seconds, sampled every 200 ms) at 50 requests/s: the leaks are fast (50 KB
and one fd per request), the noise is real (RSS swings by megabytes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from gonogo.checks.soak import SoakCheck
from gonogo.plan.load import load_plan
from gonogo.plan.names import PlanNames, matches

SERVICE = Path(__file__).with_name("soak_service.py")
SESSION = "GONOGO_SOAK_TEST_SESSION"


def service(name: str, mode: str, extra: str = "") -> str:
    return f"""
    {name}:
      command: [{sys.executable}, {SERVICE}, "{{port.{name}}}", {mode}]
      ready: {{http: "http://127.0.0.1:{{port.{name}}}/", timeout: 20s}}
      grace: 2s{extra}"""


def soak(name: str, target: str, seconds: int, extra: str = "") -> str:
    return f"""
  {name}:
    kind: soak
    base_url: "http://127.0.0.1:{{port.{target}}}"
    duration: {seconds}s
    warmup: 1s
    rate: 50/s
    requests: [{{path: /work}}]
    generator: {{max_late: 25%}}  # a few seconds of load on a busy CI machine{extra}"""


def run(directory: Path, services: str, checks: str) -> tuple[int, str, dict[str, Any]]:
    plan = f"""
name: soak-test
system:
  sample_interval: 200ms
  services:{textwrap.indent(textwrap.dedent(services), "    ")}
checks:{checks}
"""
    (directory / "gonogo.yaml").write_text(plan)
    done = subprocess.run(
        [sys.executable, "-m", "gonogo", "run"],
        cwd=directory,
        env={**os.environ, SESSION: str(os.getpid())},
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    (report,) = (directory / ".gonogo" / "runs").glob("*/report.json")
    return done.returncode, done.stdout + done.stderr, json.loads(report.read_text())


@pytest.fixture
def nothing_left() -> Iterator[None]:
    yield
    left = []
    for process in psutil.process_iter():
        try:
            if process.environ().get(SESSION) == str(os.getpid()):
                left.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    for process in left:
        process.kill()
    assert not left, f"left behind: {[p.cmdline() for p in left]}"


def declared_everything(directory: Path, metrics: dict[str, Any]) -> None:
    """Every soak metric the run recorded is one `gonogo validate` accepts a gate on."""
    plan = load_plan(directory / "gonogo.yaml")
    names = PlanNames(services=frozenset(plan.system.services))
    for check, spec in plan.checks.items():
        declared = SoakCheck.metric_names(spec.settings, names)
        recorded = [name.removeprefix(f"{check}.") for name in metrics if name.startswith(f"{check}.")]
        assert recorded and all(matches(name, declared) for name in recorded), (check, recorded)


@pytest.mark.usefixtures("nothing_left")
def test_a_healthy_noisy_service_soaks_to_go(tmp_path: Path) -> None:
    code, output, report = run(tmp_path, service("noisy", "noisy"), soak("soak", "noisy", 8))
    assert code == 0, output
    assert report["verdict"]["decision"] == "GO"
    metrics = {m["full_name"]: m for m in report["metrics"]}
    gates = {g["metric"]: g["status"] for g in report["gates"]}
    # the default gates of a plan without gates, each measured and passed
    for metric in ("soak.noisy.rss.leak", "soak.noisy.fds.leak", "soak.noisy.threads.leak"):
        assert gates[metric] == "pass" and metrics[metric]["value"] == 0
    assert gates["soak.noisy.fds.within_limit"] == "pass"
    assert gates["soak.latency.leak"] == "pass" and gates["soak.error_rate"] == "pass"
    # RSS really swung (megabytes), and was not called a leak
    rss = metrics["soak.noisy.rss.slope_per_hour"]
    assert "noisy rss steady" in rss["source"] and "Theil-Sen" in rss["source"]
    assert metrics["soak.noisy.rss.detectable_slope"]["value"] > 0
    assert metrics["soak.noisy.fds.limit"]["value"] > 0  # the process's RLIMIT_NOFILE
    assert "/limits" in metrics["soak.noisy.fds.limit"]["source"]
    assert metrics["soak.requests"]["value"] >= 350 and metrics["soak.throughput"]["value"] > 40
    # the live RSS slope is fitted off the engine's thread: no pause of the load shows as latency
    assert metrics["soak.latency.p95"]["value"] < 0.5
    # the evidence: every series and each trend's summary, in one artifact the metrics point at
    artifact = next(a for a in report["artifacts"] if a["name"] == "soak-soak.json")
    assert rss["artifact_sha256"] == artifact["sha256"]
    declared_everything(tmp_path, metrics)
    assert "left" in output  # progress: the time left (the live RSS slope follows once fitted)


@pytest.mark.usefixtures("nothing_left")
def test_a_memory_leak_and_an_fd_leak_are_no_go_on_their_gates(tmp_path: Path) -> None:
    services = service("mem", "memory", "\n      limits: {memory: 300MB}") + service("fds", "fds")
    checks = soak("soak_mem", "mem", 4, "\n    detect: {rss: 50MB/h}") + soak(
        "soak_fds", "fds", 4, "\n    services: [fds]"
    )
    code, output, report = run(tmp_path, services, checks)
    assert code == 1, output
    assert report["verdict"]["decision"] == "NO-GO"
    metrics = {m["full_name"]: m for m in report["metrics"]}
    failed = {g["metric"] for g in report["gates"] if g["status"] != "pass"}
    assert failed == {
        "soak_mem.mem.rss.leak",
        "soak_mem.mem.rss.within_limit",  # 9 GB/h reaches 300 MB long before 72 h
        "soak_fds.fds.fds.leak",
        "soak_fds.fds.fds.within_limit",  # 180,000 fds/h reach the RLIMIT_NOFILE
    }, output
    leak = metrics["soak_mem.mem.rss.leak"]
    assert leak["value"] == 1 and "mem rss grows" in leak["source"]
    assert metrics["soak_mem.mem.rss.slope_per_hour"]["value"] > 1e9  # 2.5 MB/s
    assert metrics["soak_mem.mem.rss.time_to_limit"]["value"] < 3600
    assert "detect.rss" in metrics["soak_mem.mem.rss.duration_to_detect"]["source"]
    # soak_mem watches every service: the fd leaker sat idle then, and was not flagged
    assert metrics["soak_mem.fds.fds.leak"]["value"] == 0
    assert metrics["soak_fds.fds.fds.growth"]["value"] > 100
    assert "soak_fds.mem.rss.leak" not in metrics  # services: [fds]
    declared_everything(tmp_path, metrics)
