"""A background thread that calls a function every so often until told to stop."""

from __future__ import annotations

__all__ = ["Monitor"]

import logging
import threading
import time
from collections.abc import Callable

_log = logging.getLogger(__name__)


class Monitor:
    """Runs `tick` every `interval` seconds on a daemon thread, the first time at once.

    An exception in `tick` is logged and the ticking goes on: a vanished process or a
    failing observer must not end the watching.
    """

    def __init__(self, interval: float, tick: Callable[[], None], *, name: str) -> None:
        self._interval = max(interval, 0.05)
        self._tick = tick
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stopping.is_set():
            try:
                self._tick()
            except Exception:
                _log.exception("%s: tick failed", self._thread.name)
            # Keep to the schedule; after a slow tick, skip ahead rather than burst.
            next_at += self._interval
            now = time.monotonic()
            if next_at < now:
                next_at = now + self._interval
            self._stopping.wait(next_at - now)
