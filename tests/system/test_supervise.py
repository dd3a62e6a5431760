"""Supervision while the system is up: restart policies and fault operations."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from gonogo.errors import ServiceFailed
from gonogo.plan.model import Service
from gonogo.system import procfs

from .conftest import MakeSystem
from .helpers import SERVICE, alive, wait_for
from .test_start import port_placeholders


def http_service(name: str, *extra: str, **settings: Any) -> dict[str, Any]:
    return {
        "command": [*SERVICE, "--name", name, "--port", f"{{port.{name}}}", *extra],
        "ready": {"http": f"http://127.0.0.1:{{port.{name}}}/", "timeout": 10, "interval": "0.05s"},
        "grace": "0.5s",
        **settings,
    }


def kinds(system: Any, name: str) -> list[str]:
    return [event.kind for event in system.history(name)]


def states(pids: list[int]) -> list[str]:
    return [info.state for info in (procfs.info(pid) for pid in pids) if info is not None]


def test_restart_settings_default_to_never_and_are_validated() -> None:
    service = Service.model_validate({"command": "x"})
    assert (service.restart, service.restart_backoff, service.restart_backoff_max, service.max_restarts) == (
        "never",
        1.0,
        30.0,
        10,
    )
    parsed = Service.model_validate({"command": "x", "restart": "on-failure", "restart_backoff": "200ms"})
    assert parsed.restart_backoff == 0.2
    with pytest.raises(ValueError, match="restart"):
        Service.model_validate({"command": "x", "restart": "sometimes"})
    with pytest.raises(ValueError, match="restart_backoff_max"):
        Service.model_validate({"command": "x", "restart_backoff": "5s", "restart_backoff_max": "1s"})


def test_on_failure_restarts_a_crash_after_backoff_and_readiness(
    make_system: MakeSystem, tmp_path: Path
) -> None:
    once = tmp_path / "crashed"
    service = http_service(
        "api",
        *("--exit-after", "0.3", "--exit-code", "3", "--once", str(once)),
        restart="on-failure",
        restart_backoff="0.3s",
    )
    placeholders = port_placeholders("api")
    system, recorder = make_system({"api": service}, sample_interval=0.1, placeholders=placeholders)
    with system:
        system.start()
        first = system.pids()["api"]
        wait_for(lambda: "restarted" in recorder.kinds("api"), 10, "the restart")
        system.check_alive()
        assert system.pids()["api"] != first
        assert alive(system.pids()["api"])
        assert httpx.get(f"http://127.0.0.1:{placeholders['port.api']}/").status_code == 200
        history = system.history("api")
        assert [e.kind for e in history] == ["started", "ready", "exited", "restarting", "started", "ready"]
        exited, ready = history[2], history[5]
        assert exited.exit_code == 3 and exited.pid == first
        assert ready.pid == system.pids()["api"]
        assert ready.monotonic - exited.monotonic >= 0.3  # the back-off was waited
        assert ready.at > exited.at
    kinds_seen = recorder.kinds("api")
    assert kinds_seen.index("exited") < kinds_seen.index("restarting") < kinds_seen.index("restarted")
    log = system.log_files()["api"].read_text()
    assert log.count("api: pid") == 2  # appended, not truncated


def test_always_restarts_after_a_clean_exit(make_system: MakeSystem, tmp_path: Path) -> None:
    once = tmp_path / "exited"
    service = {
        "command": [*SERVICE, "--name", "worker", "--exit-after", "0.6", "--once", str(once)],
        "restart": "always",
        "restart_backoff": "0.1s",
    }
    system, recorder = make_system({"worker": service}, sample_interval=0.1)
    with system:
        system.start()
        wait_for(lambda: "restarted" in recorder.kinds("worker"), 10, "the restart")
        system.check_alive()
        assert [e.exit_code for e in system.history("worker") if e.kind == "exited"] == [0]


def test_on_failure_does_not_restart_a_clean_exit(make_system: MakeSystem) -> None:
    service = {
        "command": [*SERVICE, "--exit-after", "0.6"],
        "restart": "on-failure",
        "restart_backoff": "0.1s",
    }
    system, recorder = make_system({"worker": service}, sample_interval=0.1)
    with system:
        system.start()
        wait_for(lambda: "exited" in recorder.kinds("worker"), 5, "the exit")
        with pytest.raises(ServiceFailed, match="exited with code 0 unexpectedly"):
            system.check_alive()
        assert "restarting" not in recorder.kinds("worker")


def test_never_makes_check_alive_raise(make_system: MakeSystem) -> None:
    service = {"command": [*SERVICE, "--exit-after", "0.6", "--exit-code", "4"]}
    system, recorder = make_system({"worker": service}, sample_interval=0.1)
    with system:
        system.start()
        wait_for(lambda: "exited" in recorder.kinds("worker"), 5, "the exit")
        with pytest.raises(ServiceFailed, match="exited with code 4 unexpectedly"):
            system.check_alive()
        assert "restarting" not in recorder.kinds("worker")


def test_exhausted_restarts_fail_the_service(make_system: MakeSystem) -> None:
    service = {
        "command": [*SERVICE, "--name", "flaky", "--exit-after", "0.6", "--exit-code", "5"],
        "restart": "on-failure",
        "restart_backoff": "0.05s",
        "max_restarts": 2,
    }
    system, recorder = make_system({"flaky": service}, sample_interval=0.1)
    with system:
        system.start()
        wait_for(lambda: "failed" in recorder.kinds("flaky"), 15, "giving up")
        with pytest.raises(ServiceFailed, match="gave up after 2 restart"):
            system.check_alive()
        history = kinds(system, "flaky")
        assert history.count("restarting") == 2
        assert history.count("exited") == 3
        assert history[-1] == "failed"
    assert system.log_files()["flaky"].read_text().count("flaky: pid") == 3


def test_a_failed_restart_counts_and_is_retried(make_system: MakeSystem, tmp_path: Path) -> None:
    # After the first crash it exits at once: each restart fails before it is ready.
    marker = tmp_path / "crashed"
    service = {
        "command": [
            "/bin/sh",
            "-c",
            f"if [ -e {marker} ]; then exit 7; fi; touch {marker}; sleep 0.6; exit 1",
        ],
        "restart": "on-failure",
        "restart_backoff": "0.05s",
        "max_restarts": 2,
    }
    system, recorder = make_system({"sh": service}, sample_interval=0.1)
    with system:
        system.start()
        wait_for(lambda: "failed" in recorder.kinds("sh"), 15, "giving up")
        with pytest.raises(ServiceFailed, match="exited with code 7"):
            system.check_alive()
        assert kinds(system, "sh").count("restarting") == 2


def test_kill_is_verified_and_on_failure_recovers(make_system: MakeSystem) -> None:
    service = http_service(
        "api", "--fork", "child", "--delay", "0.5", restart="on-failure", restart_backoff="0.1s"
    )
    system, recorder = make_system(
        {"api": service}, sample_interval=0.1, placeholders=port_placeholders("api")
    )
    with system:
        system.start()
        pid = system.pids()["api"]
        result = system.kill("api", by="experiment crash")
        assert result.ok and result.operation == "kill" and result.signal == signal.SIGKILL
        assert pid in result.pids and len(result.pids) == 2  # the service and its child
        assert not any(alive(p) for p in result.pids)
        # killed again while it restarts, before it is ready (it serves after 0.5 s)
        wait_for(lambda: kinds(system, "api").count("started") == 2, 10, "the restart")
        assert system.kill("api", by="experiment crash").ok
        wait_for(lambda: "restarted" in recorder.kinds("api"), 10, "the recovery")
        system.check_alive()
        history = system.history("api")
        killed = next(e for e in history if e.kind == "killed")
        exits = [e for e in history if e.kind == "exited"]
        ready = history[-1]
        assert exits[0].exit_code == -signal.SIGKILL and exits[0].pid == pid
        assert ready.kind == "ready" and ready.pid == system.pids()["api"] != pid
        assert killed.monotonic <= exits[0].monotonic < ready.monotonic
        # both exits were the experiment's doing, and are told and recorded so (not as crashes)
        assert recorder.messages("api", "exited") == ["killed by experiment crash (SIGKILL)"] * 2
        assert len(exits) == 2 and all(e.planned for e in exits)
        assert not any(e.planned for e in history if e.kind != "exited")


def test_planned_kills_spend_no_restarts_nor_back_off(make_system: MakeSystem) -> None:
    # One restart allowed, a back-off that would double to 8 s: three kills by an experiment
    # must each be healed after the first back-off, and leave the crash budget untouched.
    service = http_service("api", restart="on-failure", restart_backoff="0.1s", max_restarts=1)
    system, recorder = make_system(
        {"api": service}, sample_interval=0.1, placeholders=port_placeholders("api")
    )
    with system:
        system.start()
        for round_ in range(1, 4):
            assert system.kill("api", by="experiment crash").ok
            wait_for(lambda n=round_: recorder.kinds("api").count("restarted") == n, 5, f"restart {round_}")
        system.check_alive()
        restarting = [e.detail for e in system.history("api") if e.kind == "restarting"]
        assert restarting == ["restart after a planned kill in 0.1s"] * 3


def test_kill_without_restart_policy_fails_check_alive(make_system: MakeSystem) -> None:
    system, _ = make_system({"worker": {"command": [*SERVICE]}}, sample_interval=0.1)
    with system:
        system.start()
        assert system.kill("worker", signal.SIGTERM).ok
        with pytest.raises(ServiceFailed, match="SIGTERM"):
            system.check_alive()


def test_fault_operations_target_only_this_systems_services(make_system: MakeSystem) -> None:
    system, _ = make_system({"worker": {"command": [*SERVICE]}})
    with pytest.raises(RuntimeError):
        system.kill("worker")  # not started
    with system:
        system.start()
        with pytest.raises(KeyError, match="nope"):
            system.pause("nope")


def test_pause_and_resume_are_verified_in_proc(make_system: MakeSystem) -> None:
    service = http_service("api", "--fork", "child")
    system, recorder = make_system({"api": service}, placeholders=port_placeholders("api"))
    with system:
        system.start()
        paused = system.pause("api")
        assert paused.ok and len(paused.pids) == 2
        assert states(paused.pids) == ["T", "T"]
        system.check_alive()  # paused is not dead
        resumed = system.resume("api")
        assert resumed.ok and sorted(resumed.pids) == sorted(paused.pids)
        assert all(state != "T" for state in states(paused.pids))
        assert kinds(system, "api")[-2:] == ["paused", "resumed"]
    assert recorder.kinds("api")[-2:] == ["stopping", "stopped"]


def test_stop_after_pause_stops_gracefully(make_system: MakeSystem) -> None:
    system, recorder = make_system({"worker": {"command": [*SERVICE], "grace": "5s"}})
    with system:
        system.start()
        pid = system.pids()["worker"]
        assert system.pause("worker").ok
    assert not alive(pid)
    stopped = recorder.messages("worker", "stopped")
    assert len(stopped) == 1 and stopped[0].startswith("ended by its SIGTERM")
    assert "killed:" not in stopped[0]  # SIGTERM was handled, no SIGKILL was needed


def test_restart_stops_gracefully_and_waits_until_ready(make_system: MakeSystem) -> None:
    placeholders = port_placeholders("api")
    system, recorder = make_system({"api": http_service("api")}, placeholders=placeholders)
    with system:
        system.start()
        first = system.pids()["api"]
        system.restart("api")
        assert system.pids()["api"] != first and not alive(first)
        assert httpx.get(f"http://127.0.0.1:{placeholders['port.api']}/").status_code == 200
        system.check_alive()
        history = system.history("api")
        assert [e.kind for e in history] == ["started", "ready", "stopped", "started", "ready"]
        assert history[2].exit_code == -signal.SIGTERM
        assert "restarted" in recorder.kinds("api")
    assert system.log_files()["api"].read_text().count("api: pid") == 2
