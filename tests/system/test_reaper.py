"""Nothing is left behind, however gonogo exits.

The driver (services/driver.py) starts a system the way gonogo does: a web service, one
that ignores SIGTERM, one whose grandchild calls setsid(), one whose grandchild calls
setsid() and clears its environment. The tests then end the driver in every way it can
end and look, through /proc, for anything left.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gonogo.system import Reaper

from .helpers import SERVICES, alive, kill_with_token, wait_for, with_token


@dataclass
class Driver:
    process: subprocess.Popen[bytes]
    state: Path
    token: str
    reaper_pid: int
    holder: int | None
    pids: dict[str, int]

    def log(self) -> str:
        parts = []
        for name in ("driver.log", "reaper.log"):
            path = self.state / name
            parts.append(f"--- {name}\n{path.read_text() if path.exists() else '(none)'}")
        return "\n".join(parts)


StartDriver = Callable[[str], Driver]


def let_the_reaper_adopt() -> None:
    """Give the reaper one refresh (every 0.5 s) to remember the clean-environment grandchild.

    That grandchild left its group and has no token: once gonogo dies, and its parent with
    it (PR_SET_PDEATHSIG), only the reaper's memory of it remains. One born less than a
    refresh before a hard death of gonogo can escape (documented in gonogo.system.reaper).
    """
    time.sleep(1.2)


@pytest.fixture
def start_driver(tmp_path: Path) -> Iterator[StartDriver]:
    drivers: list[Driver] = []
    started: list[subprocess.Popen[bytes]] = []

    def start(mode: str) -> Driver:
        state = tmp_path / mode
        state.mkdir()
        with open(state / "driver.log", "wb") as log:
            process = subprocess.Popen(
                [sys.executable, str(SERVICES / "driver.py"), str(state), mode],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a signal for it must not reach pytest
            )
        started.append(process)
        up = state / "up.json"
        try:
            wait_for(lambda: up.exists() or process.poll() is not None, 30, "the driver")
        finally:
            if not up.exists():
                process.kill()
        assert up.exists(), (state / "driver.log").read_text()
        info = json.loads(up.read_text())
        driver = Driver(process, state, info["token"], info["reaper"], info["holder"], info["pids"])
        drivers.append(driver)
        for name, pid in driver.pids.items():
            assert alive(pid), f"{name} is not running\n{driver.log()}"
        return driver

    yield start

    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()
    for driver in drivers:
        for pid in (driver.holder, driver.reaper_pid, *driver.pids.values()):
            if pid and alive(pid):
                os.kill(pid, signal.SIGKILL)
        kill_with_token(driver.token)


def assert_nothing_left(driver: Driver) -> None:
    def clean() -> bool:
        return not with_token(driver.token) and not any(
            alive(pid) for pid in (driver.reaper_pid, *driver.pids.values())
        )

    try:
        wait_for(clean, 10, "every process of the run to be gone")
    except AssertionError:
        left = {name: pid for name, pid in driver.pids.items() if alive(pid)}
        raise AssertionError(
            f"left: {left}, with token: {with_token(driver.token)}\n{driver.log()}"
        ) from None


def test_sigkill_of_gonogo(start_driver: StartDriver) -> None:
    driver = start_driver("plain")
    let_the_reaper_adopt()
    driver.process.send_signal(signal.SIGKILL)

    assert_nothing_left(driver)
    wait_for((driver.state / "on_death").exists, 5, "the on-death command")
    assert "gonogo death; killed" in (driver.state / "reaper.log").read_text()


def test_sigkill_of_gonogo_while_a_forked_child_holds_the_pipe(start_driver: StartDriver) -> None:
    driver = start_driver("fork-holder")
    assert driver.holder is not None and alive(driver.holder)
    let_the_reaper_adopt()
    driver.process.send_signal(signal.SIGKILL)

    assert_nothing_left(driver)  # noticed by gonogo's pid, not by the pipe
    wait_for((driver.state / "on_death").exists, 5, "the on-death command")


def test_sigterm_without_handler_is_covered_by_the_reaper(start_driver: StartDriver) -> None:
    driver = start_driver("plain")
    let_the_reaper_adopt()
    driver.process.send_signal(signal.SIGTERM)

    assert driver.process.wait(10) == -signal.SIGTERM
    assert_nothing_left(driver)
    wait_for((driver.state / "on_death").exists, 5, "the on-death command")


@pytest.mark.parametrize(("mode", "signum"), [("graceful", signal.SIGTERM), ("plain", signal.SIGINT)])
def test_signal_handled_by_gonogo_stops_the_system_cleanly(
    start_driver: StartDriver, mode: str, signum: int
) -> None:
    driver = start_driver(mode)
    driver.process.send_signal(signum)

    driver.process.wait(15)
    assert_nothing_left(driver)
    output = (driver.state / "driver.log").read_text()
    for service in ("web", "stubborn", "setsid", "clean"):
        assert f"{service} stopped:" in output, output  # stopped by the System, in order
    assert "stubborn stopped: was killed by SIGKILL" in output
    assert "gonogo closed; killed 0 process(es)" in (driver.state / "reaper.log").read_text()
    assert not (driver.state / "on_death").exists()  # a clean close is no death


def test_close_kills_what_is_left_and_is_no_death(tmp_path: Path) -> None:
    token = "close-" + secrets.token_hex(8)
    marker = tmp_path / "on_death"
    reaper = Reaper.start(token, on_death_argv=["touch", str(marker)])
    env = {**os.environ, **reaper.env()}
    try:
        registered = subprocess.Popen(["sleep", "60"], start_new_session=True)  # no token
        reaper.register(registered.pid, registered.pid)
        carrier = subprocess.Popen(["sleep", "60"], env=env, start_new_session=True)
        assert alive(registered.pid) and alive(carrier.pid)

        reaper.close()
        reaper.close()  # idempotent

        assert registered.wait(5) == -signal.SIGKILL
        assert carrier.wait(5) == -signal.SIGKILL
        assert not alive(reaper.pid)
        assert not marker.exists()
    finally:
        reaper.close()
        kill_with_token(token)


def test_a_closed_reaper_refuses_registrations(tmp_path: Path) -> None:
    reaper = Reaper.start("closed-" + secrets.token_hex(8))
    reaper.close()
    with pytest.raises(Exception, match="closed"):
        reaper.register(os.getpid(), os.getpgid(0))


def test_a_token_must_be_safe_to_put_in_an_environment() -> None:
    with pytest.raises(ValueError):
        Reaper.start("bad token with spaces")


# Undo commands: how to take back a fault living outside any process.

_UNDO_DRIVER = """
import pathlib, sys, time
from gonogo.system import Reaper
state, mode, token = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
reaper = Reaper.start(token, on_death_argv=["touch", str(state / "on_death")], log_path=state / "reaper.log")
kept = reaper.add_undo(["rm", "-f", "--", str(state / "undone by the reaper")])
withdrawn = reaper.add_undo(["rm", "-f", "--", str(state / "withdrawn")])
reaper.remove_undo(withdrawn)
reaper.remove_undo(withdrawn)  # idempotent
# The newest undo runs first: this one records whether the older one had run yet.
older, order = str(state / "undone by the reaper"), str(state / "order")
reaper.add_undo(["sh", "-c", 'test -e "$1" && echo first > "$2"', "sh", older, order])
if mode == "close":
    reaper.close()
    (state / "closed").touch()
