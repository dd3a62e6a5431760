"""Resource stress with stress-ng: CPU, memory, mixed I/O and disk writes.

stress-ng runs in its own process group, registered with the reaper, with `--timeout` so
that it ends by itself even if everything else fails, and with its temporary files in a
directory of its own under `work_dir`. The fault counts as applied only once its workers
were seen doing the work (burning CPU, holding memory, moving bytes), measured with psutil.
"""

from __future__ import annotations

__all__ = ["StressFault", "start_stress"]

import contextlib
import math
import os
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import psutil

from gonogo.faults.base import ActiveFault, FaultError, FaultNotSupported
from gonogo.system import procfs
from gonogo.system.reaper import Reaper

Resource = Literal["cpu", "memory", "io", "disk"]

_STRESSORS: dict[str, str] = {"cpu": "cpu", "memory": "vm", "io": "iomix", "disk": "hdd"}
_VERIFY_TIMEOUT = 15.0  # stress-ng starts in milliseconds; a loaded CI machine may be slow
_MEASURE_INTERVAL = 0.5
_STOP_GRACE = 5.0  # SIGTERM lets stress-ng delete its temporary files
_KILL_TIMEOUT = 10.0
_IO_BYTES = 64 * 1024 * 1024  # per worker: enough to keep writing, small enough for any disk


