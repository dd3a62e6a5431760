"""What a run lets its experiments break: the plan's services, its proxies, this machine.

The runner builds one `FaultTargets` per run; checks reach it through their context, so a
check kind never needs to know how the system was started.
"""

from __future__ import annotations

__all__ = ["FaultTargets", "ProxyTarget", "ServiceControl", "VolumeTarget"]

import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from gonogo.faults.client import ToxiproxyClient
from gonogo.faults.records import FaultResult
from gonogo.system import Reaper
from gonogo.system.members import ProcessChoice, ServiceProcess
from gonogo.system.system import ServiceEvent


class ServiceControl(Protocol):
    """The fault operations of `gonogo.system.System`, each verified."""

    def kill(
        self, name: str, signum: int = signal.SIGKILL, *, timeout: float = ..., by: str = ...
    ) -> FaultResult: ...

    def kill_process(
        self,
        name: str,
        choice: ProcessChoice,
        signum: int = signal.SIGKILL,
        *,
        timeout: float = ...,
        by: str = ...,
    ) -> FaultResult: ...

    def processes(self, name: str) -> list[ServiceProcess]: ...

    def pause(self, name: str, *, timeout: float = ...) -> FaultResult: ...

    def resume(self, name: str, *, timeout: float = ...) -> FaultResult: ...

    def restart(self, name: str) -> None: ...

    def history(self, name: str) -> list[ServiceEvent]: ...

    def pids(self) -> dict[str, int]: ...

    def log_files(self) -> dict[str, Path]: ...


@dataclass(frozen=True)
class ProxyTarget:
    """One of the plan's `system.proxies`, with its placeholders filled in."""

    name: str
    listen: str
    upstream: str
    protocol: Literal["tcp", "http"]
    http_proxy: Any = None  # the running HttpFaultProxy, for protocol http


@dataclass(frozen=True)
class VolumeTarget:
    """A service's data volume (its `data:`): where gonogo mounts it, and its size in bytes."""

    service: str
    path: Path
    size: int


@dataclass
class FaultTargets:
    reaper: Reaper
    services: ServiceControl | None = None
    toxiproxy: ToxiproxyClient | None = None  # the built-in fault proxy's API, when the plan has proxies
    proxies: dict[str, ProxyTarget] = field(default_factory=dict)
    clock_files: dict[str, Path] = field(default_factory=dict)  # service → its libfaketime control file
    data_volumes: dict[str, VolumeTarget] = field(default_factory=dict)  # service → its data volume
