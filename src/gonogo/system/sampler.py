"""Resource use of a process tree: CPU, resident memory, open files, threads."""

from __future__ import annotations

__all__ = ["ResourceSampler", "Usage"]

from collections.abc import Iterable
from dataclasses import dataclass

import psutil

from gonogo.system.procfs import ProcInfo


@dataclass(frozen=True)
class Usage:
    cpu_percent: float  # 100 = one core busy
    rss_bytes: float
    open_fds: float
    threads: float
    processes: int


class ResourceSampler:
    """Sums usage over processes; keeps each process between calls for its CPU delta.

    Not thread-safe: one sampler per sampling thread.
    """

    def __init__(self) -> None:
        self._known: dict[tuple[int, int], psutil.Process] = {}

    def sample(self, processes: Iterable[ProcInfo]) -> Usage:
        cpu = rss = fds = threads = 0.0
        counted = 0
        seen: dict[tuple[int, int], psutil.Process] = {}
        for info in processes:
            key = (info.pid, info.start_time)
            try:
                process = self._known.get(key) or psutil.Process(info.pid)
                with process.oneshot():
                    # The first call per process has no previous reading and says 0.0.
                    process_cpu = process.cpu_percent(interval=None)
                    process_rss = process.memory_info().rss
                    process_fds = process.num_fds()
                    process_threads = process.num_threads()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue  # gone between the scan and now, or not ours to read
            seen[key] = process
            cpu += process_cpu
            rss += process_rss
            fds += process_fds
            threads += process_threads
            counted += 1
        self._known = seen
        return Usage(cpu, rss, fds, threads, counted)
