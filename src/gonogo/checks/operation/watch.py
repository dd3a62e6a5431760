"""Downtime to a twentieth of a second: one request every `INTERVAL` while the operations run.

The background load counts failed requests per second, which cannot tell a 0.3 s gap from a
full second; the watcher sends one request at a time (the version endpoint, or the load's
first GET request), each on a fresh connection, and keeps when each was sent and whether it
succeeded. A window's *downtime* is its longest stretch from a failed request to the next
successful one.
"""

from __future__ import annotations

__all__ = ["INTERVAL", "Watcher", "longest_outage"]

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gonogo.experiment.probes import HypothesisChecker
from gonogo.experiment.settings import HttpProbe, Hypothesis

INTERVAL = 0.05  # seconds between two watcher requests (the downtime's resolution)


@dataclass(frozen=True)
class Sample:
    at: float  # time.monotonic() when the request was sent
    ok: bool
    detail: str


def longest_outage(samples: Sequence[Sample], start: float, end: float) -> float:
    """The longest stretch in [start, end) from a failed request to the next successful one; a
    stretch still going at `end` counts until then."""
    longest = 0.0
    down_since: float | None = None
    for sample in samples:
        if sample.at < start:
            continue
        if sample.at >= end:
            break
        if not sample.ok and down_since is None:
            down_since = sample.at
        elif sample.ok and down_since is not None:
            longest = max(longest, sample.at - down_since)
            down_since = None
    if down_since is not None:
        longest = max(longest, end - down_since)
    return longest


class Watcher:
    """Sends `probe` every INTERVAL on a thread of its own, from `start()` to `stop()`."""

    def __init__(
        self,
        probe: HttpProbe,
        *,
        base_url: str | None,
        cwd: Path,
        expand: Callable[[str], str],
        variables: dict[str, Any],
    ) -> None:
        self.target = probe.http
        self._checker = HypothesisChecker(
            Hypothesis(interval=INTERVAL, probes=[probe]),
            base_url=base_url,
            cwd=cwd,
            expand=expand,
            variables=variables,
            load_window=lambda _: None,
        )
        self._samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gonogo-operation-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._checker.close()

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            round_ = self._checker.check()
            (result,) = round_.results
            with self._lock:
                self._samples.append(Sample(round_.at, result.ok, result.detail))
            next_at = max(next_at + INTERVAL, time.monotonic())
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def samples(self) -> list[Sample]:
        with self._lock:
            return list(self._samples)

    def downtime(self, start: float, end: float) -> float:
        return longest_outage(self.samples(), start, end)

    def failures(self, start: float, end: float) -> list[Sample]:
        return [s for s in self.samples() if start <= s.at < end and not s.ok]
