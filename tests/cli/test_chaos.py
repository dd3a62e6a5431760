"""Chaos experiments run by the real `gonogo` command against real services.

Their windows are short (1 s before the fault, 1 s of sustained recovery, a few seconds of
fault): what each test asserts is told by the fault, not by how long it is watched.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from chaos_support import INTEGRITY, metrics_of, report_of, store_plan
from cli_support import SESSION_VARIABLE, gonogo, gonogo_env

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
  before: 1s
  duration: 2s
  recovery: {{timeout: 30s, sustain: 1s}}
  kill_moments: off  # the kills after bursts of writes have their own test (test_kill_moments.py)
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


def dependency_experiment(fault: str, probe_latency: str = "< 2s") -> str:
    return f"""
hang:
  kind: chaos
  load: {{rate: 30/s, request_timeout: 1s, requests: [{{name: dep, path: /dep}}]}}
  hypothesis:
    interval: 250ms
    probes:
      - {{name: dep, http: /dep, status: 200, latency: "{probe_latency}", timeout: 1s}}
  faults:
    - {fault}
  before: 1s
  duration: 4s
  recovery: {{timeout: 20s, sustain: 1s}}
"""


@pytest.mark.parametrize("with_timeout", [True, False], ids=["timeout-and-fallback", "no-timeout"])
def test_a_hanging_dependency_takes_availability_down_only_without_a_timeout(
    tmp_path: Path, with_timeout: bool
) -> None:
    plan = store_plan(
        tmp_path,
        dependency_experiment("{pause: dep}"),
        'hang.availability.during: ">= 99%"\nhang.fault_applied: "== 1"',
        store_flags="" if with_timeout else ", --no-dependency-timeout",
    )
    result = gonogo("run", cwd=tmp_path, timeout=240)
    report = report_of(plan)
    metrics = metrics_of(report)
    assert metrics["hang.fault_applied"] == 1 and metrics["hang.rollback.clean"] == 1
    assert metrics["hang.recovered"] == 1
    if with_timeout:
        assert result.code == 0, result.text
        assert metrics["hang.availability.during"] >= 0.99
    else:
        assert result.code == 1, result.text
        assert metrics["hang.availability.during"] < 0.5
        assert metrics["hang.time_to_detect"] < 2.5
        assert any(r.startswith("hang.availability.during = ") for r in report["verdict"]["reasons"])


def test_a_toxic_on_the_dependency_proxy_is_verified_by_what_the_proxy_did_and_removed(
    tmp_path: Path,
) -> None:
    fault = "{proxy: dep, toxic: latency, attributes: {latency: 1500}}"
    plan = store_plan(
        tmp_path, dependency_experiment(fault, probe_latency="< 400ms"), 'hang.fault_applied: "== 1"'
    )
    result = gonogo("run", cwd=tmp_path, timeout=240)
    assert result.code == 0, result.text
    report = report_of(plan)
    metrics = metrics_of(report)
    # the store's 0.5 s timeout turns a slow dependency into a fast degraded answer: the probe
    # (< 400ms) fails during the fault only if the fallback is slower than that, so no assertion on it
    assert metrics["hang.fault_applied"] == 1 and metrics["hang.rollback.clean"] == 1
    experiment = next(a for a in report["artifacts"] if a["name"] == "hang-experiment.json")
    sha = experiment["sha256"]
    evidence = json.loads((plan.parent / ".gonogo" / "artifacts" / sha[:2] / sha).read_text())
    (toxic,) = evidence["faults"]
    assert toxic["kind"] == "proxy.latency" and toxic["applied"]
    assert toxic["evidence"]["counters"]["applied"] > 10  # it delayed real traffic
    assert "acted" in toxic["detail"]


def test_a_toxic_that_never_acted_means_the_fault_was_not_applied_and_no_go(tmp_path: Path) -> None:
    experiment = kill_experiment("idle").replace(
        "{kill: store, signal: SIGKILL}", "{proxy: dep, toxic: latency, attributes: {latency: 100}}"
    )
    plan = store_plan(tmp_path, experiment, 'idle.fault_applied: "== 1"')
    result = gonogo("run", cwd=tmp_path, timeout=240)
    assert result.code == 1, result.text
    report = report_of(plan)
    assert metrics_of(report)["idle.fault_applied"] == 0
    (check,) = report["checks"]
    assert check["status"] == "error" and "never acted" in check["message"]


def network_experiment() -> str:
    return """
lossy:
  kind: chaos
  load: {rate: 20/s, request_timeout: 1s, requests: [{name: dep, path: /dep}]}
  hypothesis:
    interval: 250ms
    probes:
      - {name: dep, http: /dep, json: {"$.degraded": false}, timeout: 1s}
  faults:
    - {network: "{port.dep_proxy}", partition: true}
  before: 1s
  duration: 3s
  recovery: {timeout: 20s, sustain: 1s}
