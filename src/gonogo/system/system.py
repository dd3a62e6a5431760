"""The system under test: its services started in order, watched, and stopped."""

from __future__ import annotations

__all__ = ["SETTLE_SECONDS", "System"]

import logging
import shlex
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import NoReturn

from gonogo.errors import ServiceFailed
from gonogo.plan.model import Service, SystemSpec, service_order
from gonogo.system import procfs
from gonogo.system.monitor import Monitor
from gonogo.system.observer import SystemObserver
from gonogo.system.process import (
    ProcessTree,
    describe_exit,
    describe_start_error,
    resolve_argv,
    spawn,
    tail_lines,
)
from gonogo.system.readiness import ProbeFailed, build_probe, wait_until_ready
from gonogo.system.reaper import Reaper
from gonogo.system.sampler import ResourceSampler

# A service without a probe is ready once started, unless it exits this soon.
SETTLE_SECONDS = 0.5

_log = logging.getLogger(__name__)


@dataclass
class _Running:
    name: str
    service: Service
    tree: ProcessTree
    log_path: Path
    ready: bool = False
    stopping: bool = False
    exit_reported: bool = False


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
    ) -> None:
        self._spec = spec
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
            for name in service_order(self._spec.services):
                self._start_service(name)
        except BaseException:
            self.stop()
            raise

    def check_alive(self) -> None:
        """Raise ServiceFailed for a ready service that has exited since."""
        with self._lock:
            running = [r for r in self._running.values() if r.ready and not r.stopping]
        for service in running:
            code = service.tree.exit_code()
            if code is not None:
                self._report_exit(service, code)
                raise ServiceFailed(
                    service.name,
                    f"{describe_exit(code)} unexpectedly",
                    tail_lines(service.log_path),
                )

    def stop(self) -> None:
        """Stop every started service, in reverse dependency order. Idempotent."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
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
        first_error: Exception | None = None
        for service in stopping:
            try:
                self._stop_service(service)
            except Exception as error:  # keep stopping the others
                first_error = first_error or error
        if first_error is not None:
            raise first_error

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
        self._observer.on_event(name, "starting", f"starting: {shlex.join(argv)}")
        started = time.monotonic()
        try:
            tree = spawn(argv, cwd=cwd, env=env, log_path=log_path, reaper=self._reaper)
        except OSError as error:
            self._fail(name, f"could not be started: {describe_start_error(error)}", log_path)
        running = _Running(name, service, tree, log_path)
        with self._lock:
            self._running[name] = running
        self._observer.on_event(name, "started", f"started as pid {tree.pid}")
        try:
            if service.ready is None:
                code = tree.wait_exit(SETTLE_SECONDS)
                if code is not None:
                    raise ProbeFailed(f"{describe_exit(code)} right after it started")
            else:
                probe = build_probe(
                    service.ready,
                    expand=self._expand,
                    cwd=cwd,
                    env=env,
                    log_path=self._log_dir / f"{name}.ready.log",
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
        except ProbeFailed as failure:
            self._fail(name, failure.reason, log_path)
        with self._lock:
            running.ready = True
        self._observer.on_event(name, "ready", f"ready after {time.monotonic() - started:.1f}s")

    def _fail(self, name: str, reason: str, log_path: Path) -> NoReturn:
        self._observer.on_event(name, "failed", reason)
        raise ServiceFailed(name, reason, tail_lines(log_path))

    def _stop_service(self, service: _Running) -> None:
        code = service.tree.exit_code()
        if code is not None:
            self._report_exit(service, code)
        signame = signal.Signals(service.service.stop_signal).name
        self._observer.on_event(
            service.name,
            "stopping",
            f"sending {signame}, SIGKILL after {service.service.grace:g}s",
        )
        started = time.monotonic()
        result = service.tree.stop(service.service.stop_signal, service.service.grace)
        took = time.monotonic() - started
        if code is not None:
            message = f"had already {describe_exit(code)}"
        elif result.returncode is None:
            message = f"could not be reaped after {took:.1f}s"
        else:
            message = f"{describe_exit(result.returncode)} after {took:.1f}s"
        if result.killed:
            message += f"; killed: still running {service.service.grace:g}s after {signame}"
        self._observer.on_event(service.name, "stopped", message)

    def _report_exit(self, service: _Running, code: int) -> None:
        """Tell the observer, once, that a service exited when nobody asked it to."""
        with self._lock:
            if not service.ready or service.exit_reported:
                return
            service.exit_reported = True
            unexpected = not service.stopping
        if unexpected:
            self._observer.on_event(service.name, "exited", f"{describe_exit(code)} unexpectedly")

    def _watch(self) -> None:
        """One monitor tick: sample every service, notice the ones that exited."""
        with self._lock:
            services = [s for s in self._running.values() if not s.stopping]
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
            code = service.tree.exit_code()
            if code is not None:
                self._report_exit(service, code)
