"""What a fault did to a service, as the record the experiments keep.

The system performs the verified kill, pause and resume of its services (it owns their
processes) and reports each as a `FaultResult`; the experiments reach those operations
through `gonogo.faults.targets.ServiceControl`. This module imports nothing else of
gonogo, so the system can use it without depending on the faults themselves.
"""

from __future__ import annotations

__all__ = ["FaultResult"]

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class FaultResult:
    """What a fault operation did, verified: `ok` only if the effect was observed."""

    service: str
    operation: str  # kill, pause, resume
    signal: int
    pids: list[int]  # the processes signalled
    at: datetime
    ok: bool
    detail: str = ""
