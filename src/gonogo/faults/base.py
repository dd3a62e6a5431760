"""What every fault has in common: it is applied, verified, and removed however the experiment ends.

A fault module offers a function that applies one fault and returns an `ActiveFault`. The
function raises `FaultNotSupported` when this machine cannot apply it (no iptables, not root,
no stress-ng...): the experiment then reports `not supported here`, which is never a pass.
"""

from __future__ import annotations

__all__ = ["ActiveFault", "FaultError", "FaultNotSupported"]

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from gonogo.errors import GonogoError


class FaultError(GonogoError):
    """A fault could not be applied or removed; the message says why."""


class FaultNotSupported(FaultError):
    """This machine cannot apply the fault (missing tool, privilege or kernel feature)."""


@dataclass
class ActiveFault(ABC):
    """A fault in place. `applied` is True only once its effect was observed.

    `remove()` undoes it and must be idempotent: it is called by the experiment's rollback,
    and again by the run's cleanup if the experiment was interrupted.
    """

    kind: str  # e.g. "stress.cpu", "network.loss", "disk.fill", "clock.skew"
    description: str  # for people: "30% packet loss on 127.0.0.1:5432"
    applied_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    applied: bool = False
    detail: str = ""  # how `applied` was verified, or why it could not be
    evidence: dict[str, Any] = field(default_factory=dict)  # counters, pids, paths: stored as an artifact

    @abstractmethod
    def remove(self) -> None:
        """Undo the fault and verify it is gone; idempotent."""

    def settling(self) -> bool:
        """Whether the fault is still taking effect (a restart, until the service is ready
        again): a fault listed after it waits until it is not."""
        return False

    def __enter__(self) -> ActiveFault:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.remove()
