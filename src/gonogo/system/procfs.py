"""Finding and killing processes through /proc, with the standard library only.

The reaper imports this module, so it must stay free of third-party imports and of
anything that could fail at import time. A process belongs to what gonogo started when
it is in one of our process groups, carries one of our environment entries
(`GONOGO_RUN_TOKEN=…`, `GONOGO_PROCESS_TAG=…`), or descends from such a process: the
environment survives `setsid()`, the process group survives a cleared environment, and
descent catches a child that did both while its parent is still alive.
"""

from __future__ import annotations

__all__ = [
    "ProcInfo",
    "Selector",
    "kill_until_gone",
    "scan",
    "select",
    "signal_all",
    "start_time",
]

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


def _read_stat(pid: int) -> ProcInfo | None:
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


def scan() -> list[ProcInfo]:
    """Every process alive now; zombies are left out (they hold nothing but a pid)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = _read_stat(int(entry))
            if info is not None and info.state not in ("Z", "X"):
                found.append(info)
    return found


def start_time(pid: int) -> int | None:
    info = _read_stat(pid)
    return None if info is None else info.start_time


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
    for info in processes:
        if info.pid in selector.spare:
            continue
        if (
            info.pgid in selector.pgids
            or (info.pid, info.start_time) in selector.processes
            or (selector.env_entries and _environ_has(info.pid, selector.env_entries))
        ):
            chosen[info.pid] = info
    children: dict[int, list[ProcInfo]] = {}
    for info in processes:
        children.setdefault(info.ppid, []).append(info)
    pending = list(chosen)
    while pending:
        for child in children.get(pending.pop(), []):
            if child.pid not in chosen and child.pid not in selector.spare:
                chosen[child.pid] = child
                pending.append(child.pid)
    return list(chosen.values())


def signal_all(selected: Iterable[ProcInfo], signum: int) -> None:
    for info in selected:
        try:
            os.kill(info.pid, signum)
        except OSError:  # already gone, or not ours
            pass


def kill_until_gone(selector: Selector, *, deadline: float, quiet_rounds: int = 2) -> int:
    """SIGKILL everything selected, again and again, until a few scans in a row find nothing.

    Repeating catches processes forked while we were killing their parents. Returns how
    many processes were killed (one process may be counted more than once).
    """
    killed = 0
    quiet = 0
    while quiet < quiet_rounds and time.monotonic() < deadline:
        for pgid in selector.pgids:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except OSError:
                pass
        found = select(selector)
        if found:
            quiet = 0
            killed += len(found)
            signal_all(found, signal.SIGKILL)
        else:
            quiet += 1
        time.sleep(0.02)
    return killed
