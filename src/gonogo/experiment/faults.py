"""Turning a plan's fault into an applied, verified, removable `ActiveFault`.

Process faults go through the run's `System` (which verifies that the processes died, stopped
or resumed); network faults through the fault proxy's Toxiproxy API or its HTTP fault proxy;
machine faults (stress, disk, packet loss, clock) and database faults (SQLite, PostgreSQL)
through `gonogo.faults`. Every fault is
removed by the experiment's rollback, even when the experiment fails or is interrupted.
"""

from __future__ import annotations

__all__ = ["apply_fault", "describe_fault", "expand_fault"]

import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gonogo.errors import ServiceFailed
from gonogo.experiment.settings import (
    ClockFault,
    DiskFillFault,
    DiskFullFault,
    Fault,
    HttpFault,
    KillFault,
    NetworkFault,
    PauseFault,
    PostgresRestartFault,
    PostgresTerminateFault,
    ProxyFault,
    RestartFault,
    SqliteGoneFault,
    SqliteLockFault,
    StressFault,
)
from gonogo.faults.base import ActiveFault, FaultError, FaultNotSupported
from gonogo.faults.client import ToxiproxyClient, ToxiproxyError
from gonogo.faults.targets import FaultTargets, ServiceControl
from gonogo.system.members import ProcessChoice
from gonogo.units import format_value


def expand_fault(fault: Fault, expand: Callable[[str], str]) -> Fault:
    """`fault` with the run's values in place of its placeholders ({run_dir}, {port.api}), so
    that what is applied and what progress lines, reports and the experiment artifact say
    are the same thing."""
    match fault:
        case DiskFillFault():
            return fault.model_copy(update={"disk_fill": expand(fault.disk_fill)})
        case NetworkFault():
            return fault.model_copy(update={"network": expand(fault.network)})
        case SqliteLockFault():
            return fault.model_copy(update={"sqlite_lock": expand(fault.sqlite_lock)})
        case SqliteGoneFault():
            return fault.model_copy(update={"sqlite_gone": expand(fault.sqlite_gone)})
        case PostgresTerminateFault():
            return fault.model_copy(update={"postgres_terminate": expand(fault.postgres_terminate)})
        case PostgresRestartFault():
            return fault.model_copy(update={"postgres_restart": expand(fault.postgres_restart)})
        case KillFault() if fault.process is not None and fault.process.pid_file is not None:
            process = fault.process.model_copy(update={"pid_file": expand(fault.process.pid_file)})
            return fault.model_copy(update={"process": process})
    return fault


def describe_fault(fault: Fault) -> str:
    match fault:
        case KillFault():
            times = (
                f" {fault.repeat} times, every {format_value(fault.every, 'seconds')}"
                if fault.repeat > 1
                else ""
            )
            target = fault.kill if fault.process is None else _choice(fault).describe(fault.kill)
            return f"kill {target} with {signal.Signals(fault.signal).name}{times}"
        case PauseFault():
            return f"pause {fault.pause} (SIGSTOP)"
        case RestartFault():
            return f"restart {fault.restart}"
        case ProxyFault():
            if fault.toxic == "down":
                return f"proxy {fault.proxy} down"
            share = (
                f" for {format_value(fault.toxicity, 'ratio')} of connections" if fault.toxicity < 1 else ""
            )
            attributes = ", ".join(f"{k}={v}" for k, v in fault.attributes.items())
            return f"{fault.toxic} ({attributes or 'defaults'}) {fault.stream} on proxy {fault.proxy}{share}"
        case HttpFault():
            effect = (
                f"status {fault.status}"
                if fault.status is not None
                else f"delay {format_value(fault.delay or 0, 'seconds')}"
                if fault.delay is not None
                else "connection reset"
                if fault.reset
                else f"body truncated to {fault.truncate} bytes"
            )
            scope = " ".join(part for part in (fault.method, fault.path) if part)
            share = format_value(fault.rate, "ratio")
            return f"HTTP {effect} for {share} of {scope or 'requests'} via {fault.http}"
        case StressFault():
            return f"{fault.stress} stress, {fault.workers} worker(s)"
        case DiskFillFault():
            return f"disk filled at {fault.disk_fill} leaving {fault.leave_free} bytes"
        case DiskFullFault():
            return f"data volume of {fault.disk_full} filled leaving {fault.leave_free} bytes"
        case SqliteLockFault():
            return f"SQLite {fault.mode} lock held on {fault.sqlite_lock}"
        case SqliteGoneFault():
            return f"SQLite database {fault.sqlite_gone} moved away"
        case PostgresTerminateFault():
            from gonogo.faults.database import redact_dsn

            scope = ", ".join(
                f"{key} {value}"
                for key, value in (
                    ("database", fault.database),
                    ("user", fault.user),
                    ("application_name", fault.application_name),
                )
                if value
            )
            times = (
                f" {fault.repeat} times, every {format_value(fault.every, 'seconds')}"
                if fault.repeat > 1
                else ""
            )
            where = f" ({scope})" if scope else ""
            return f"PostgreSQL backends terminated{where} via {redact_dsn(fault.postgres_terminate)}{times}"
        case PostgresRestartFault():
            return f"PostgreSQL server of {fault.postgres_restart} restarted ({fault.mode})"
        case NetworkFault():
            effect = (
                "partition" if fault.partition else f"{format_value(fault.loss or 0, 'ratio')} packet loss"
            )
            return f"{effect} on port {fault.network}"
        case ClockFault():
            return f"clock of {fault.clock} skewed by {fault.skew:+g}s"
    raise AssertionError(fault)


