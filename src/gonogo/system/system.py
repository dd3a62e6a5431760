"""The system under test: its services started in order, watched, and stopped."""

from __future__ import annotations

__all__ = ["SETTLE_SECONDS", "ServiceEvent", "Shutdown", "System"]

import logging
import os
import random
import shlex
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import NoReturn

from gonogo.errors import ServiceFailed
from gonogo.faults.records import FaultResult  # the one thing of the faults the system uses
from gonogo.plan.model import Service, SystemSpec, service_order
from gonogo.system import procfs
from gonogo.system.inflight import InFlight, InFlightProbe
from gonogo.system.members import ProcessChoice, ServiceProcess, command_line
from gonogo.system.monitor import Monitor
from gonogo.system.observer import SystemObserver
from gonogo.system.process import (
    ProcessTree,
    StopResult,
    describe_exit,
    describe_start_error,
    resolve_argv,
    spawn,
    tail_lines,
)
from gonogo.system.readiness import ProbeFailed, build_probe, wait_until_ready
from gonogo.system.reaper import Reaper
from gonogo.system.sampler import ResourceSampler
from gonogo.system.scrape import ScrapeFailed, scrape_gauges
from gonogo.system.volumes import DataVolumes

# A service without a probe is ready once started, unless it exits this soon.
SETTLE_SECONDS = 0.5

# How long a fault operation waits to see its effect (death, stopped or running state).
FAULT_VERIFY_SECONDS = 5.0

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceEvent:
    """Something that happened to a service, for measuring e.g. time to recover.

    kind: started, ready, exited, restarting, restarted, failed, killed, paused, resumed,
    stopped. `at` is wall-clock time, `monotonic` the same moment on time.monotonic().
    """

    kind: str
    at: datetime
    monotonic: float
    pid: int | None = None
    exit_code: int | None = None  # for exited (negative: killed by that signal)
    detail: str = ""
    planned: bool = False  # an exit gonogo caused on purpose (a fault's kill): not a crash


@dataclass(frozen=True)
class Shutdown:
    """How a service stopped at the end of the run: its stop signal, then its own exit or SIGKILL."""

    service: str
    signal: str
    seconds: float  # from the stop signal until it was gone
    exit_code: int | None  # None: it could not be reaped
    clean: bool  # it exited by itself within its grace (no SIGKILL needed)
    in_flight: InFlight | None  # requests to its readiness URL in flight at the signal; None: no HTTP probe
    message: str


@dataclass
class _Launch:
    argv: list[str]
    cwd: Path
    env: dict[str, str]


@dataclass
class _Running:
    name: str
    service: Service
    tree: ProcessTree
    log_path: Path
    launch: _Launch
    ready: bool = False
    stopping: bool = False
    exit_reported: bool = False
    restarting: bool = False  # a restart (per policy or asked for) owns the service now
    restarts: int = 0  # restarts per policy so far
    failed: str | None = None  # why it is given up on: restarts exhausted
    paused: bool = False
    # The tree a fault is killing on purpose, and how to tell its exit ("killed by ... (SIGKILL)").
    planned_exit: tuple[ProcessTree, str] | None = None
    history: list[ServiceEvent] = field(default_factory=list)
    fd_limit: int | None = None  # its soft RLIMIT_NOFILE, read when it was last ready
    shutdown: Shutdown | None = None

    def planned(self, tree: ProcessTree) -> str | None:
        """How to tell the exit of `tree`, if a fault killed it on purpose."""
        return self.planned_exit[1] if self.planned_exit and self.planned_exit[0] is tree else None


