"""The processes inside a service, and choosing one of them for a fault.

A service is often a supervisor with workers (gunicorn, uvicorn --workers, a job runner): the
interesting fault is one worker dying, not the whole tree. `ProcessChoice` says which
process; its *population* is the set of processes it draws from, which is also how a
replacement is recognised: the population is back to its size with a process it did not
have before.
"""

from __future__ import annotations

__all__ = ["ProcessChoice", "ServiceProcess", "command_line"]

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Pick = Literal["newest", "oldest", "random"]


@dataclass(frozen=True)
class ServiceProcess:
    """One live process of a service's tree."""

    pid: int
    start_time: int  # clock ticks since boot: with the pid, identifies the process for good
    parent: int
    command: str  # its command line, arguments separated by spaces
    leader: bool  # the process gonogo started (the others descend from it)

    @property
    def identity(self) -> tuple[int, int]:
        return (self.pid, self.start_time)


@dataclass(frozen=True)
class ProcessChoice:
    """Which process of a service a fault targets, rather than its whole tree.

    - `pid_file`: the process whose pid the file holds (it must belong to the service);
    - `matching`: among the processes whose command line matches this regular expression
      (searched, not anchored), the one `pick` says;
    - otherwise: among the processes the service started (every one but the leader), the one
      `pick` says: `newest` (a worker, usually), `oldest`, or `random`.
    """

    pick: Pick = "newest"
    matching: str | None = None
    pid_file: Path | None = None

    def population(self, processes: Sequence[ServiceProcess]) -> list[ServiceProcess]:
        """The processes this choice draws from."""
        if self.pid_file is not None:
            pid = _pid_in(self.pid_file)
            return [p for p in processes if p.pid == pid]
        if self.matching is not None:
            pattern = re.compile(self.matching)
            return [p for p in processes if pattern.search(p.command)]
        return [p for p in processes if not p.leader]

    def choose(self, processes: Sequence[ServiceProcess], rng: random.Random) -> ServiceProcess | None:
        candidates = sorted(self.population(processes), key=lambda p: (p.start_time, p.pid))
        if not candidates:
            return None
        if self.pick == "random":
            return rng.choice(candidates)
        return candidates[-1] if self.pick == "newest" else candidates[0]

    def describe(self, service: str) -> str:
        if self.pid_file is not None:
            return f"the process of {service} named in {self.pid_file}"
        if self.matching is not None:
            return f"the {self.pick} process of {service} matching {self.matching!r}"
        return f"the {self.pick} of the processes {service} started"


def command_line(pid: int) -> str:
    """The command line of `pid` ("" if it is gone or a kernel thread)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            raw = cmdline.read()
    except OSError:
        return ""
    return raw.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")


def _pid_in(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