"""


def test_a_partition_is_not_supported_on_the_hosts_network_and_that_is_never_a_pass(tmp_path: Path) -> None:
    plan = store_plan(tmp_path, network_experiment(), 'lossy.recovered: "== 1"')
    result = gonogo("run", cwd=tmp_path, timeout=240)
    assert result.code == 1, result.text
    (check,) = report_of(plan)["checks"]
    assert check["status"] == "error" and "not supported here" in check["message"]
    assert "--isolated-network" in check["message"]
    # the fault is described with the run's port, not the plan's placeholder
    assert re.search(r"partition on port \d+:", check["message"]), check["message"]


def test_a_partition_inside_an_isolated_network_cuts_the_dependency_and_heals(tmp_path: Path) -> None:
    plan = store_plan(tmp_path, network_experiment(), 'lossy.recovered: "== 1"')
    result = gonogo("run", "--isolated-network", cwd=tmp_path, timeout=240)
    assert result.code == 0, result.text
    metrics = metrics_of(report_of(plan))
    assert metrics["lossy.fault_applied"] == 1 and metrics["lossy.rollback.clean"] == 1
    # the store falls back (degraded) when its dependency is cut: the probe sees it, users do not
    assert metrics["lossy.hypothesis.during.failed_rounds"] >= 3
    assert metrics["lossy.availability.during"] >= 0.99
    assert metrics["lossy.recovered"] == 1


def session_stress_processes() -> list[psutil.Process]:
    """stress-ng processes started by this test session's runs (not another session's)."""
    found = []
    for process in psutil.process_iter(["name"]):
        try:
            if process.info["name"] == "stress-ng" and process.environ().get(SESSION_VARIABLE) == str(
                os.getpid()
            ):
                found.append(process)
        except psutil.Error:
            continue
    return found


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 32 MiB tmpfs: a disk that can be filled without filling the machine's."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def machine_experiment(name: str, fault: str, *, duration: str = "3s", probe: str = "") -> str:
    probe = probe or '{name: health, http: /health, status: 200, latency: "< 2s"}'
    return f"""
{name}:
  kind: chaos
  load: {{rate: 20/s, requests: [{{name: health, path: /health}}]}}
  hypothesis:
    interval: 250ms
    probes:
      - {probe}
  faults:
    - {fault}
  before: 1s
  duration: {duration}
  recovery: {{timeout: 20s, sustain: 1s}}
{textwrap.indent(INTEGRITY.strip(), "  ")}
"""


def test_a_full_disk_refuses_writes_without_losing_acknowledged_ones_and_is_freed(
    tmp_path: Path, small_disk: Path
) -> None:
    experiment = machine_experiment("full", f'{{disk_fill: "{small_disk}", leave_free: 0}}')
    plan = store_plan(tmp_path, experiment, 'full.integrity.lost: "== 0"', data=str(small_disk / "items"))
    result = gonogo("run", cwd=tmp_path, timeout=240)
    assert result.code == 0, result.text
    metrics = metrics_of(report_of(plan))
    assert metrics["full.fault_applied"] == 1 and metrics["full.rollback.clean"] == 1
    assert metrics["full.integrity.lost"] == 0 and metrics["full.integrity.acknowledged"] >= 15
    # the writes during the fault were refused (507): not acknowledged, so nobody counts on them
    assert metrics["full.integrity.attempted"] >= metrics["full.integrity.acknowledged"] + 30
    assert list(small_disk.glob(".gonogo-disk-fill-*")) == []
    assert shutil.disk_usage(small_disk).free > 16 * 1024 * 1024


@pytest.mark.xdist_group("cpu")  # docs/testing.md: never beside another of this group
def test_cpu_stress_is_applied_verified_and_gone_afterwards(tmp_path: Path) -> None:
    plan = store_plan(
        tmp_path, machine_experiment("busy", "{stress: cpu, workers: 2}"), 'busy.recovered: "== 1"'
    )
    result = gonogo("run", cwd=tmp_path, timeout=240)
    assert result.code == 0, result.text
    metrics = metrics_of(report_of(plan))
    assert metrics["busy.fault_applied"] == 1 and metrics["busy.rollback.clean"] == 1
    assert metrics["busy.integrity.lost"] == 0
    assert not session_stress_processes()


CLOCK_PROBE = (
    '{name: clock, command: [python, -c, "import json, sys, time, urllib.request; '
    "s = json.load(urllib.request.urlopen(sys.argv[1]))['time']; sys.exit(abs(s - time.time()) > 60)\", "
    '"http://127.0.0.1:{port.store}/time"]}'
)


def test_a_skewed_clock_is_seen_by_the_service_and_set_back(tmp_path: Path) -> None:
    experiment = machine_experiment("skew", "{clock: store, skew: +2h}", probe=CLOCK_PROBE)
    plan = store_plan(tmp_path, experiment, 'skew.recovered: "== 1"', clock="faketime")
    result = gonogo("run", cwd=tmp_path, timeout=240)
    assert result.code == 0, result.text
    metrics = metrics_of(report_of(plan))
    assert metrics["skew.fault_applied"] == 1 and metrics["skew.hypothesis.before"] == 1
    # the service's own clock was 2 hours ahead during the fault, and right again after
    assert metrics["skew.hypothesis.during.failed_rounds"] >= 3
    assert metrics["skew.recovered"] == 1


@pytest.mark.xdist_group("cpu")  # docs/testing.md: never beside another of this group
def test_ctrl_c_during_the_fault_removes_every_fault_and_keeps_the_figures(
    tmp_path: Path, small_disk: Path
) -> None:
    experiment = f"""
