"""Disk fill on a small tmpfs the test mounts: a real writer runs out of space, then gets it back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gonogo.faults.base import FaultError
from gonogo.faults.disk import fill_disk, free_bytes
from gonogo.system import Reaper

MiB = 1024 * 1024


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 64 MiB tmpfs: filling it costs nothing and endangers no real disk."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount_point = tmp_path / "fs"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        # Lazy: a stray open file must not keep the mount (and fail the next test's cleanup).
        subprocess.run(["umount", "-l", str(mount_point)], timeout=30, check=False)


def test_fill_leaves_the_target_and_a_writer_gets_enospc(reaper: Reaper, small_fs: Path) -> None:
    fault = fill_disk(small_fs, leave_free=4 * MiB, max_fill=100 * MiB, reaper=reaper)
    try:
        assert fault.applied, fault.detail
        assert fault.kind == "disk.fill"
        assert 3 * MiB <= free_bytes(small_fs) <= 5 * MiB
        assert fault.evidence["free_after"] == free_bytes(small_fs)

        # A real process writing 16 MiB there runs out of space after about 4.
        writer = subprocess.run(
            ["dd", "if=/dev/zero", f"of={small_fs / 'data'}", "bs=1M", "count=16"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert writer.returncode != 0
        assert "No space left on device" in writer.stderr
        written = (small_fs / "data").stat().st_size
        assert 3 * MiB <= written <= 5 * MiB
    finally:
        fault.remove()
        fault.remove()  # idempotent
    assert fault.path is not None and not fault.path.exists()
    assert free_bytes(small_fs) >= 64 * MiB - written - MiB
    assert fault.evidence["free_after_removal"] - fault.evidence["free_before_removal"] >= 55 * MiB


def test_a_fill_bigger_than_max_fill_is_refused(reaper: Reaper, small_fs: Path) -> None:
    with pytest.raises(FaultError, match=r"more than max_fill \(1048576\)"):
        fill_disk(small_fs, leave_free=4 * MiB, max_fill=1 * MiB, reaper=reaper)
    assert list(small_fs.iterdir()) == []
    assert free_bytes(small_fs) == 64 * MiB


def test_nothing_is_written_when_there_is_already_less_free(reaper: Reaper, small_fs: Path) -> None:
    fault = fill_disk(small_fs, leave_free=100 * MiB, max_fill=1 * MiB, reaper=reaper)
    try:
        assert fault.applied, fault.detail
        assert "nothing written" in fault.detail
    finally:
        fault.remove()
    assert list(small_fs.iterdir()) == []


def test_bad_requests_are_refused_clearly(reaper: Reaper, tmp_path: Path) -> None:
    with pytest.raises(FaultError, match="not a directory"):
        fill_disk(tmp_path / "missing", leave_free=0, max_fill=MiB, reaper=reaper)
    with pytest.raises(FaultError, match="must not be negative"):
        fill_disk(tmp_path, leave_free=-1, max_fill=MiB, reaper=reaper)
    with pytest.raises(FaultError, match="max_fill must be positive"):
        fill_disk(tmp_path, leave_free=0, max_fill=0, reaper=reaper)


_GONOGO = """
import json, pathlib, secrets, sys, time
from gonogo.system import Reaper
from gonogo.faults.disk import fill_disk
target, state = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
reaper = Reaper.start("disk-death-" + secrets.token_hex(8), log_path=state / "reaper.log")
fault = fill_disk(target, leave_free=2 * 1024 * 1024, max_fill=100 * 1024 * 1024, reaper=reaper)
print(json.dumps({"path": str(fault.path), "applied": fault.applied}), flush=True)
time.sleep(120)
"""


def test_the_fill_goes_when_gonogo_is_killed(small_fs: Path, tmp_path: Path) -> None:
    gonogo = subprocess.Popen(
        [sys.executable, "-c", _GONOGO, str(small_fs), str(tmp_path)],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert gonogo.stdout is not None
        started = json.loads(gonogo.stdout.readline())
        assert started["applied"] and Path(started["path"]).exists()
        gonogo.send_signal(signal.SIGKILL)
        gonogo.wait(10)
        deadline = time.monotonic() + 20
        while Path(started["path"]).exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not Path(started["path"]).exists(), (tmp_path / "reaper.log").read_text()
        assert free_bytes(small_fs) == 64 * MiB
    finally:
        if gonogo.poll() is None:
            gonogo.kill()
            gonogo.wait()