class System:
    """Starts, watches and stops the services of a plan.

    Use it as a context manager so that it is stopped however the block ends:
    `with System(...) as system: system.start(); ...`. Events and samples reach the
    observer from the calling thread and from one background thread.
    """

    def __init__(
        self,
        spec: SystemSpec,
        *,
        plan_dir: Path,
        expand: Callable[[str], str],
        log_dir: Path,
        reaper: Reaper,
        observer: SystemObserver,
        extra_env: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        """`extra_env`: service → variables added to its environment (e.g. libfaketime's)."""
        self._spec = spec
        self._extra_env = extra_env or {}
        self._plan_dir = plan_dir
        self._expand = expand
        self._log_dir = log_dir
        self._reaper = reaper
        self._observer = observer
        self._lock = threading.Lock()
        self._running: dict[str, _Running] = {}  # in start order
        self._log_files: dict[str, Path] = {}
        self._samplers: dict[str, ResourceSampler] = {}  # only used by the monitor thread
        self._monitor: Monitor | None = None
        self._started = False
        self._stopped = False
        self._stop_event = threading.Event()  # interrupts restart back-offs
        self._restart_threads: list[threading.Thread] = []
        self._rng = random.Random()  # picks the victim of a `random` process choice
        self._volumes = DataVolumes(reaper)  # the services' `data:` filesystems

    def start(self) -> None:
        """Start every service in dependency order, each awaited until ready.

        Raises ServiceFailed for the first that fails, after stopping what was started.
        """
        if self._started:
            raise RuntimeError("a System starts once")
        self._started = True
        try:
            self._log_dir.mkdir(parents=True, exist_ok=True)
            self._monitor = Monitor(self._spec.sample_interval, self._watch, name="gonogo-system-monitor")
            self._monitor.start()
            # Every data volume first: a service may hand its path to one that starts before it.
            self._volumes.mount_all(
                self._spec.services, expand=self._expand, plan_dir=self._plan_dir, observer=self._observer
            )
            for name in service_order(self._spec.services):
                self._start_service(name)
        except BaseException:
            self.stop()
            raise

    def check_alive(self) -> None:
        """Raise ServiceFailed for a ready service that has exited since.

        A service being restarted per its `restart` policy is not a failure (yet); one
        whose policy is `never`, or whose restarts are exhausted, is.
        """
        with self._lock:
            running = [
                r
                for r in self._running.values()
                if not r.stopping and (r.failed is not None or (r.ready and not r.restarting))
            ]
        for service in running:
            if service.failed is not None:
                raise ServiceFailed(service.name, service.failed, tail_lines(service.log_path))
            tree = service.tree
            code = tree.exit_code()
            if code is not None and not self._handle_exit(service, tree, code):
                reason = service.failed or service.planned(tree) or f"{describe_exit(code)} unexpectedly"
                raise ServiceFailed(service.name, reason, tail_lines(service.log_path))

    def history(self, name: str) -> list[ServiceEvent]:
        """What happened to service `name` so far, oldest first. KeyError if not started."""
        with self._lock:
            return list(self._running[name].history)

    def kill(
        self,
        name: str,
        signum: int = signal.SIGKILL,
        *,
        timeout: float = FAULT_VERIFY_SECONDS,
        by: str = "a fault",
    ) -> FaultResult:
        """Send `signum` to the whole tree of service `name`; `ok` once all of it is gone.

        `by` says who asked ("experiment crash"): its exit is told as "killed by experiment
        crash (SIGKILL)" and recorded as planned, not as a crash. With a `restart` policy, the
        monitor restarts it afterwards as for any crash.
        """
        service = self._service(name)
        signame = signal.Signals(signum).name
        with self._lock:
            tree = service.tree
            # Before the signal: the exit may be noticed before this thread runs again.
            service.planned_exit = (tree, f"killed by {by} ({signame})")
            if signum == signal.SIGKILL:
                service.paused = False  # a stopped process dies of SIGKILL, not of others
            service.history.append(_event("killed", pid=tree.pid, detail=signame))
        at = datetime.now(UTC)
        signalled = tree.send(signum)
        targets = {(p.pid, p.start_time) for p in signalled}
        deadline = time.monotonic() + timeout
        while True:
            gone = tree.exit_code() is not None and not any(_still_there(pid, st) for pid, st in targets)
            if gone or time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        detail = f"{by}: {signame} to {len(signalled)} process(es)" + (
            "" if gone else f"; still running after {timeout:g}s"
        )
        self._observer.on_event(name, "killed" if gone else "kill-failed", detail)
        return FaultResult(
            name, "kill", int(signum), sorted(p.pid for p in signalled), at, gone and bool(signalled), detail
        )

    def processes(self, name: str) -> list[ServiceProcess]:
        """The live processes of service `name` now, the leader first."""
        tree = self._service(name).tree
        members = sorted(tree.members(), key=lambda p: (p.pid != tree.pid, p.start_time, p.pid))
        return [
            ServiceProcess(p.pid, p.start_time, p.ppid, command_line(p.pid), p.pid == tree.pid)
            for p in members
            if p.state not in ("Z", "X")
        ]

    def kill_process(
        self,
        name: str,
        choice: ProcessChoice,
        signum: int = signal.SIGKILL,
        *,
        timeout: float = FAULT_VERIFY_SECONDS,
        by: str = "a fault",
    ) -> FaultResult:
        """Send `signum` to one process inside service `name` (a worker, say), chosen by
        `choice`; `ok` once that process is gone. Its siblings and parent are left alone, so
        what the fault shows is whether the service replaces it. Only when the chosen one is
        the process gonogo launched is the service's exit planned (`kill`'s `by`); the service
        dying of a worker's death is its own doing."""
        at = datetime.now(UTC)
        signame = signal.Signals(signum).name
        service = self._service(name)
        chosen = choice.choose(self.processes(name), self._rng)
        if chosen is None:
            detail = f"no process of {name}: none is {choice.describe(name)}"
            self._observer.on_event(name, "kill-failed", detail)
            return FaultResult(name, "kill", int(signum), [], at, False, detail)
        with self._lock:
            if chosen.pid == service.tree.pid:
                service.planned_exit = (service.tree, f"killed by {by} ({signame})")
            service.history.append(
                _event("killed", pid=chosen.pid, detail=f"{signame} to {choice.describe(name)}")
            )
        if not _signal_exactly(chosen.pid, chosen.start_time, signum):
            detail = f"pid {chosen.pid} ({chosen.command}) was gone before {signame} reached it"
            self._observer.on_event(name, "kill-failed", detail)
            return FaultResult(name, "kill", int(signum), [chosen.pid], at, False, detail)
        deadline = time.monotonic() + timeout
        while _still_there(chosen.pid, chosen.start_time) and time.monotonic() < deadline:
            time.sleep(0.02)
        gone = not _still_there(chosen.pid, chosen.start_time)
        detail = f"{by}: {signame} to pid {chosen.pid} ({chosen.command}), {choice.describe(name)}" + (
            "" if gone else f"; still running after {timeout:g}s"
        )
        self._observer.on_event(name, "killed" if gone else "kill-failed", detail)
        return FaultResult(name, "kill", int(signum), [chosen.pid], at, gone, detail)

    def pause(self, name: str, *, timeout: float = FAULT_VERIFY_SECONDS) -> FaultResult:
        """SIGSTOP the whole tree of service `name`; `ok` once every process is stopped."""
        service = self._service(name)
        with self._lock:
            service.paused = True  # before the signal: stop() resumes it whatever happens next
        return self._signal_verified(
            service, "pause", signal.SIGSTOP, lambda state: state in ("T", "t"), timeout
        )

    def resume(self, name: str, *, timeout: float = FAULT_VERIFY_SECONDS) -> FaultResult:
        """SIGCONT the whole tree of service `name`; `ok` once none of it is stopped."""
        service = self._service(name)
        result = self._signal_verified(
            service, "resume", signal.SIGCONT, lambda state: state not in ("T", "t"), timeout
        )
        with self._lock:
            service.paused = False
        return result

    def restart(self, name: str) -> None:
        """Stop service `name` gracefully (its stop signal and grace), start it, await ready.

        Not counted against `max_restarts`. Raises ServiceFailed if it does not come back.
        """
        service = self._service(name)
        with self._lock:
            if service.restarting:
                raise RuntimeError(f"service {name!r} is already being restarted")
            service.restarting = True
            service.ready = False
            paused = service.paused
            service.paused = False
        try:
            if paused:
                service.tree.send(signal.SIGCONT)
            self._stop_tree(service, service.tree)
            self._observer.on_event(name, "restarting", "restarting as asked")
            try:
                self._relaunch(service)
            except (ProbeFailed, OSError) as error:
                reason = error.reason if isinstance(error, ProbeFailed) else describe_start_error(error)
                with self._lock:
                    service.failed = f"could not be restarted: {reason}"
                    service.history.append(_event("failed", detail=service.failed))
                self._fail(name, service.failed, service.log_path)
            self._observer.on_event(name, "restarted", f"restarted as pid {service.tree.pid}")
        finally:
            with self._lock:
                service.restarting = False

    def stop(self) -> None:
        """Stop every started service, in reverse dependency order. Idempotent."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._stop_event.set()
        if self._monitor is not None:
            self._monitor.stop()
            # A last sample while everything still runs: even a short run has one.
            try:
                self._watch()
            except Exception:
                _log.exception("the last sample before stopping failed")
        with self._lock:
            for service in self._running.values():
                service.stopping = True  # from now on an exit is expected
            stopping = list(reversed(self._running.values()))
            restarts = list(self._restart_threads)
        first_error: Exception | None = None
        for service in stopping:
            try:
                self._stop_service(service)
            except Exception as error:  # keep stopping the others
                first_error = first_error or error
        for thread in restarts:
            # A restart that spawned a process after we stopped its service stops it itself.
            thread.join(30.0)
        try:  # once nothing runs any more that could hold a file in them
            self._volumes.unmount_all(self._observer)
        except Exception as error:
            first_error = first_error or error
        if first_error is not None:
            raise first_error

    def shutdowns(self) -> dict[str, Shutdown]:
        """How each service that was still running at `stop()` stopped."""
        with self._lock:
            return {name: r.shutdown for name, r in self._running.items() if r.shutdown is not None}

    def fd_limits(self) -> dict[str, int]:
        """Each service's limit of open files (soft RLIMIT_NOFILE of the process gonogo started)."""
        with self._lock:
            return {name: r.fd_limit for name, r in self._running.items() if r.fd_limit is not None}

    def log_files(self) -> dict[str, Path]:
        """The log file of each service started so far (stdout and stderr)."""
        return dict(self._log_files)

    def pids(self) -> dict[str, int]:
        """The pid of the process started for each service."""
        with self._lock:
            return {name: service.tree.pid for name, service in self._running.items()}

    def __enter__(self) -> System:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _start_service(self, name: str) -> None:
        service = self._spec.services[name]
        log_path = self._log_dir / f"{name}.log"
        self._log_files[name] = log_path
        try:
            argv = resolve_argv(service.command, shell=service.shell, expand=self._expand)
        except ValueError as error:
            self._fail(name, f"has an unusable command: {error}", log_path)
        cwd = self._plan_dir
        if service.cwd is not None:
            cwd = self._plan_dir / self._expand(service.cwd)  # an absolute cwd wins
        env = {key: self._expand(value) for key, value in service.env.items()}
        env.update(self._extra_env.get(name, {}))
        launch = _Launch(argv, cwd, env)
        self._observer.on_event(name, "starting", f"starting: {shlex.join(argv)}")
        started = time.monotonic()
        try:
            tree = spawn(argv, cwd=cwd, env=env, log_path=log_path, reaper=self._reaper)
        except OSError as error:
            self._fail(name, f"could not be started: {describe_start_error(error)}", log_path)
        running = _Running(name, service, tree, log_path, launch)
        with self._lock:
            self._running[name] = running
            running.history.append(_event("started", pid=tree.pid))
        self._observer.on_event(name, "started", f"started as pid {tree.pid}")
        try:
            self._await_ready(running, tree)
        except ProbeFailed as failure:
            self._fail(name, failure.reason, log_path)
        with self._lock:
            running.ready = True
            running.fd_limit = procfs.open_files_limit(tree.pid)
            running.history.append(_event("ready", pid=tree.pid))
        self._observer.on_event(name, "ready", f"ready after {time.monotonic() - started:.1f}s")

    def _await_ready(self, running: _Running, tree: ProcessTree) -> None:
        """Wait until the service (as `tree`) is ready; raise ProbeFailed if it is not."""
        service = running.service
        if service.ready is None:
            code = tree.wait_exit(SETTLE_SECONDS)
            if code is not None:
                raise ProbeFailed(f"{describe_exit(code)} right after it started")
            return
        probe = build_probe(
            service.ready,
            expand=self._expand,
            cwd=running.launch.cwd,
            env=running.launch.env,
            log_path=self._log_dir / f"{running.name}.ready.log",
            reaper=self._reaper,
        )
        try:
            wait_until_ready(
                probe,
                timeout=service.ready.timeout,
                interval=service.ready.interval,
                wait_exit=tree.wait_exit,
            )
        finally:
            probe.close()

    def _service(self, name: str) -> _Running:
        """A running service of this System, for a fault operation."""
        with self._lock:
            if not self._started or self._stopped:
                raise RuntimeError("fault operations need a started system that is not stopped")
            try:
                service = self._running[name]
            except KeyError:
                raise KeyError(f"no service {name!r} runs in this system") from None
            if service.stopping:
                raise RuntimeError(f"service {name!r} is being stopped")
            return service

    def _signal_verified(
        self,
        service: _Running,
        operation: str,
        signum: int,
        in_state: Callable[[str], bool],
        timeout: float,
    ) -> FaultResult:
        tree = service.tree
        at = datetime.now(UTC)
        signalled = tree.send(signum)
        deadline = time.monotonic() + timeout
        while True:
            states = [procfs.info(p.pid) for p in signalled]
            done = all(
                i is None or i.start_time != p.start_time or in_state(i.state)
                for i, p in zip(states, signalled, strict=True)
            )
            if done or time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        ok = done and bool(signalled)
        kind = {"pause": "paused", "resume": "resumed"}[operation]
        detail = f"{signal.Signals(signum).name} to {len(signalled)} process(es)"
        if not ok:
            detail += "; no process to signal" if not signalled else f"; not in effect after {timeout:g}s"
        with self._lock:
            service.history.append(_event(kind, pid=tree.pid, detail=detail))
        self._observer.on_event(service.name, kind if ok else f"{operation}-failed", detail)
        return FaultResult(
            service.name, operation, int(signum), sorted(p.pid for p in signalled), at, ok, detail
        )

    def _handle_exit(self, service: _Running, tree: ProcessTree, code: int) -> bool:
        """A ready service exited on its own: report it, restart it per its policy.

        Returns True if a restart takes care of it (or it is no longer our business),
        False if it is a failure.
        """
        with self._lock:
            if service.stopping or service.restarting or tree is not service.tree:
                return True
            if service.failed is not None:
                return False
            policy = service.service.restart
            wanted = policy == "always" or (policy == "on-failure" and code != 0)
            # A kill by an experiment spends none of the service's restarts: they are for crashes.
            restart = wanted and (
                service.planned(tree) is not None or service.restarts < service.service.max_restarts
            )
            if restart:
                service.restarting = True
                service.ready = False
            elif wanted:
                service.failed = (
                    f"{describe_exit(code)} unexpectedly; gave up after {service.restarts} restart(s)"
                )
            first = not service.exit_reported
            service.exit_reported = True
            planned = service.planned(tree)
            if first:
                service.history.append(
                    _event(
                        "exited", pid=tree.pid, exit_code=code, detail=planned or "", planned=bool(planned)
                    )
                )
        if first:
            self._observer.on_event(service.name, "exited", planned or f"{describe_exit(code)} unexpectedly")
        if service.failed is not None:
            with self._lock:
                service.history.append(_event("failed", pid=tree.pid, detail=service.failed))
            self._observer.on_event(service.name, "failed", service.failed)
        if restart:
            thread = threading.Thread(
                target=self._restart_loop, args=(service,), name=f"gonogo-restart-{service.name}", daemon=True
            )
            with self._lock:
                self._restart_threads.append(thread)
            thread.start()
        return restart

    def _restart_loop(self, service: _Running) -> None:
        """Restart `service` per its policy, with back-off, until ready or out of restarts."""
        spec = service.service
        # After a kill by an experiment, the first restart is not counted against max_restarts
        # and waits only the first back-off: repeated planned kills must not exhaust or slow it.
        uncounted = service.planned(service.tree) is not None
        try:
            while True:
                with self._lock:
                    if service.stopping:
                        return
                    if uncounted:
                        delay = spec.restart_backoff
                        detail = f"restart after a planned kill in {delay:g}s"
                    else:
                        service.restarts += 1
                        delay = min(
                            spec.restart_backoff * 2 ** (service.restarts - 1), spec.restart_backoff_max
                        )
                        detail = f"restart {service.restarts} of at most {spec.max_restarts} in {delay:g}s"
                with self._lock:
                    service.history.append(_event("restarting", pid=service.tree.pid, detail=detail))
                self._observer.on_event(service.name, "restarting", detail)
                if self._stop_event.wait(delay):
                    return
                try:
                    self._relaunch(service)
                except (ProbeFailed, OSError) as error:
                    reason = error.reason if isinstance(error, ProbeFailed) else describe_start_error(error)
                    with self._lock:
                        if service.stopping:
                            return
                        if service.restarts < spec.max_restarts:
                            # Killed on purpose before it was ready again (a repeated kill): planned.
                            planned = service.planned(service.tree)
                            uncounted = planned is not None
                            service.history.append(
                                _event(
                                    "exited",
                                    pid=service.tree.pid,
                                    detail=planned or reason,
                                    planned=bool(planned),
                                )
                            )
                            told = planned or f"{reason} (after a restart)"
                            self._observer.on_event(service.name, "exited", told)
                            continue
                        service.failed = f"{reason}; gave up after {service.restarts} restart(s)"
                        service.history.append(_event("failed", pid=service.tree.pid, detail=service.failed))
                    self._observer.on_event(service.name, "failed", service.failed)
                    return
                self._observer.on_event(
                    service.name, "restarted", f"restarted as pid {service.tree.pid} ({detail})"
                )
                return
        except Exception:
            _log.exception("restarting %s failed", service.name)
            with self._lock:
                service.failed = service.failed or "could not be restarted (internal error)"
        finally:
            with self._lock:
                service.restarting = False

    def _relaunch(self, service: _Running) -> None:
        """Clean up the old tree, start the service again (log appended), await ready.

        Raises ProbeFailed or OSError; returns quietly if the system stops meanwhile.
        """
        self._stop_tree(service, service.tree, signum=signal.SIGKILL, grace=0.0, quiet=True)
        launch = service.launch
        tree = spawn(
            launch.argv,
            cwd=launch.cwd,
            env=launch.env,
            log_path=service.log_path,
            reaper=self._reaper,
            append=True,
        )
        with self._lock:
            if service.stopping:  # stop() has been and gone past this service
                abandoned = True
            else:
                abandoned = False
                service.tree = tree
                service.exit_reported = False
                service.history.append(_event("started", pid=tree.pid))
        if abandoned:
            tree.stop(signal.SIGKILL, 0.0)
            return
        self._observer.on_event(service.name, "started", f"started again as pid {tree.pid}")
        try:
            self._await_ready(service, tree)
        except ProbeFailed:
            with self._lock:
                if service.stopping:
                    return
            raise
        with self._lock:
            service.ready = True
            service.fd_limit = procfs.open_files_limit(tree.pid)
            service.history.append(_event("ready", pid=tree.pid))
        self._observer.on_event(service.name, "ready", f"ready again as pid {tree.pid}")

    def _stop_tree(
        self,
        service: _Running,
        tree: ProcessTree,
        *,
        signum: int | None = None,
        grace: float | None = None,
        quiet: bool = False,
    ) -> StopResult:
        """Stop one tree of `service` (its stop signal and grace unless told otherwise)."""
        code = tree.exit_code()
        result = tree.stop(
            service.service.stop_signal if signum is None else signum,
            service.service.grace if grace is None else grace,
        )
        if not quiet or code is None:
            with self._lock:
                service.history.append(
                    _event(
                        "stopped",
                        pid=tree.pid,
                        exit_code=result.returncode,
                        detail="already exited" if code is not None else "",
                    )
                )
        return result

    def _fail(self, name: str, reason: str, log_path: Path) -> NoReturn:
        self._observer.on_event(name, "failed", reason)
        raise ServiceFailed(name, reason, tail_lines(log_path))

    def _stop_service(self, service: _Running) -> None:
        with self._lock:
            tree = service.tree
            paused = service.paused
            service.paused = False
        if paused:  # a stopped process would never handle the stop signal
            tree.send(signal.SIGCONT)
        code = tree.exit_code()
        if code is not None:
            self._report_exit(service, code)
        signame = signal.Signals(service.service.stop_signal).name
        self._observer.on_event(
            service.name,
            "stopping",
            f"sending {signame}, SIGKILL after {service.service.grace:g}s",
        )
        probe = self._in_flight_probe(service) if code is None else None
        started = time.monotonic()
        if probe is not None:
            probe.mark_signal()
        result = tree.stop(service.service.stop_signal, service.service.grace)
        took = time.monotonic() - started
        in_flight = probe.finish() if probe is not None else None
        with self._lock:
            service.history.append(_event("stopped", pid=tree.pid, exit_code=result.returncode))
        if code is not None:
            message = "had already " + describe_exit(code).replace("was killed", "been killed")
        elif result.returncode is None:
            message = f"could not be reaped after {took:.1f}s"
        elif result.returncode == -service.service.stop_signal and not result.killed:
            message = f"ended by its {signame} after {took:.1f}s"  # as many servers do: not a crash
        else:
            message = f"{describe_exit(result.returncode)} after {took:.1f}s"
        if result.killed:
            message += f"; killed: still running {service.service.grace:g}s after {signame}"
        if in_flight is not None and in_flight.in_flight:
            message += f"; {in_flight.detail}"
        if code is None:
            with self._lock:
                service.shutdown = Shutdown(
                    service.name,
                    signame,
                    took,
                    result.returncode,
                    clean=not result.killed and result.returncode is not None,
                    in_flight=in_flight,
                    message=message,
                )
        self._observer.on_event(service.name, "stopped", message)

    def _in_flight_probe(self, service: _Running) -> InFlightProbe | None:
        """Traffic to a ready service's readiness URL across its stop signal (HTTP probes only)."""
        ready = service.service.ready
        if ready is None or ready.http is None or not service.ready:
            return None
        probe = InFlightProbe(self._expand(ready.http), timeout=service.service.grace + 1.0)
        probe.start()
        return probe

    def _report_exit(self, service: _Running, code: int) -> None:
        """Tell the observer, once, that a service exited when nobody asked it to."""
        with self._lock:
            if not service.ready or service.exit_reported:
                return
            service.exit_reported = True
            unexpected = not service.stopping
            planned = service.planned(service.tree)
            if unexpected:
                service.history.append(
                    _event(
                        "exited",
                        pid=service.tree.pid,
                        exit_code=code,
                        detail=planned or "",
                        planned=bool(planned),
                    )
                )
        if unexpected:
            self._observer.on_event(service.name, "exited", planned or f"{describe_exit(code)} unexpectedly")

    def _watch(self) -> None:
        """One monitor tick: sample every service, notice the ones that exited."""
        with self._lock:
            services = [s for s in self._running.values() if not s.stopping and s.failed is None]
        if not services:
            return
        at = datetime.now(UTC)
        processes = procfs.scan()  # once for all services
        for service in services:
            members = service.tree.members(processes)
            if members:
                sampler = self._samplers.setdefault(service.name, ResourceSampler())
                usage = sampler.sample(members)
                self._observer.on_sample(
                    service.name, at, usage.cpu_percent, usage.rss_bytes, usage.open_fds, usage.threads
                )
            tree = service.tree
            code = tree.exit_code()
            if code is not None and service.ready and not service.restarting:
                self._handle_exit(service, tree, code)
            elif service.ready and service.service.metrics is not None:
                self._scrape(service, at)

    def _scrape(self, service: _Running, at: datetime) -> None:
        """Read the gauges of the service's Prometheus endpoint (`metrics:`); None when it fails."""
        url = self._expand(service.service.metrics or "")
        try:
            gauges: dict[str, float] | None = scrape_gauges(url, timeout=min(self._spec.sample_interval, 2.0))
        except ScrapeFailed as error:
            _log.debug("scraping %s failed: %s", service.name, error)
            gauges = None
        self._observer.on_scrape(service.name, at, gauges)


def _event(
    kind: str,
    *,
    pid: int | None = None,
    exit_code: int | None = None,
    detail: str = "",
    planned: bool = False,
) -> ServiceEvent:
    return ServiceEvent(kind, datetime.now(UTC), time.monotonic(), pid, exit_code, detail, planned)


def _signal_exactly(pid: int, start_time: int, signum: int) -> bool:
    """Signal that very process, never a newcomer that reused its pid: a pidfd pins the
    process, and its start time is checked after the pidfd is opened."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return False
    try:
        if not _still_there(pid, start_time):
            return False
        signal.pidfd_send_signal(pidfd, signum)
        return True
    except OSError:
        return False
    finally:
        os.close(pidfd)


def _still_there(pid: int, start_time: int) -> bool:
    """Whether that very process still runs (a zombie does not)."""
    info = procfs.info(pid)
    return info is not None and info.start_time == start_time and info.state not in ("Z", "X")