@dataclass
class StressFault(ActiveFault):
    """stress-ng running in process group `pgid`; `remove()` stops the whole group."""

    process: subprocess.Popen[bytes] | None = None
    pgid: int = 0
    temp_dir: Path | None = None
    log_path: Path | None = None
    removed: bool = field(default=False, init=False)

    def remove(self) -> None:
        if self.removed or self.process is None:
            return
        process = self.process
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(_STOP_GRACE)
        deadline = time.monotonic() + _STOP_GRACE
        while _group_members(self.pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        procfs.kill_until_gone(procfs.Selector(pgids={self.pgid}), deadline=time.monotonic() + _KILL_TIMEOUT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(_KILL_TIMEOUT)
        left = _group_members(self.pgid)
        if left:
            raise FaultError(f"stress-ng processes {sorted(left)} survived SIGKILL")
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
        self.removed = True
        self.evidence["exit_code"] = process.returncode
        if self.log_path is not None and self.log_path.exists():
            self.evidence["stress_ng_output"] = self.log_path.read_text(errors="replace")[-4000:]


def start_stress(
    resource: Resource,
    *,
    reaper: Reaper,
    work_dir: Path,
    workers: int = 1,
    load: float | None = None,
    memory_bytes: int | None = None,
    duration: float,
    cpus: list[int] | None = None,
) -> StressFault:
    """Start stress-ng stressing `resource` and return once its effect is seen.

    `load` is the CPU percentage each cpu worker aims at (default 100); `memory_bytes`
    (required for memory) is the total held by all memory workers together; `duration`
    bounds the run (stress-ng's own `--timeout`); `cpus` pins the workers to those CPUs.
    Raises FaultNotSupported without stress-ng, FaultError for a bad request or when the
    workers do not start. If the effect cannot be seen in time the fault is still returned,
    with `applied` False and `detail` saying what was seen.
    """
    argv = _command(resource, workers=workers, load=load, memory_bytes=memory_bytes, duration=duration)
    if cpus is not None:
        allowed = os.sched_getaffinity(0)
        if not cpus or not set(cpus) <= allowed:
            usable = sorted(allowed)
            raise FaultError(f"stress: cpus {cpus} are not a non-empty subset of the usable CPUs {usable}")
        argv += ["--taskset", ",".join(str(cpu) for cpu in sorted(set(cpus)))]
    executable = shutil.which("stress-ng")
    if executable is None:
        raise FaultNotSupported("stress-ng is not installed (Debian package stress-ng)")
    fault_id = secrets.token_hex(4)
    temp_dir = work_dir / f"stress-{resource}-{fault_id}"
    temp_dir.mkdir(parents=True)
    log_path = work_dir / f"stress-{resource}-{fault_id}.log"
    argv = [executable, *argv, "--temp-path", str(temp_dir)]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=temp_dir,
            env={**os.environ, **reaper.env()},
            start_new_session=True,
        )
    fault = StressFault(
        kind=f"stress.{resource}",
        description=_describe(resource, workers, load, memory_bytes, duration, cpus),
        process=process,
        pgid=process.pid,
        temp_dir=temp_dir,
        log_path=log_path,
        evidence={"command": argv, "pid": process.pid},
    )
    try:
        reaper.register(process.pid, process.pid)
        fault.applied, fault.detail = _observe(resource, fault, workers, memory_bytes)
    except BaseException:
        fault.remove()
        raise
    return fault


def _command(
    resource: str, *, workers: int, load: float | None, memory_bytes: int | None, duration: float
) -> list[str]:
    if resource not in _STRESSORS:
        raise FaultError(f"stress: unknown resource {resource!r}; use one of {', '.join(_STRESSORS)}")
    if workers < 1:
        raise FaultError(f"stress: workers must be at least 1, not {workers}")
    if not math.isfinite(duration) or duration <= 0:
        raise FaultError(f"stress: duration must be a positive number of seconds, not {duration}")
    stressor = _STRESSORS[resource]
    # Whole seconds, rounded up: stress-ng's --timeout takes no fractions.
    argv = [f"--{stressor}", str(workers), "--timeout", f"{math.ceil(duration)}s"]
    if load is not None:
        if resource != "cpu":
            raise FaultError("stress: load applies to cpu stress only")
        if not 0 < load <= 100:
            raise FaultError(f"stress: load is a CPU percentage per worker in (0, 100], not {load}")
        argv += ["--cpu-load", str(round(load))]
    if resource == "memory":
        if memory_bytes is None or memory_bytes < 4096 * workers:
            raise FaultError("stress: memory stress needs memory_bytes (at least one page per worker)")
        # --vm-keep: map the memory once and keep it, instead of unmapping it between passes.
        argv += ["--vm-bytes", str(memory_bytes // workers), "--vm-keep"]
    elif memory_bytes is not None:
        raise FaultError("stress: memory_bytes applies to memory stress only")
    if resource == "io":
        argv += ["--iomix-bytes", str(_IO_BYTES)]
    if resource == "disk":
        argv += ["--hdd-bytes", str(_IO_BYTES)]
    return argv


def _describe(
    resource: str,
    workers: int,
    load: float | None,
    memory_bytes: int | None,
    duration: float,
    cpus: list[int] | None,
) -> str:
    what = {
        "cpu": f"{workers} CPU worker(s) at {load if load is not None else 100:g}%",
        "memory": f"{workers} memory worker(s) holding {memory_bytes} bytes in all",
        "io": f"{workers} mixed-I/O worker(s)",
        "disk": f"{workers} disk-writing worker(s)",
    }[resource]
    where = f" on CPUs {cpus}" if cpus else ""
    return f"stress-ng: {what}{where} for at most {duration:g}s"


def _group_members(pgid: int) -> set[int]:
    return {process.pid for process in procfs.scan() if process.pgid == pgid}


def _workers(fault: StressFault) -> list[psutil.Process]:
    """The group's processes doing the work: not the stress-ng parent, not a vm worker's keeper."""
    found = []
    for pid in _group_members(fault.pgid) - {fault.pgid}:
        with contextlib.suppress(psutil.Error):
            found.append(psutil.Process(pid))
    return found


def _observe(resource: str, fault: StressFault, workers: int, memory_bytes: int | None) -> tuple[bool, str]:
    """Watch the workers until they visibly do their work; (applied, how it was seen)."""
    assert fault.process is not None
    deadline = time.monotonic() + _VERIFY_TIMEOUT
    seen = "no stress-ng worker started"
    before = _snapshot(_workers(fault))
    while time.monotonic() < deadline:
        time.sleep(_MEASURE_INTERVAL)
        ended = fault.process.poll() is not None
        after = _snapshot(_workers(fault))
        if after:
            applied, seen = _judge(resource, fault, before, after, workers, memory_bytes)
            if applied:
                return True, seen
        if ended:
            output = fault.log_path.read_text(errors="replace")[-1000:] if fault.log_path else ""
            code = fault.process.returncode
            raise FaultError(
                f"stress-ng ended (exit code {code}) before it was seen working: {output.strip()}"
            )
        before = after
    return False, f"not seen working within {_VERIFY_TIMEOUT:g}s: {seen}"


def _judge(
    resource: str,
    fault: StressFault,
    before: dict[int, _Sample],
    after: dict[int, _Sample],
    workers: int,
    memory_bytes: int | None,
) -> tuple[bool, str]:
    """Did the workers do their work between the two snapshots? (yes or no, what was seen)"""
    # A worker born during the interval did all its work in it.
    busy = sum(after[pid].cpu - (before[pid].cpu if pid in before else 0.0) for pid in after)
    moved = sum(after[pid].io - (before[pid].io if pid in before else 0) for pid in after)
    rss = sum(sample.rss for sample in after.values())
    fault.evidence.update(
        workers=sorted(after), cpu_seconds=round(busy, 3), interval=_MEASURE_INTERVAL, rss_bytes=rss
    )
    seen = f"{len(after)} worker process(es), {100 * busy / _MEASURE_INTERVAL:.0f}% CPU"
    if resource == "cpu":
        return busy > 0.05 * _MEASURE_INTERVAL * min(workers, len(after)), f"{seen} over {_MEASURE_INTERVAL}s"
    if resource == "memory":
        assert memory_bytes is not None
        # Most of it resident: the rest may be rounding, or already swapped out.
        return rss >= 0.7 * memory_bytes, f"{seen}, {rss} bytes resident"
    fault.evidence["io_bytes"] = moved
    return moved > 0, f"{seen}, {moved} bytes read or written in {_MEASURE_INTERVAL}s"


@dataclass(frozen=True)
class _Sample:
    cpu: float  # seconds
    rss: int  # bytes
    io: int  # bytes read + written through system calls (also on tmpfs, unlike storage counters)


def _snapshot(processes: list[psutil.Process]) -> dict[int, _Sample]:
    samples = {}
    for process in processes:
        try:
            with process.oneshot():
                times = process.cpu_times()
                io = process.io_counters()
                samples[process.pid] = _Sample(
                    times.user + times.system,
                    process.memory_info().rss,
                    getattr(io, "read_chars", 0) + getattr(io, "write_chars", 0),
                )
        except psutil.Error:
            continue
    return samples
