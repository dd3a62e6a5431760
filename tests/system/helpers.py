"""Helpers for the tests of gonogo.system: observing, waiting, finding processes."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from gonogo.system import procfs

SERVICES = Path(__file__).parent / "services"
SERVICE = [sys.executable, str(SERVICES / "service.py")]


@dataclass
class Sample:
    service: str
    at: datetime
    cpu_percent: float
    rss_bytes: float
    open_fds: float
    threads: float


@dataclass
class Recorder:
    """A SystemObserver that keeps everything it is told."""

    events: list[tuple[str, str, str]] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    scrapes: list[tuple[str, datetime, dict[str, float] | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_event(self, source: str, kind: str, message: str) -> None:
        with self.lock:
            self.events.append((source, kind, message))

    def on_sample(
        self,
        service: str,
        at: datetime,
        cpu_percent: float,
        rss_bytes: float,
        open_fds: float,
        threads: float,
    ) -> None:
        with self.lock:
            self.samples.append(Sample(service, at, cpu_percent, rss_bytes, open_fds, threads))

    def on_scrape(self, service: str, at: datetime, gauges: dict[str, float] | None) -> None:
        with self.lock:
            self.scrapes.append((service, at, gauges))

    def kinds(self, source: str) -> list[str]:
        with self.lock:
            return [kind for name, kind, _ in self.events if name == source]

    def messages(self, source: str, kind: str) -> list[str]:
        with self.lock:
            return [m for name, k, m in self.events if name == source and k == kind]

    def sequence(self, kind: str) -> list[str]:
        """Sources of the events of `kind`, in the order they came."""
        with self.lock:
            return [name for name, k, _ in self.events if k == kind]


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def alive(pid: int) -> bool:
    """Running (a zombie is not running)."""
    info = procfs.info(pid)
    return info is not None and info.state not in ("Z", "X")


def with_env_entry(entry: str) -> list[int]:
    """Pids of the live processes whose environment holds `entry` (NAME=value)."""
    needle = b"\0" + entry.encode() + b"\0"
    found = []
    for process in procfs.scan():
        try:
            data = Path(f"/proc/{process.pid}/environ").read_bytes()
        except OSError:
            continue
        if needle in b"\0" + data + b"\0" and process.pid != os.getpid():
            found.append(process.pid)
    return found


def with_token(token: str) -> list[int]:
    return with_env_entry(f"GONOGO_RUN_TOKEN={token}")


def kill_with_token(token: str) -> None:
    """Last-resort cleanup for a failed test."""
    procfs.kill_until_gone(
        procfs.Selector(env_entries={f"GONOGO_RUN_TOKEN={token}".encode()}),
        deadline=time.monotonic() + 5,
    )
