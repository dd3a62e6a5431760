"""One process tree that gonogo starts: its own group, a log file, the reaper told.

A tree is the process we started, its process group, everything carrying its tag in the
environment (which survives `setsid()`) and every descendant of those. Until the tree is
stopped its leader is never reaped — exits are observed with `WNOWAIT` — so the leader's
pid, and with it the group number, cannot be reused by an unrelated process while we may
still signal the group.
"""

from __future__ import annotations

__all__ = [
    "ProcessTree",
    "StopResult",
    "describe_exit",
    "describe_start_error",
    "resolve_argv",
    "spawn",
    "tail_lines",
]

import contextlib
import ctypes
import os
import secrets
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from gonogo.system import procfs
from gonogo.system.reaper import TAG_VARIABLE, Reaper

_PR_SET_PDEATHSIG = 1
_KILL_WAIT = 10.0  # SIGKILL is not refused; this only bounds a process stuck in the kernel


def _load_prctl() -> Callable[..., int] | None:
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


_prctl = _load_prctl()


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn that makes the child die with gonogo, when that is safe to ask for.

    PR_SET_PDEATHSIG fires when the *thread* that forked exits, so it is only set when
    spawning from the main thread (which lives as long as gonogo). Elsewhere the reaper
    alone covers gonogo's death.
    """
    if _prctl is None or threading.current_thread() is not threading.main_thread():
        return None
    prctl, parent = _prctl, os.getpid()

    def setup() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # gonogo died before the guard was in place
            os.kill(os.getpid(), signal.SIGKILL)

    return setup


def resolve_argv(
    command: Sequence[str] | str, *, shell: bool, expand: Callable[[str], str] | None = None
) -> list[str]:
    """The argv to execute. Raises ValueError for an empty or unsplittable command.

    A list runs as is; a string is split like a POSIX shell would, without running one;
    with `shell`, the command (a list joined by spaces) runs under `/bin/sh -c`.
    Placeholders are expanded word by word, so a path with spaces stays one word.
    """
    expand = expand or (lambda text: text)
    if shell:
        line = command if isinstance(command, str) else " ".join(command)
        argv = ["/bin/sh", "-c", expand(line)]
    else:
        words = shlex.split(command) if isinstance(command, str) else list(command)
        argv = [expand(word) for word in words]
    if not argv or not argv[-1].strip():
        raise ValueError("the command is empty")
    return argv


def describe_exit(code: int) -> str:
    if code >= 0:
        return f"exited with code {code}"
    try:
        return f"was killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"was killed by signal {-code}"


def describe_start_error(error: OSError | ValueError) -> str:
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    return str(error)


def tail_lines(path: Path, count: int = 20) -> list[str]:
    """The last `count` lines of a log file (empty if there is none)."""
    try:
        with open(path, "rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - 64 * 1024))
            data = log.read()
    except OSError:
        return []
    return data.decode(errors="replace").splitlines()[-count:]


@dataclass(frozen=True)
class StopResult:
    returncode: int | None  # of the process we started; None if it could not be reaped
    killed: bool  # SIGKILL was needed: something outlived the grace period


class ProcessTree:
    """A started process and everything it started. Thread-safe."""

    def __init__(self, popen: subprocess.Popen[bytes], tag: str, start_time: int) -> None:
        self.popen = popen
        self.pid = popen.pid
        self.pgid = popen.pid  # start_new_session: the leader of its own group
        self._lock = threading.Lock()
        self._returncode: int | None = None
        self._reaped = False
        self._leader = (self.pid, start_time)
        self._selector = procfs.Selector(
            pgids={self.pgid},
            processes={self._leader},
            env_entries={f"{TAG_VARIABLE}={tag}".encode()},
        )

    def exit_code(self) -> int | None:
        """The leader's exit code once it has exited, else None; never reaps it."""
        with self._lock:
            if self._returncode is None and not self._reaped:
                try:
                    result = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
                except ChildProcessError:  # reaped behind our back; Popen copes with that
                    return self.popen.poll()
                if result is not None:
                    exited = result.si_code == os.CLD_EXITED
                    self._returncode = result.si_status if exited else -result.si_status
            return self._returncode if not self._reaped else self.popen.returncode

    def wait_exit(self, timeout: float | None) -> int | None:
        """Wait up to `timeout` seconds (None: forever) for the leader to exit."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.001
        while True:
            code = self.exit_code()
            if code is not None:
                return code
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                delay = min(delay, remaining)
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def members(self, processes: list[procfs.ProcInfo] | None = None) -> list[procfs.ProcInfo]:
        """The tree's live processes (from `processes`, a fresh scan by default).

        Each one found is remembered by pid and start time, so it stays ours even after
        its parent, the only link to us, is gone.
        """
        processes = procfs.scan() if processes is None else processes
        found = procfs.select(self._selector, processes)
        with self._lock:
            if not self._reaped:
                # Only the living are kept, or a long run would remember every process
                # its service ever started.
                self._selector.processes = {self._leader} | {(p.pid, p.start_time) for p in found}
        return found

    def send(self, signum: int) -> list[procfs.ProcInfo]:
        """Send `signum` to every live process of the tree; returns those signalled.

        Nothing is sent once the leader is reaped: its group number may be anyone's then.
        """
        with self._lock:
            if self._reaped:
                return []
        alive = self.members()
        if alive:
            with contextlib.suppress(OSError):
                os.killpg(self.pgid, signum)
            procfs.signal_all([p for p in alive if p.pgid != self.pgid], signum)
        return alive

    def stop(self, signum: int, grace: float) -> StopResult:
        """Send `signum` to the whole tree, SIGKILL what is left after `grace` seconds.

        Idempotent. Processes that left the group are signalled too: the tree is read
        before signalling, while a setsid() grandchild is still a descendant.
        """
        if self._reaped:
            return StopResult(self.popen.returncode, killed=False)
        alive = self.members()
        killed = False
        if alive and signum != signal.SIGKILL:
            with contextlib.suppress(OSError):
                os.killpg(self.pgid, signum)
            procfs.signal_all([p for p in alive if p.pgid != self.pgid], signum)
            deadline = time.monotonic() + grace
            while alive and time.monotonic() < deadline:
                time.sleep(0.05)
                alive = self.members()
        if alive:
            killed = True
            procfs.kill_until_gone(self._selector, deadline=time.monotonic() + _KILL_WAIT)
        with self._lock:
            try:
                self.popen.wait(_KILL_WAIT)
            except subprocess.TimeoutExpired:  # stuck in the kernel; the reaper has it
                return StopResult(None, killed)
            self._reaped = True
            # From here the leader's pid and group number are free for anyone to reuse.
            self._selector.pgids.clear()
            self._selector.processes.clear()
        return StopResult(self.popen.returncode, killed)


def spawn(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None,
    log_path: Path,
    reaper: Reaper,
    append: bool = False,
) -> ProcessTree:
    """Start `argv` in its own session, output to `log_path`, registered with the reaper.

    `env` is merged over gonogo's environment; with `append` the log is added to, not
    truncated (a restarted service). Raises OSError if it cannot be started.
    """
    tag = secrets.token_hex(8)
    full_env = {**os.environ, **(env or {}), **reaper.env(), TAG_VARIABLE: tag}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # A Ctrl-C can land anywhere in here, even inside Popen after the fork; the tag finds
    # the new process then, since nobody else holds it yet.
    try:
        with open(log_path, "ab" if append else "wb") as log:
            popen = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent(),  # see _die_with_parent for when it is safe
            )
        started = procfs.info(popen.pid)
        tree = ProcessTree(popen, tag, started.start_time if started is not None else -1)
        reaper.register(popen.pid, popen.pid)
    except BaseException:
        orphan = procfs.Selector(pgids=set(), processes=set(), env_entries={f"{TAG_VARIABLE}={tag}".encode()})
        procfs.kill_until_gone(orphan, deadline=time.monotonic() + _KILL_WAIT)
        raise
    return tree