@dataclass
class FaultEnvironment:
    targets: FaultTargets
    expand: Callable[[str], str]
    work_dir: Path
    fault_window: float  # seconds the fault stays on
    name: str  # unique per fault in the run, e.g. "worker_crash-0"
    by: str = "a fault"  # who kills, as the service's log tells it: "experiment worker_crash"


def apply_fault(fault: Fault, env: FaultEnvironment) -> ActiveFault:
    """Apply `fault`; raise FaultError (or FaultNotSupported) if it cannot be."""
    match fault:
        case KillFault() | PauseFault() | RestartFault():
            return _process_fault(fault, env)
        case ProxyFault():
            return _proxy_fault(fault, env)
        case HttpFault():
            return _http_fault(fault, env)
        case StressFault():
            from gonogo.faults.stress import start_stress

            return start_stress(
                fault.stress,
                reaper=env.targets.reaper,
                work_dir=env.work_dir,
                workers=fault.workers,
                load=fault.load * 100 if fault.load is not None else None,
                memory_bytes=fault.memory,
                duration=env.fault_window + 5,  # bounded by stress-ng itself too
            )
        case DiskFillFault():
            from gonogo.faults.disk import fill_disk

            return fill_disk(
                Path(env.expand(fault.disk_fill)),
                leave_free=fault.leave_free,
                max_fill=fault.max_fill,
                reaper=env.targets.reaper,
            )
        case DiskFullFault():
            return _fill_data_volume(fault, env)
        case SqliteLockFault() | SqliteGoneFault() | PostgresTerminateFault() | PostgresRestartFault():
            return _database_fault(fault, env)
        case NetworkFault():
            from gonogo.faults.network import impair_port

            port_text = env.expand(fault.network).rpartition(":")[2]
            if not port_text.isdigit():
                raise FaultError(f"network: {fault.network!r} is not a port")
            return impair_port(
                int(port_text), loss=fault.loss, partition=fault.partition, reaper=env.targets.reaper
            )
        case ClockFault():
            from gonogo.faults.clock import skew_clock

            control = env.targets.clock_files.get(fault.clock)
            if control is None:
                raise FaultError(
                    f"clock: service {fault.clock!r} was not started with `clock: faketime`, so its clock "
                    "cannot be skewed"
                )
            return skew_clock(control, fault.skew)
    raise AssertionError(fault)


def _fill_data_volume(fault: DiskFullFault, env: FaultEnvironment) -> ActiveFault:
    """Fill the service's own data volume, refusing anything but the volume gonogo mounted."""
    from gonogo.faults.disk import fill_disk

    volume = env.targets.data_volumes.get(fault.disk_full)
    if volume is None:
        raise FaultError(
            f"disk_full: service {fault.disk_full!r} has no data volume; give it "
            "`data: {path: ..., size: 64MB}` in system.services"
        )
    if not os.path.ismount(volume.path):
        raise FaultError(f"disk_full: the data volume of {fault.disk_full} is not mounted at {volume.path}")
    # Never more than the volume itself: whatever is at that path, a real disk is not filled.
    return fill_disk(
        volume.path, leave_free=fault.leave_free, max_fill=volume.size, reaper=env.targets.reaper
    )


