"""What the system tells the rest of gonogo while it runs."""

from __future__ import annotations

__all__ = ["EVENT_KINDS", "SystemObserver"]

from datetime import datetime
from typing import Protocol

EVENT_KINDS = ("starting", "started", "ready", "exited", "stopping", "stopped", "failed")


class SystemObserver(Protocol):
    """Receives events and resource samples; may be called from a background thread."""

    def on_event(self, source: str, kind: str, message: str) -> None:
        """`source` is a service name; `kind` is one of EVENT_KINDS."""
        ...

    def on_sample(
        self,
        service: str,
        at: datetime,
        cpu_percent: float,
        rss_bytes: float,
        open_fds: float,
        threads: float,
    ) -> None:
        """Resource use summed over the service's processes (cpu_percent: 100 = one core)."""
        ...

    def on_scrape(self, service: str, at: datetime, gauges: dict[str, float] | None) -> None:
        """The unlabelled gauges of the service's Prometheus endpoint; None: it could not be read."""
        ...
