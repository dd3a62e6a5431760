"""stress-ng faults: applied means seen working; removed means no stress-ng process of it left."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from gonogo.faults.base import FaultError, FaultNotSupported
from gonogo.faults.stress import StressFault, start_stress
from gonogo.system import Reaper, procfs

pytestmark = pytest.mark.skipif(shutil.which("stress-ng") is None, reason="stress-ng is not installed")


def group(pgid: int) -> list[int]:
    return [process.pid for process in procfs.scan() if process.pgid == pgid]


def assert_removed(fault: StressFault) -> None:
    fault.remove()
    fault.remove()  # idempotent
    assert group(fault.pgid) == []
    assert fault.temp_dir is not None and not fault.temp_dir.exists()


def test_cpu_stress_burns_cpu_until_removed(reaper: Reaper, tmp_path: Path) -> None:
    fault = start_stress("cpu", reaper=reaper, work_dir=tmp_path, workers=2, load=60, duration=60)
    try:
        assert fault.applied, fault.detail
        assert fault.kind == "stress.cpu"
        assert len(fault.evidence["workers"]) == 2
        assert fault.evidence["cpu_seconds"] > 0
        names = {psutil.Process(pid).name() for pid in group(fault.pgid)}
        assert names >= {"stress-ng", "stress-ng-cpu"}, names
    finally:
        assert_removed(fault)
    assert "dispatching hogs: 2 cpu" in fault.evidence["stress_ng_output"]


def test_memory_stress_holds_the_memory(reaper: Reaper, tmp_path: Path) -> None:
    size = 64 * 1024 * 1024
    fault = start_stress("memory", reaper=reaper, work_dir=tmp_path, memory_bytes=size, duration=60)
    try:
        assert fault.applied, fault.detail
        assert fault.evidence["rss_bytes"] >= 0.7 * size
    finally:
        assert_removed(fault)


@pytest.mark.parametrize("resource", ["io", "disk"])
def test_io_stress_moves_bytes_in_its_own_directory(reaper: Reaper, tmp_path: Path, resource: str) -> None:
    fault = start_stress(resource, reaper=reaper, work_dir=tmp_path, duration=60)  # type: ignore[arg-type]
    try:
        assert fault.applied, fault.detail
        assert fault.evidence["io_bytes"] > 0
        assert fault.temp_dir is not None and fault.temp_dir.parent == tmp_path
    finally:
        assert_removed(fault)
    # Only stress-ng's log is left in the work directory; its data files went with it.
    assert [path.suffix for path in tmp_path.iterdir() if path.name.startswith("stress-")] == [".log"]


def test_stress_pinned_to_one_cpu(reaper: Reaper, tmp_path: Path) -> None:
    cpu = min(os.sched_getaffinity(0))
    fault = start_stress("cpu", reaper=reaper, work_dir=tmp_path, duration=60, cpus=[cpu])
    try:
        assert fault.applied, fault.detail
        for pid in fault.evidence["workers"]:
            assert psutil.Process(pid).cpu_affinity() == [cpu]
    finally:
        assert_removed(fault)


def test_stress_ends_by_itself_after_its_duration(reaper: Reaper, tmp_path: Path) -> None:
    fault = start_stress("cpu", reaper=reaper, work_dir=tmp_path, duration=2)
    try:
        assert fault.applied, fault.detail
        assert fault.process is not None
        fault.process.wait(30)  # stress-ng's own --timeout, even if nobody removes it
        deadline = time.monotonic() + 10
        while group(fault.pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert group(fault.pgid) == []
    finally:
        assert_removed(fault)


_GONOGO = """
import json, pathlib, secrets, sys, time
from gonogo.system import Reaper
from gonogo.faults.stress import start_stress
work = pathlib.Path(sys.argv[1])
reaper = Reaper.start("stress-death-" + secrets.token_hex(8), log_path=work / "reaper.log")
fault = start_stress("cpu", reaper=reaper, work_dir=work, duration=120)
print(json.dumps({"pgid": fault.pgid, "applied": fault.applied}), flush=True)
time.sleep(120)
"""


def test_stress_goes_when_gonogo_is_killed(tmp_path: Path) -> None:
    gonogo = subprocess.Popen(
        [sys.executable, "-c", _GONOGO, str(tmp_path)], stdout=subprocess.PIPE, start_new_session=True
    )
    pgid = 0
    try:
        assert gonogo.stdout is not None
        started = json.loads(gonogo.stdout.readline())
        pgid = started["pgid"]
        assert started["applied"] and group(pgid)
        gonogo.send_signal(signal.SIGKILL)
        gonogo.wait(10)
        deadline = time.monotonic() + 20
        while group(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert group(pgid) == [], (tmp_path / "reaper.log").read_text()
    finally:
        if gonogo.poll() is None:
            gonogo.kill()
            gonogo.wait()
        if pgid:
            procfs.kill_until_gone(procfs.Selector(pgids={pgid}), deadline=time.monotonic() + 5)


@pytest.mark.parametrize(
    ("resource", "options", "message"),
    [
        ("cpu", {"workers": 0}, "at least 1"),
        ("cpu", {"load": 150}, "CPU percentage"),
        ("memory", {}, "needs memory_bytes"),
        ("memory", {"memory_bytes": 1 << 20, "load": 50}, "cpu stress only"),
        ("io", {"memory_bytes": 1 << 20}, "memory stress only"),
        ("cpu", {"duration": 0}, "positive"),
        ("cpu", {"cpus": [4096]}, "usable CPUs"),
        ("gpu", {}, "unknown resource"),
    ],
)
def test_bad_requests_are_refused_clearly(
    reaper: Reaper, tmp_path: Path, resource: str, options: dict[str, object], message: str
) -> None:
    arguments: dict[str, object] = {"duration": 10, **options}
    with pytest.raises(FaultError, match=message):
        start_stress(resource, reaper=reaper, work_dir=tmp_path, **arguments)  # type: ignore[arg-type]
    assert list(tmp_path.glob("stress-*")) == []


def test_without_stress_ng_it_is_not_supported(
    reaper: Reaper, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FaultNotSupported, match="stress-ng is not installed"):
        start_stress("cpu", reaper=reaper, work_dir=tmp_path, duration=10)
