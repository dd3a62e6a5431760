from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from gonogo.system import Reaper, run_command

from .helpers import alive, wait_for


def read_pid(path: Path) -> int:
    wait_for(lambda: path.exists() and path.read_text().strip() != "", 5, f"{path}")
    return int(path.read_text())


def test_exit_code_and_interleaved_output_go_to_the_log(tmp_path: Path, reaper: Reaper) -> None:
    log = tmp_path / "out.log"
    script = "import sys; print('to stdout', flush=True); print('to stderr', file=sys.stderr); sys.exit(3)"

    outcome = run_command(
        [sys.executable, "-c", script],
        cwd=tmp_path, env=None, shell=False, timeout=30, log_path=log, reaper=reaper,
    )  # fmt: skip

    assert outcome.returncode == 3
    assert not outcome.timed_out and outcome.start_error is None
    assert outcome.started_at <= outcome.ended_at
    assert log.read_text().splitlines() == ["to stdout", "to stderr"]


def test_a_string_is_split_without_a_shell_and_env_is_merged(tmp_path: Path, reaper: Reaper) -> None:
    log = tmp_path / "out.log"
    script = "import os, sys; print(sys.argv[1:], os.environ['EXTRA'], 'PATH' in os.environ, os.getcwd())"
    command = f"{sys.executable} -c \"{script}\" 'two words' $HOME"

    outcome = run_command(
        command, cwd=tmp_path, env={"EXTRA": "yes"}, shell=False, timeout=30, log_path=log,
        reaper=reaper,
    )  # fmt: skip

    assert outcome.returncode == 0, log.read_text()
    assert log.read_text().strip() == f"['two words', '$HOME'] yes True {tmp_path}"


def test_shell_true_runs_under_sh(tmp_path: Path, reaper: Reaper) -> None:
    log = tmp_path / "out.log"

    outcome = run_command(
        "echo $GREETING | tr a-z A-Z; exit 4", cwd=tmp_path, env={"GREETING": "hello"},
        shell=True, timeout=30, log_path=log, reaper=reaper,
    )  # fmt: skip

    assert outcome.returncode == 4
    assert outcome.argv[:2] == ["/bin/sh", "-c"]
    assert log.read_text().strip() == "HELLO"


def test_the_command_carries_the_run_token(tmp_path: Path, reaper: Reaper) -> None:
    log = tmp_path / "out.log"
    run_command(
        [sys.executable, "-c", "import os; print(os.environ['GONOGO_RUN_TOKEN'])"],
        cwd=tmp_path, env={"GONOGO_RUN_TOKEN": "forged"}, shell=False, timeout=30,
        log_path=log, reaper=reaper,
    )  # fmt: skip
    assert log.read_text().strip() == reaper.token


def test_timeout_kills_the_whole_group(tmp_path: Path, reaper: Reaper) -> None:
    pidfile = tmp_path / "background.pid"
    started = time.monotonic()

    outcome = run_command(
        f"sleep 100 & echo $! > {pidfile}; trap '' TERM; sleep 100",
        cwd=tmp_path, env=None, shell=True, timeout=0.5, log_path=tmp_path / "out.log",
        reaper=reaper,
    )  # fmt: skip

    assert outcome.timed_out
    assert outcome.returncode is None
    assert 0.4 < outcome.duration < 3
    assert time.monotonic() - started < 6  # SIGTERM ignored: SIGKILL after the grace
    assert not alive(read_pid(pidfile))


def test_what_the_command_leaves_running_is_stopped(tmp_path: Path, reaper: Reaper) -> None:
    pidfile = tmp_path / "background.pid"

    outcome = run_command(
        f"sleep 100 & echo $! > {pidfile}", cwd=tmp_path, env=None, shell=True, timeout=30,
        log_path=tmp_path / "out.log", reaper=reaper,
    )  # fmt: skip

    assert outcome.returncode == 0
    assert not alive(read_pid(pidfile))


def test_a_missing_program_is_a_start_error_not_an_exception(tmp_path: Path, reaper: Reaper) -> None:
    log = tmp_path / "out.log"

    outcome = run_command(
        ["no-such-program-anywhere", "--version"], cwd=tmp_path, env=None, shell=False,
        timeout=30, log_path=log, reaper=reaper,
    )  # fmt: skip

    assert outcome.returncode is None and not outcome.timed_out
    assert outcome.start_error is not None and "No such file" in outcome.start_error
    assert "no-such-program-anywhere" in log.read_text()


@pytest.mark.parametrize(
    ("command", "cwd", "expected"),
    [
        ("./not-executable", ".", "Permission denied"),
        ("true", "missing-dir", "No such file"),
        ("echo 'unbalanced", ".", "No closing quotation"),
        ("", ".", "empty"),
    ],
)
def test_other_start_errors(tmp_path: Path, reaper: Reaper, command: str, cwd: str, expected: str) -> None:
    (tmp_path / "not-executable").write_text("#!/bin/sh\n")

    outcome = run_command(
        command, cwd=tmp_path / cwd, env=None, shell=False, timeout=30,
        log_path=tmp_path / "out.log", reaper=reaper,
    )  # fmt: skip

    assert outcome.start_error is not None and expected in outcome.start_error


def test_ctrl_c_kills_the_group_and_is_re_raised(tmp_path: Path, reaper: Reaper) -> None:
    pidfile = tmp_path / "background.pid"

    def press_ctrl_c_once_running() -> None:
        read_pid(pidfile)
        os.kill(os.getpid(), signal.SIGINT)

    interrupter = threading.Thread(target=press_ctrl_c_once_running, daemon=True)
    # Python ignores SIGINT if it started ignoring it (a background job); not here.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        interrupter.start()
        with pytest.raises(KeyboardInterrupt):
            run_command(
                f"sleep 100 & echo $! > {pidfile}; sleep 100", cwd=tmp_path, env=None,
                shell=True, timeout=30, log_path=tmp_path / "out.log", reaper=reaper,
            )  # fmt: skip
        interrupter.join()
    finally:
        signal.signal(signal.SIGINT, previous)

    assert not alive(read_pid(pidfile))
