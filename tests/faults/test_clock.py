"""Clock skew: a real long-running process under libfaketime sees its wall clock move and come back."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gonogo.faults.base import FaultError
from gonogo.faults.clock import faketime_env, faketime_library, faketime_supported, skew_clock

pytestmark = pytest.mark.skipif(faketime_library() is None, reason="libfaketime is not installed")

# Prints how far its wall clock is from the real one, ten times a second. Its monotonic
# clock is real (libfaketime leaves it alone), and so is ours: our wall minus monotonic
# clock, given as an argument, turns its monotonic reading into the real time. It waits
# with select(), not time.sleep(): see the known limitation in gonogo.faults.clock.
_SERVICE = """
import select, sys, time
real_minus_monotonic = float(sys.argv[1])
while True:
    print(round(time.time() - (time.monotonic() + real_minus_monotonic), 3), flush=True)
    select.select([], [], [], 0.1)
"""


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    control = tmp_path / "clock" / "service.faketime"
    env = {**os.environ, **faketime_env(control)}
    process = subprocess.Popen(
        [sys.executable, "-c", _SERVICE, repr(time.time() - time.monotonic())],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        yield control, process
    finally:
        process.kill()
        process.wait()


def wait_for_offset(process: subprocess.Popen[str], wanted: float, timeout: float = 20.0) -> float:
    """Read the service's reports until one is within half a second of `wanted`."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    seen = float("nan")
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        assert line, f"the service ended (exit code {process.poll()})"
        seen = float(line)
        if abs(seen - wanted) <= 0.5:
            return seen
    raise AssertionError(f"the service's clock is {seen:+.3f}s off, not {wanted:+g}s")


def test_faketime_is_supported_here() -> None:
    assert faketime_supported() is None


def test_a_running_service_sees_the_skew_come_and_go(
    service: tuple[Path, subprocess.Popen[str]],
) -> None:
    control, process = service
    assert control.read_text().strip() == "+0"
    wait_for_offset(process, 0)

    ahead = skew_clock(control, 3600)
    assert ahead.applied, ahead.detail
    assert ahead.kind == "clock.skew"
    assert abs(ahead.evidence["offset_seen"] - 3600) < 0.5
    wait_for_offset(process, 3600)
    ahead.remove()
    ahead.remove()  # idempotent
    wait_for_offset(process, 0)

    with skew_clock(control, -120.5) as behind:
        assert behind.applied, behind.detail
        wait_for_offset(process, -120.5)
    wait_for_offset(process, 0)
    assert abs(behind.evidence["offset_seen_after_removal"]) < 0.5


def test_skew_needs_a_service_started_under_faketime(tmp_path: Path) -> None:
    with pytest.raises(FaultError, match="start the service with faketime_env"):
        skew_clock(tmp_path / "never-written", 60)
    control = tmp_path / "control"
    faketime_env(control)
    with pytest.raises(FaultError, match="not a number"):
        skew_clock(control, float("nan"))


def test_threads_are_not_slowed_by_the_monotonic_fix(tmp_path: Path) -> None:
    # libfaketime's "monotonic fix" (its own pthread_cond_timedwait) made a threaded Python
    # service about ten times slower (docs/chaos.md); with the monotonic clock left alone it
    # is not needed, and timed waits under a skew still end on time.
    env = {**os.environ, **faketime_env(tmp_path / "clock")}
    assert env["FAKETIME_FORCE_MONOTONIC_FIX"] == "0"
    (tmp_path / "clock").write_text("+3600\n")
    code = "import threading; e = threading.Event(); print(e.wait(0.2))"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=20)
    assert done.stdout.strip() == "False"
