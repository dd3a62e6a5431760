"""Finding and killing processes through /proc.

Standard library only: the last-resort killing must not depend on anything that could
be missing or broken. A process belongs to what gonogo started when it is in one of our
process groups, carries one of our environment entries
(`GONOGO_RUN_TOKEN=…`, `GONOGO_PROCESS_TAG=…`), or descends from such a process: the
environment survives `setsid()`, the process group survives a cleared environment, and
descent catches a child that did both while its parent is still alive.
"""

from __future__ import annotations

__all__ = [
    "ProcInfo",
    "Selector",
    "info",
    "kill_until_gone",
    "open_files_limit",
    "scan",
    "select",
    "signal_all",
]

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    pgid: int
    state: str
    start_time: int  # clock ticks since boot: with the pid, identifies a process for good


def info(pid: int) -> ProcInfo | None:
    """The process `pid` now (zombies included), or None if there is none."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            data = stat.read()
    except OSError:
        return None
    # The command name is in parentheses and may itself contain spaces and ')'.
    fields = data[data.rfind(b")") + 2 :].split()
    try:
        return ProcInfo(pid, int(fields[1]), int(fields[2]), fields[0].decode(), int(fields[19]))
    except (IndexError, ValueError):
        return None


def open_files_limit(pid: int) -> int | None:
    """The soft limit of open files of process `pid` (/proc/PID/limits), None if unknown or unlimited."""
    try:
        with open(f"/proc/{pid}/limits") as limits:
            for line in limits:
                if line.startswith("Max open files"):
                    soft = line[len("Max open files") :].split()[0]
                    return int(soft) if soft.isdigit() else None
    except OSError:
        return None
    return None


def scan() -> list[ProcInfo]:
    """Every process alive now; zombies are left out (they hold nothing but a pid)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            process = info(int(entry))
            if process is not None and process.state not in ("Z", "X"):
                found.append(process)
    return found


def _environ_has(pid: int, entries: Iterable[bytes]) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as environ:
            data = b"\0" + environ.read() + b"\0"
    except OSError:  # gone, or not ours to read
        return False
    return any(b"\0" + entry + b"\0" in data for entry in entries)


@dataclass
class Selector:
    """What counts as ours: process groups, exact processes, environment entries."""

    pgids: set[int] = field(default_factory=set)
    processes: set[tuple[int, int]] = field(default_factory=set)  # (pid, start_time)
    env_entries: set[bytes] = field(default_factory=set)  # b"NAME=value"
    spare: set[int] = field(default_factory=set)  # never selected (ourselves, the owner)


def select(selector: Selector, processes: list[ProcInfo] | None = None) -> list[ProcInfo]:
    """The live processes `selector` designates, including their descendants."""
    processes = scan() if processes is None else processes
    chosen: dict[int, ProcInfo] = {}
    for process in processes:
        if process.pid in selector.spare:
            continue
        if (
            process.pgid in selector.pgids
            or (process.pid, process.start_time) in selector.processes
            or (selector.env_entries and _environ_has(process.pid, selector.env_entries))
        ):
            chosen[process.pid] = process
    children: dict[int, list[ProcInfo]] = {}
    for process in processes:
        children.setdefault(process.ppid, []).append(process)
    pending = list(chosen)
    while pending:
        for child in children.get(pending.pop(), []):
            if child.pid not in chosen and child.pid not in selector.spare:
                chosen[child.pid] = child
                pending.append(child.pid)
    return list(chosen.values())


def signal_all(selected: Iterable[ProcInfo], signum: int) -> None:
    for process in selected:
        with contextlib.suppress(OSError):  # already gone, or not ours
            os.kill(process.pid, signum)


def kill_until_gone(selector: Selector, *, deadline: float, quiet_rounds: int = 2) -> int:
    """SIGKILL everything selected, again and again, until a few scans in a row find nothing.

    Repeating catches processes forked while we were killing their parents. Returns how
    many processes were killed (one process may be counted more than once).
    """
    killed = 0
    quiet = 0
    while quiet < quiet_rounds and time.monotonic() < deadline:
        for pgid in selector.pgids:
            with contextlib.suppress(OSError):
                os.killpg(pgid, signal.SIGKILL)
        found = select(selector)
        if found:
            quiet = 0
            killed += len(found)
            signal_all(found, signal.SIGKILL)
        else:
            quiet += 1
        time.sleep(0.02)
    return killed
