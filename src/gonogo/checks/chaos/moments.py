"""Kill moments: the kills most likely to lose acknowledged writes, tried on purpose.

A service that acknowledges a write before it is committed (a write-behind buffer flushed
every second, or every N writes) loses what it holds when it dies. Under steady mixed
traffic that window can be so small that a kill at a random instant finds it empty (a read
that flushes the buffer first, a batch filled at once). So, once the experiment has
recovered and its load and writes are stopped, each moment is:

1. `quiet` seconds with nothing in flight;
2. a burst of writes sent at once, every answer awaited (the burst grows by one write per
   moment, so a buffer flushed every N writes is left holding some whatever N is);
3. `after` seconds from the burst's last acknowledgement, a kill of every service the
   experiment's kill faults kill whole, with their signal;
4. a wait until each is ready again (its restart policy), at most `recovery.timeout`.

The acknowledged writes of every burst are read back with the others after the last
moment; each moment's are also counted on their own.
"""

from __future__ import annotations

__all__ = ["MomentRecord", "try_kill_moments"]

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gonogo.checks.chaos.settings import KillMoments
from gonogo.experiment.integrity import IntegrityReport, IntegrityWriter
from gonogo.faults.targets import ServiceControl
from gonogo.units import format_value


@dataclass
class MomentRecord:
    """One kill moment: what was at risk, when the kill came, and (after the read-back) what was lost."""

    label: str  # the offset in milliseconds, as in the metric names: `500ms`
    after: float  # planned seconds from the burst's last acknowledgement to the kill
    burst: int  # writes sent at once
    acknowledged: int = 0  # of them, acknowledged: the writes at risk
    killed_after: float | None = None  # measured: last acknowledgement → kill signal
    kills: list[dict[str, Any]] = field(default_factory=list)
    ready_after: dict[str, float | None] = field(default_factory=dict)  # service → seconds to ready
    problem: str | None = None  # why this moment was not tried, or the system did not come back
    lost: int | None = None  # filled in from the read-back
    lost_writes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def tried(self) -> bool:
        """A kill really came after acknowledged writes: the moment means something."""
        return self.acknowledged > 0 and bool(self.kills) and all(kill["ok"] for kill in self.kills)

    def read_back(self, report: IntegrityReport) -> None:
        group = report.groups.get(self.label)
        if group is None or not self.tried:
            return
        self.lost = group.lost
        self.lost_writes = [p for p in group.problems if p["verdict"] == "lost"]

    def as_evidence(self) -> dict[str, Any]:
        return {
            "moment": self.label,
            "kill_after": self.after,
            "killed_after": None if self.killed_after is None else round(self.killed_after, 4),
            "burst": self.burst,
            "acknowledged": self.acknowledged,
            "lost": self.lost,
            "lost_writes": [p.get("write") for p in self.lost_writes],
            "tried": self.tried,
            "problem": self.problem,
            "kills": self.kills,
            "ready_after": self.ready_after,
        }

    def summary(self) -> str:
        when = f"{format_value(self.after, 'seconds')} after a burst"
        if not self.tried:
            return f"{when}: not tried ({self.problem})"
        lost = f"{when}: {self.lost if self.lost is not None else '?'} of {self.acknowledged} lost"
        return f"{lost} ({self.problem})" if self.problem else lost


def try_kill_moments(
    moments: KillMoments,
    *,
    targets: list[tuple[str, int]],
    writer: IntegrityWriter,
    services: ServiceControl,
    by: str,
    ready_timeout: float,
    progress: Callable[[str], None],
    records: list[MomentRecord],
) -> None:
    """Try every moment in turn, appending to `records` as it goes (so an interruption keeps
    what was done). Stops at the first moment after which a service does not come back."""
    for index, (after, label) in enumerate(zip(moments.offsets, moments.labels, strict=True)):
        record = MomentRecord(label, after, moments.burst + index)
        records.append(record)
        time.sleep(moments.quiet)
        burst = writer.burst(record.burst, label)
        record.acknowledged = burst.acknowledged
        if burst.last_acknowledged_at is None:
            record.problem = f"none of the {record.burst} writes of the burst was acknowledged"
            progress(f"kill moment {label}: {record.problem}")
            return  # a service that takes no write now will take none at the next moment either
        time.sleep(max(0.0, burst.last_acknowledged_at + after - time.monotonic()))
        killed_at = time.monotonic()
        record.killed_after = killed_at - burst.last_acknowledged_at
        progress(
            f"kill moment {label}: {burst.acknowledged} writes acknowledged at once, killing "
            f"{', '.join(name for name, _ in targets)} {format_value(record.killed_after, 'seconds')} after"
        )
        for name, signum in targets:
            result = services.kill(name, signum, by=f"{by} (kill moment {label})")
            record.kills.append(
                {
                    "service": name,
                    "at": result.at.isoformat(),
                    "pids": result.pids,
                    "ok": result.ok,
                    "detail": result.detail,
                }
            )
        for name, _ in targets:
            record.ready_after[name] = _ready_again(services, name, killed_at, ready_timeout)
        if not record.tried:
            record.problem = "; ".join(kill["detail"] for kill in record.kills if not kill["ok"])
            return
        down = [name for name, seconds in record.ready_after.items() if seconds is None]
        if down:
            record.problem = (
                f"{', '.join(down)} not ready again within {format_value(ready_timeout, 'seconds')} "
                "after this kill; no further moment tried"
            )
            progress(f"kill moment {label}: {record.problem}")
            return


def _ready_again(services: ServiceControl, name: str, since: float, timeout: float) -> float | None:
    """Seconds from `since` until service `name` was ready again (its history), None if it was
    not within `timeout` or was given up on."""
    deadline = since + timeout
    while True:
        for event in services.history(name):
            if event.monotonic < since:
                continue
            if event.kind == "ready":
                return event.monotonic - since
            if event.kind == "failed":
                return None
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)
