"""time.monotonic() moments of an experiment as wall-clock datetimes, for its evidence."""

from __future__ import annotations

__all__ = ["Wall"]

import time
from datetime import UTC, datetime, timedelta


class Wall:
    """Converts monotonic moments to datetimes, anchored at `reference` (a monotonic moment)."""

    def __init__(self, reference: float) -> None:
        self._offset = datetime.now(UTC) - timedelta(seconds=time.monotonic() - reference)
        self._reference = reference

    def __call__(self, moment: float) -> datetime:
        return self._offset + timedelta(seconds=moment - self._reference)