held:
  kind: chaos
  load: {{rate: 20/s, requests: [{{name: dep, path: /dep}}]}}
  hypothesis:
    probes: [{{name: health, http: /health}}]
  faults:
    - {{pause: dep}}
    - {{stress: cpu, workers: 1}}
    - {{disk_fill: "{small_disk}", leave_free: 0}}
  before: 1s
  duration: 60s
"""
    plan = store_plan(tmp_path, experiment, 'held.recovered: "== 1"')
    process = subprocess.Popen(
        [sys.executable, "-m", "gonogo", "run"],
        cwd=tmp_path,
        env=gonogo_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not list(small_disk.glob(".gonogo-disk-fill-*")) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert list(small_disk.glob(".gonogo-disk-fill-*")), "the faults were never applied"
        time.sleep(1)
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 3
    finally:
        process.kill()
    assert list(small_disk.glob(".gonogo-disk-fill-*")) == []
    assert not session_stress_processes()
    report = report_of(plan)
    (check,) = report["checks"]
    assert check["status"] == "aborted"
    metrics = metrics_of(report)
    assert metrics["held.fault_applied"] == 1 and metrics["held.rollback.clean"] == 1
    experiment_artifact = next(a for a in report["artifacts"] if a["name"] == "held-experiment.json")
    sha = experiment_artifact["sha256"]
    evidence = json.loads((plan.parent / ".gonogo" / "artifacts" / sha[:2] / sha).read_text())
    assert [f["kind"] for f in evidence["faults"]] == [
        "process.pause",
        "stress.cpu",
        "disk.fill",
    ]
    assert evidence["faults"][0]["evidence"]["resumed"] is True


def test_an_http_fault_answers_503_for_the_dependency_and_is_verified_by_its_counters(tmp_path: Path) -> None:
    experiment = network_experiment().replace(
        '{network: "{port.dep_proxy}", partition: true}', "{http: dep, status: 503, rate: 100%}"
    )
    plan = store_plan(tmp_path, experiment, 'lossy.fault_applied: "== 1"', dep_protocol="http")
    result = gonogo("run", cwd=tmp_path, timeout=240)
    assert result.code == 0, result.text
    report = report_of(plan)
    metrics = metrics_of(report)
    assert metrics["lossy.fault_applied"] == 1 and metrics["lossy.rollback.clean"] == 1
    assert metrics["lossy.hypothesis.during.failed_rounds"] >= 3  # the store saw the 503s: degraded
    assert metrics["lossy.recovered"] == 1
    experiment_artifact = next(a for a in report["artifacts"] if a["name"] == "lossy-experiment.json")
    sha = experiment_artifact["sha256"]
    evidence = json.loads((plan.parent / ".gonogo" / "artifacts" / sha[:2] / sha).read_text())
    (fault,) = evidence["faults"]
    assert fault["kind"] == "http.status" and fault["evidence"]["affected"] > 10


def test_a_rolling_restart_restarts_one_service_after_the_other_each_measured_until_ready(
    tmp_path: Path,
) -> None:
    experiment = kill_experiment("roll").replace(
        "- {kill: store, signal: SIGKILL}", "- {restart: dep}\n    - {restart: store}"
    )
    plan = store_plan(tmp_path, experiment, 'roll.integrity.lost: "== 0"')
    result = gonogo("run", cwd=tmp_path, timeout=240)
    assert result.code == 0, result.text
    report = report_of(plan)
    metrics = metrics_of(report)
    assert metrics["roll.fault_applied"] == 1
    assert 0 < metrics["roll.service.store.time_to_ready"] < 10
    assert metrics["roll.integrity.lost"] == 0 and metrics["roll.recovered"] == 1
    # in the order listed: the store's restart began only once dep was ready again
    experiment_artifact = next(a for a in report["artifacts"] if a["name"] == "roll-experiment.json")
    sha = experiment_artifact["sha256"]
    evidence = json.loads((plan.parent / ".gonogo" / "artifacts" / sha[:2] / sha).read_text())
    dep, store = (fault["evidence"] for fault in evidence["faults"])
    assert dep["ready"] is not None and dep["began"] < dep["ready"] <= store["began"] < store["ready"]