def _database_fault(
    fault: SqliteLockFault | SqliteGoneFault | PostgresTerminateFault | PostgresRestartFault,
    env: FaultEnvironment,
) -> ActiveFault:
    from gonogo.faults import database

    match fault:
        case SqliteLockFault():
            return database.lock_sqlite(Path(env.expand(fault.sqlite_lock)), fault.mode)
        case SqliteGoneFault():
            return database.move_sqlite_away(Path(env.expand(fault.sqlite_gone)), reaper=env.targets.reaper)
        case PostgresTerminateFault():
            return database.terminate_postgres_backends(
                env.expand(fault.postgres_terminate),
                database=fault.database,
                user=fault.user,
                application_name=fault.application_name,
                repeat=fault.repeat,
                every=fault.every,
            )
        case PostgresRestartFault():
            return database.restart_postgres(
                Path(env.expand(fault.postgres_restart)),
                mode=fault.mode,
                timeout=fault.timeout,
                work_dir=env.work_dir,
            )


# ---------------------------------------------------------------------------------------
# Processes


def _services(env: FaultEnvironment) -> ServiceControl:
    if env.targets.services is None:
        raise FaultError("process faults need services started by gonogo (system.services)")
    return env.targets.services


@dataclass
class _ProcessFault(ActiveFault):
    services: ServiceControl | None = None
    service: str = ""
    undo: Callable[[], None] | None = None
    worker: threading.Thread | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    removed: bool = False

    def settling(self) -> bool:
        # Only a restart takes effect in the background; a kill's worker repeats or watches.
        return self.kind == "process.restart" and self.worker is not None and self.worker.is_alive()

    def remove(self) -> None:
        if self.removed:
            return
        self.removed = True
        self.stop.set()
        if self.worker is not None:
            self.worker.join(timeout=120)
        if self.undo is not None:
            self.undo()


def _process_fault(fault: KillFault | PauseFault | RestartFault, env: FaultEnvironment) -> ActiveFault:
    services = _services(env)
    if isinstance(fault, PauseFault):
        result = services.pause(fault.pause)
        active = _ProcessFault(
            kind="process.pause", description=describe_fault(fault), services=services, service=fault.pause
        )
        active.evidence = {"pids": result.pids, "signal": "SIGSTOP"}

        def resume() -> None:
            resumed = services.resume(fault.pause)
            active.evidence["resumed"] = resumed.ok
            if not resumed.ok:
                raise FaultError(f"service {fault.pause} could not be resumed: {resumed.detail}")

        active.undo = resume
        active.applied, active.detail = result.ok, result.detail or f"{len(result.pids)} process(es) stopped"
        if not result.ok:
            active.remove()
        return active
    if isinstance(fault, RestartFault):
        active = _ProcessFault(
            kind="process.restart",
            description=describe_fault(fault),
            services=services,
            service=fault.restart,
        )
        before = _pid_of(services, fault.restart)
        active.evidence = {"pid_before": before, "began": _now(), "ready": None}

        def restart() -> None:
            try:
                services.restart(fault.restart)
            except ServiceFailed as failure:
                active.detail = f"did not come back: {failure.reason}"
                return
            after = _pid_of(services, fault.restart)
            active.detail = f"restarted: pid {before} → {after}"
            active.evidence.update(pid_after=after, ready=_now())

        active.worker = threading.Thread(target=restart, name=f"gonogo-restart-{fault.restart}", daemon=True)
        active.worker.start()
        active.applied = True  # the graceful stop has begun; `detail` says how it ended
        active.detail = "restart under way"
        return active
    if fault.process is not None:
        return _kill_process(fault, env, services)
    return _kill(fault, env, services)


def _choice(fault: KillFault, expand: Callable[[str], str] | None = None) -> ProcessChoice:
    selector = fault.process
    assert selector is not None
    pid_file = None if selector.pid_file is None else Path((expand or str)(selector.pid_file))
    return ProcessChoice(pick=selector.pick, matching=selector.matching, pid_file=pid_file)


