"""The plan's services and proxies a fault names, for `gonogo validate` to resolve before the run.

Every check kind that applies the plan's faults (chaos, observability) declares them through
`CheckKind.references` with these, so an unknown service or a proxy of the wrong protocol is
refused at its line whichever check names it.
"""

from __future__ import annotations

__all__ = ["fault_references"]

from gonogo.experiment.settings import (
    ClockFault,
    DiskFullFault,
    Fault,
    HttpFault,
    KillFault,
    PauseFault,
    ProxyFault,
    RestartFault,
)
from gonogo.plan.names import Location, Reference


def fault_references(fault: Fault, at: Location) -> list[Reference]:
    """The service or proxy `fault` acts on, and what it needs of it; `at` is where the fault is
    written inside the check's section (`("faults", 0)`)."""
    if isinstance(fault, KillFault):
        if fault.process is not None:  # one process inside: the service itself lives on
            return [Reference("service", fault.kill, (*at, "kill"))]
        return [
            Reference(
                "service", fault.kill, (*at, "kill"), {"restart": "on-failure|always"},
                "killing the whole service",
                "nothing else brings it back, so the run would stop after this check; set its restart, "
                "or kill one process inside it with process:",
            )
        ]  # fmt: skip
    if isinstance(fault, PauseFault):
        return [Reference("service", fault.pause, (*at, "pause"))]
    if isinstance(fault, RestartFault):
        return [Reference("service", fault.restart, (*at, "restart"))]
    if isinstance(fault, ClockFault):
        return [Reference("service", fault.clock, (*at, "clock"), {"clock": "faketime"}, "a clock fault")]
    if isinstance(fault, DiskFullFault):
        return [
            Reference(
                "service", fault.disk_full, (*at, "disk_full"), {"data": "*"}, "a disk_full fault",
                "give the service `data: {path: '{run_dir}/<service>-data', size: 64MB}`, a small "
                "filesystem gonogo mounts for its data, and have the service keep its data there",
            )
        ]  # fmt: skip
    if isinstance(fault, ProxyFault):
        return [Reference("proxy", fault.proxy, (*at, "proxy"), {"protocol": "tcp"}, "a toxic")]
    if isinstance(fault, HttpFault):
        return [Reference("proxy", fault.http, (*at, "http"), {"protocol": "http"}, "an http fault")]
    # stress, disk_fill, network and the database faults act on this machine, a directory, a port,
    # a database file or server
    return []
