"""Faults on one process inside a service: a worker killed, its siblings and master untouched."""

from __future__ import annotations

import random
import signal
import sys
from pathlib import Path
from typing import Any

import httpx

from gonogo.system.members import ProcessChoice, ServiceProcess

from .conftest import MakeSystem
from .helpers import SERVICES, alive, wait_for
from .test_start import port_placeholders

PREFORK = [sys.executable, str(SERVICES / "prefork.py")]


def prefork(name: str, *extra: str) -> dict[str, Any]:
    return {
        "command": [*PREFORK, "--port", f"{{port.{name}}}", *extra],
        "ready": {"http": f"http://127.0.0.1:{{port.{name}}}/", "timeout": 10, "interval": "0.05s"},
        "grace": "1s",
    }


def workers(system: Any, name: str) -> list[ServiceProcess]:
    return [p for p in system.processes(name) if not p.leader]


def test_the_newest_worker_is_killed_and_the_master_replaces_it(make_system: MakeSystem) -> None:
    placeholders = port_placeholders("web")
    system, recorder = make_system({"web": prefork("web", "--workers", "3")}, placeholders=placeholders)
    with system:
        system.start()
        wait_for(lambda: len(workers(system, "web")) == 3, 10, "three workers")
        master = system.pids()["web"]
        before = workers(system, "web")
        newest = max(before, key=lambda p: (p.start_time, p.pid))
        result = system.kill_process("web", ProcessChoice(pick="newest"), signal.SIGKILL)
        assert result.ok, result.detail
        assert result.pids == [newest.pid]
        assert not alive(newest.pid)
        assert alive(master) and system.pids()["web"] == master  # the service itself lives on
        assert all(alive(p.pid) for p in before if p.pid != newest.pid)
        # the master starts another one: a process the population did not have before
        wait_for(lambda: len(workers(system, "web")) == 3, 10, "the replacement worker")
        assert {p.identity for p in workers(system, "web")} - {p.identity for p in before}
        url = f"http://127.0.0.1:{placeholders['port.web']}/"
        assert httpx.get(url).status_code == 200
        system.check_alive()  # a worker's death is not the service's
        assert ("web", "killed") in [(source, kind) for source, kind, _ in recorder.events]


def test_oldest_random_and_matching_choose_among_the_right_processes() -> None:
    processes = [
        ServiceProcess(10, 100, 1, "python master.py", leader=True),
        ServiceProcess(11, 105, 10, "python worker --queue a", leader=False),
        ServiceProcess(12, 110, 10, "python worker --queue b", leader=False),
        ServiceProcess(13, 103, 10, "tail -f log", leader=False),
    ]
    rng = random.Random(7)
    assert ProcessChoice(pick="newest").choose(processes, rng) == processes[2]
    assert ProcessChoice(pick="oldest").choose(processes, rng) == processes[3]  # never the leader
    assert {ProcessChoice(pick="random").choose(processes, rng) for _ in range(50)} == set(processes[1:])
    workers_only = ProcessChoice(pick="oldest", matching=r"worker --queue")
    assert workers_only.choose(processes, rng) == processes[1]
    assert ProcessChoice(matching="master").choose(processes, rng) == processes[0]  # asked for by name
    assert ProcessChoice(matching="nothing like it").choose(processes, rng) is None


def test_a_pid_file_names_the_process_and_only_one_of_the_service(
    make_system: MakeSystem, tmp_path: Path
) -> None:
    pid_file = tmp_path / "worker.pid"
    script = f"sleep 300 & echo $! > {pid_file}; sleep 301 & wait"
    system, _ = make_system({"jobs": {"command": script, "shell": True, "grace": "0.5s"}})
    with system:
        system.start()
        wait_for(lambda: pid_file.exists() and pid_file.read_text().strip() != "", 10, "the pid file")
        named = int(pid_file.read_text())
        others = [p.pid for p in system.processes("jobs") if p.pid != named]
        result = system.kill_process("jobs", ProcessChoice(pid_file=pid_file), signal.SIGTERM)
        assert result.ok and result.pids == [named]
        assert not alive(named) and all(alive(pid) for pid in others)
        # a pid file naming a process outside the service (or none) chooses nothing
        pid_file.write_text("1\n")
        missing = system.kill_process("jobs", ProcessChoice(pid_file=pid_file))
        assert not missing.ok and missing.pids == [] and "no process of jobs" in missing.detail
        assert all(alive(pid) for pid in others)