def _kill_process(fault: KillFault, env: FaultEnvironment, services: ServiceControl) -> ActiveFault:
    """Kill one process inside a service and watch, for the fault window, whether the service
    replaces it: the processes the choice draws from back to as many as before, a newcomer
    among them. Repeated kills each wait for the replacement of the one before."""
    choice = _choice(fault, env.expand)
    active = _ProcessFault(
        kind="process.kill", description=describe_fault(fault), services=services, service=fault.kill
    )
    kills: list[dict[str, Any]] = []
    active.evidence = {"target": choice.describe(fault.kill), "kills": kills}

    def kill_once() -> tuple[bool, set[tuple[int, int]], float]:
        before = {p.identity for p in choice.population(services.processes(fault.kill))}
        result = services.kill_process(fault.kill, choice, fault.signal, by=env.by)
        kills.append(
            {
                "at": result.at.isoformat(),
                "pids": result.pids,
                "ok": result.ok,
                "detail": result.detail,
                "population_before": len(before),
                "replaced_after": None,
            }
        )
        return result.ok, before, time.monotonic()

    def await_replacement(before: set[tuple[int, int]], killed_at: float) -> bool:
        while not active.stop.is_set():
            try:
                now = {p.identity for p in choice.population(services.processes(fault.kill))}
            except (KeyError, RuntimeError):  # the system is being stopped
                return False
            if len(now) >= len(before) and now - before:
                kills[-1]["replaced_after"] = round(time.monotonic() - killed_at, 3)
                return True
            active.stop.wait(0.05)
        return False

    first_ok, before, killed_at = kill_once()

    def watch() -> None:
        replaced = await_replacement(before, killed_at)
        for _ in range(fault.repeat - 1):
            if not replaced or active.stop.wait(fault.every):
                return
            ok, population, at = kill_once()
            replaced = ok and await_replacement(population, at)

    active.applied = first_ok
    active.detail = (
        f"pid {', '.join(map(str, kills[0]['pids']))} gone after {signal.Signals(fault.signal).name}"
        if first_ok
        else f"no process was killed: {kills[0]['detail']}"
    )
    if first_ok:
        active.worker = threading.Thread(target=watch, name=f"gonogo-kill-{fault.kill}", daemon=True)
        active.worker.start()
    return active


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _pid_of(services: ServiceControl, name: str) -> int | None:
    return services.pids().get(name)


def _kill(fault: KillFault, env: FaultEnvironment, services: ServiceControl) -> ActiveFault:
    active = _ProcessFault(
        kind="process.kill", description=describe_fault(fault), services=services, service=fault.kill
    )
    kills: list[dict[str, Any]] = []
    active.evidence = {"kills": kills}

    def kill_once() -> bool:
        result = services.kill(fault.kill, fault.signal, by=env.by)
        kills.append(
            {"at": result.at.isoformat(), "pids": result.pids, "ok": result.ok, "detail": result.detail}
        )
        return result.ok

    first = kill_once()
    active.applied = first
    active.detail = (
        f"pid(s) {', '.join(map(str, kills[0]['pids']))} gone after {signal.Signals(fault.signal).name}"
        if first
        else f"the service did not die: {kills[0]['detail']}"
    )
    if first and fault.repeat > 1:

        def repeat() -> None:
            for _ in range(fault.repeat - 1):
                if active.stop.wait(fault.every):
                    return
                # Kill again only once it is back: killing a service that is restarting kills nothing.
                deadline = time.monotonic() + 60
                while _pid_of(services, fault.kill) is None and time.monotonic() < deadline:
                    if active.stop.wait(0.2):
                        return
                kill_once()

        active.worker = threading.Thread(target=repeat, name=f"gonogo-kill-{fault.kill}", daemon=True)
        active.worker.start()
    return active


# ---------------------------------------------------------------------------------------
# The fault proxy


def _client(env: FaultEnvironment, name: str) -> ToxiproxyClient:
    target = env.targets.proxies.get(name)
    if target is None:
        known = ", ".join(env.targets.proxies) or "none"
        raise FaultError(f"proxy {name!r} is not in system.proxies (proxies: {known})")
    if target.protocol != "tcp" or env.targets.toxiproxy is None:
        raise FaultError(f"proxy {name!r} is an HTTP proxy; TCP toxics need protocol: tcp")
    return env.targets.toxiproxy


