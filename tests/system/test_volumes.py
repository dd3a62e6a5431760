"""A service's data volume (`data:`): a real tmpfs mounted before it starts, gone after the System
stops, filled by `disk_full`, and unmounted by the watchdog when gonogo is killed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from gonogo.errors import ServiceFailed
from gonogo.experiment.faults import FaultEnvironment, apply_fault, describe_fault
from gonogo.experiment.settings import DiskFullFault
from gonogo.faults.targets import FaultTargets, VolumeTarget
from gonogo.plan.model import DataVolume
from gonogo.system import Reaper
from gonogo.system.volumes import volume_path

from .conftest import MakeSystem

MiB = 1024 * 1024

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


def write(path: Path, mib: int) -> subprocess.CompletedProcess[str]:
    """A writer process: `mib` MiB to `path`, as a service writing its data would."""
    return subprocess.run(
        ["dd", "if=/dev/zero", f"of={path}", "bs=1M", f"count={mib}", "conv=fsync"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@needs_root
def test_a_data_volume_is_mounted_for_the_service_filled_by_disk_full_and_gone_after_stop(
    make_system: MakeSystem, tmp_path: Path, reaper: Reaper
) -> None:
    data = {"path": "{run_dir}/db-data", "size": "16MiB"}
    system, recorder = make_system(
        {"db": {"command": ["sleep", "60"], "grace": 1, "data": data}},
        placeholders={"run_dir": str(tmp_path)},
    )
    system.start()
    mount = tmp_path / "db-data"
    assert os.path.ismount(mount)
    assert recorder.messages("db", "mounted") == [f"data volume: tmpfs of 16.0 MiB at {mount}"]
    assert recorder.kinds("db").index("mounted") < recorder.kinds("db").index("started")
    stat = os.statvfs(mount)
    assert stat.f_blocks * stat.f_frsize == 16 * MiB
    assert write(mount / "before", 2).returncode == 0

    path = volume_path(
        DataVolume.model_validate(data), lambda t: t.replace("{run_dir}", str(tmp_path)), tmp_path
    )
    targets = FaultTargets(reaper=reaper, data_volumes={"db": VolumeTarget("db", path, 16 * MiB)})
    env = FaultEnvironment(targets, lambda t: t, tmp_path, fault_window=1.0, name="full-0")
    plan_fault = DiskFullFault(disk_full="db")
    assert describe_fault(plan_fault) == "data volume of db filled leaving 0 bytes"
    fault = apply_fault(plan_fault, env)
    try:
        assert fault.applied, fault.detail
        refused = write(mount / "during", 4)
        assert refused.returncode != 0 and "No space left on device" in refused.stderr
    finally:
        fault.remove()
    assert write(mount / "after", 4).returncode == 0

    system.stop()
    assert not os.path.ismount(mount)
    assert recorder.messages("db", "unmounted") == [f"data volume at {mount} unmounted"]
    assert recorder.kinds("db")[-1] == "unmounted"  # only once the service had stopped

    # A service without a data volume cannot have its disk filled.
    with pytest.raises(Exception, match="service 'api' has no data volume"):
        apply_fault(DiskFullFault(disk_full="api"), env)


def test_a_data_path_that_holds_files_is_refused_before_any_service_starts(
    make_system: MakeSystem, tmp_path: Path
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "seed.db").write_bytes(b"x")
    system, recorder = make_system(
        {"db": {"command": ["sleep", "60"], "data": {"path": "data", "size": "8MiB"}}},
    )
    with pytest.raises(ServiceFailed, match=r"a tmpfs mounted there would hide them") as failure:
        system.start()
    assert (
        f"service 'db' has a data volume that could not be mounted: {tmp_path / 'data'} is not empty"
        in str(failure.value)
    )
    assert "started" not in recorder.kinds("db")
    assert not os.path.ismount(tmp_path / "data")


_KILLED_GONOGO = """
import os, secrets, signal, sys
from pathlib import Path
from gonogo.plan.model import SystemSpec
from gonogo.system import Reaper, System

class Quiet:
    def on_event(self, *args): pass
    def on_sample(self, *args): pass

base = Path(sys.argv[1])
spec = SystemSpec.model_validate(
    {"services": {"db": {"command": ["sleep", "60"], "data": {"path": str(base / "data"), "size": "4MiB"}}}}
)
reaper = Reaper.start("volumes-" + secrets.token_hex(6))
System(spec, plan_dir=base, expand=str, log_dir=base / "logs", reaper=reaper, observer=Quiet()).start()
print("mounted", os.path.ismount(base / "data"), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


@needs_root
def test_the_watchdog_unmounts_the_volume_when_gonogo_is_killed(tmp_path: Path) -> None:
    killed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_KILLED_GONOGO), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert killed.stdout.strip() == "mounted True", killed.stderr
    assert killed.returncode == -9
    deadline = time.monotonic() + 20
    while os.path.ismount(tmp_path / "data") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.ismount(tmp_path / "data")


_PLAN = """
name: t
system:
  services:
    api: {command: [sleep, "9"]%s}
checks:
  full:
    kind: chaos
    hypothesis: {probes: [{name: up, command: "true"}]}
    faults:
      - {disk_full: api}
"""


def test_validate_refuses_disk_full_on_a_service_without_a_data_volume(tmp_path: Path) -> None:
    from gonogo.errors import PlanError
    from gonogo.plan.load import parse_plan

    with pytest.raises(PlanError) as refused:
        parse_plan(_PLAN % "", tmp_path / "gonogo.yaml")
    assert str(refused.value) == (
        f"{tmp_path / 'gonogo.yaml'}:11:21: checks.full.faults[0].disk_full: a disk_full fault needs a "
        "service with data; 'api' has no data (system.services.api): give the service `data: {path: "
        "'{run_dir}/<service>-data', size: 64MB}`, a small filesystem gonogo mounts for its data, and have "
        "the service keep its data there"
    )
    plan = parse_plan(_PLAN % ', data: {path: "{run_dir}/api-data"}', tmp_path / "gonogo.yaml")
    assert plan.system.services["api"].data is not None and plan.system.services["api"].data.size == 64 * MiB