else:
    (state / "up").touch()
    time.sleep(120)
"""


def _start_undo_driver(state: Path, mode: str, token: str) -> subprocess.Popen[bytes]:
    for name in ("undone by the reaper", "withdrawn"):
        (state / name).touch()
    with open(state / "driver.log", "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-c", _UNDO_DRIVER, str(state), mode, token],
            start_new_session=True,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def test_undo_commands_run_when_gonogo_is_killed(tmp_path: Path) -> None:
    token = "undo-" + secrets.token_hex(8)
    driver = _start_undo_driver(tmp_path, "wait", token)
    try:
        wait_for(lambda: (tmp_path / "up").exists() or driver.poll() is not None, 30, "the driver")
        assert (tmp_path / "up").exists(), (tmp_path / "driver.log").read_text()
        driver.kill()
        driver.wait(10)

        wait_for(lambda: (tmp_path / "on_death").exists(), 15, "the on-death command")
        log = (tmp_path / "reaper.log").read_text()
        assert not (tmp_path / "undone by the reaper").exists(), log
        assert (tmp_path / "withdrawn").exists(), log  # removed from the watchdog: not run
        assert (tmp_path / "order").read_text() == "first\n", log  # newest undo first
        assert log.count("running undo command") == 2, log
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
        kill_with_token(token)


def test_a_clean_close_runs_no_undo_command(tmp_path: Path) -> None:
    token = "undo-close-" + secrets.token_hex(8)
    driver = _start_undo_driver(tmp_path, "close", token)
    try:
        assert driver.wait(30) == 0, (tmp_path / "driver.log").read_text()
        assert (tmp_path / "closed").exists()
        assert (tmp_path / "undone by the reaper").exists()
        assert (tmp_path / "withdrawn").exists()
        assert not (tmp_path / "order").exists()
        assert "running undo" not in (tmp_path / "reaper.log").read_text()
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
        kill_with_token(token)


def test_an_undo_command_must_name_a_program() -> None:
    with Reaper.start("undo-bad-" + secrets.token_hex(8)) as reaper:
        with pytest.raises(ValueError):
            reaper.add_undo([])
        with pytest.raises(ValueError):
            reaper.add_undo(["", "x"])