@dataclass
class _ToxicFault(ActiveFault):
    client: ToxiproxyClient | None = None
    proxy: str = ""
    toxic: str = ""
    removed: bool = False

    def remove(self) -> None:
        if self.removed or self.client is None:
            return
        self.removed = True
        try:
            stats = self.client.stats(self.proxy)
            self.client.remove_toxic(self.proxy, self.toxic)
        except ToxiproxyError as error:
            raise FaultError(
                f"could not remove toxic {self.toxic} from proxy {self.proxy}: {error}"
            ) from None
        if any(t["name"] == self.toxic for t in self.client.toxics(self.proxy)):
            raise FaultError(f"toxic {self.toxic} is still on proxy {self.proxy} after its removal")
        counters = stats.get("toxics", {}).get(self.toxic, {})
        self.evidence["counters"] = counters
        self.evidence["proxy"] = {k: v for k, v in stats.items() if k != "toxics"}
        acted = int(counters.get("applied", 0))
        # Verified by what the proxy did, not by the API call having succeeded.
        self.applied = acted > 0
        self.detail = (
            f"acted {acted} time(s) on {counters.get('connections', 0)} connection(s)"
            if acted
            else f"the toxic never acted: no traffic went through proxy {self.proxy} while it was on"
        )


@dataclass
class _ProxyDown(ActiveFault):
    client: ToxiproxyClient | None = None
    proxy: str = ""
    listen: str = ""
    removed: bool = False

    def remove(self) -> None:
        if self.removed or self.client is None:
            return
        self.removed = True
        self.client.set_enabled(self.proxy, True)
        if not _accepts(self.listen):
            raise FaultError(f"proxy {self.proxy} does not accept connections again on {self.listen}")


def _accepts(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=1.0):
            return True
    except OSError:
        return False


def _proxy_fault(fault: ProxyFault, env: FaultEnvironment) -> ActiveFault:
    client = _client(env, fault.proxy)
    description = describe_fault(fault)
    if fault.toxic == "down":
        listen = env.targets.proxies[fault.proxy].listen
        down = _ProxyDown(
            kind="proxy.down", description=description, client=client, proxy=fault.proxy, listen=listen
        )
        try:
            client.set_enabled(fault.proxy, False)
        except ToxiproxyError as error:
            raise FaultError(str(error)) from None
        down.applied = not _accepts(listen)
        down.detail = (
            f"{listen} refuses connections" if down.applied else f"{listen} still accepts connections"
        )
        return down
    name = f"gonogo-{env.name}"
    try:
        client.add_toxic(
            fault.proxy,
            name=name,
            toxic_type=fault.toxic,
            attributes=fault.attributes,
            stream=fault.stream,
            toxicity=fault.toxicity,
        )
    except ToxiproxyError as error:
        raise FaultError(str(error)) from None
    installed = any(t["name"] == name for t in client.toxics(fault.proxy))
    return _ToxicFault(
        kind=f"proxy.{fault.toxic}",
        description=description,
        client=client,
        proxy=fault.proxy,
        toxic=name,
        applied=installed,
        detail="installed" if installed else "the proxy does not list the toxic",
    )


def _http_fault(fault: HttpFault, env: FaultEnvironment) -> ActiveFault:
    target = env.targets.proxies.get(fault.http)
    if target is None or target.protocol != "http" or target.http_proxy is None:
        known = ", ".join(n for n, p in env.targets.proxies.items() if p.protocol == "http") or "none"
        raise FaultError(f"http: {fault.http!r} is not a proxy with protocol: http (HTTP proxies: {known})")
    try:
        from gonogo.faults.http import apply_http_fault
    except ImportError:
        raise FaultNotSupported("HTTP-level faults are not available in this build") from None
    kind = (
        "status"
        if fault.status is not None
        else "delay"
        if fault.delay is not None
        else "reset"
        if fault.reset
        else "truncate"
    )
    options: dict[str, Any] = {"toxicity": fault.rate, "method": fault.method, "path": fault.path}
    if kind == "status":
        options["status"] = fault.status
    elif kind == "delay":
        options["delay"] = fault.delay
    elif kind == "truncate":
        options["keep_bytes"] = fault.truncate
    active: ActiveFault = apply_http_fault(target.http_proxy, kind, **options)
    return active
