"""Stopping: a polite signal to the whole group, then SIGKILL for whatever is left."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from .conftest import MakeSystem
from .helpers import SERVICE, alive, wait_for


def test_a_service_that_stops_on_sigterm_is_not_killed(make_system: MakeSystem) -> None:
    system, recorder = make_system({"worker": {"command": [*SERVICE], "grace": 10}})
    system.start()
    started = time.monotonic()
    system.stop()
    assert time.monotonic() - started < 5
    assert recorder.messages("worker", "stopping") == ["sending SIGTERM, SIGKILL after 10s"]
    [stopped] = recorder.messages("worker", "stopped")
    assert stopped.startswith("ended by its SIGTERM after ")
    assert "killed:" not in stopped


def test_a_service_that_ignores_its_stop_signal_is_killed_after_the_grace(
    make_system: MakeSystem,
) -> None:
    service = {"command": [*SERVICE, "--ignore-term"], "grace": "0.5s", "stop_signal": "TERM"}
    system, recorder = make_system({"stubborn": service})
    system.start()
    pid = system.pids()["stubborn"]
    started = time.monotonic()

    system.stop()

    assert 0.5 <= time.monotonic() - started < 5
    assert not alive(pid)
    [stopped] = recorder.messages("stubborn", "stopped")
    assert stopped.startswith("was killed by SIGKILL")
    assert "killed: still running 0.5s after SIGTERM" in stopped
    assert "ignoring SIGTERM" in system.log_files()["stubborn"].read_text()


@pytest.mark.parametrize("how", ["child", "setsid", "setsid-clean-env"])
def test_grandchildren_are_stopped_too(make_system: MakeSystem, tmp_path: Path, how: str) -> None:
    pidfile = tmp_path / "grandchild.pid"
    service = {
        "command": [*SERVICE, "--fork", how, "--pidfile", str(pidfile)],
        "ready": {"command": ["test", "-s", str(pidfile)], "interval": "50ms"},
        "grace": "0.3s",
    }
    system, _ = make_system({"forker": service})
    system.start()
    grandchild = int(pidfile.read_text())
    assert alive(grandchild)

    system.stop()

    assert not alive(system.pids()["forker"])
    assert not alive(grandchild)


def test_a_service_whose_parent_is_gone_leaves_no_orphan(make_system: MakeSystem, tmp_path: Path) -> None:
    """The service exits on its own, leaving a grandchild that left the group."""
    pidfile = tmp_path / "grandchild.pid"
    service = {
        "command": [*SERVICE, "--fork", "setsid", "--pidfile", str(pidfile), "--exit-after", "0.5"],
        "ready": {"command": ["test", "-s", str(pidfile)], "interval": "50ms"},
        "grace": "0.3s",
    }
    system, recorder = make_system({"forker": service}, sample_interval=0.1)
    system.start()
    grandchild = int(pidfile.read_text())
    wait_for(lambda: "exited" in recorder.kinds("forker"), 5, "the exit to be noticed")
    assert alive(grandchild)

    system.stop()

    assert not alive(grandchild)
    [stopped] = recorder.messages("forker", "stopped")
    assert stopped.startswith("had already exited with code 0")
