"""gonogo's side of the watchdog: start it, tell it what we start, say goodbye.

The watchdog runs in its own session, reading a pipe whose only writer is gonogo. It
learns of gonogo's end from that pipe (or from gonogo's pid, should a forked child keep
the pipe open): a "bye" line first means a clean close; no "bye" means gonogo died, and
the watchdog then also runs the undo commands still registered (`add_undo`: how to take
back a fault gonogo applied, such as an iptables rule or a file filling a disk) and then
`on_death_argv`. Either way it kills every registered process group and every process
carrying the run token, then exits.
"""

from __future__ import annotations

__all__ = ["TAG_VARIABLE", "TOKEN_VARIABLE", "Reaper"]

import itertools
import json
import os
import re
import select
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import gonogo
from gonogo.errors import RunFailed
from gonogo.system import procfs

TOKEN_VARIABLE = "GONOGO_RUN_TOKEN"
# Set per service / per command, so one of them can be cleaned up without touching the others.
TAG_VARIABLE = "GONOGO_PROCESS_TAG"

_TOKEN = re.compile(r"[A-Za-z0-9_.-]{8,128}")
_START_TIMEOUT = 20.0  # the watchdog imports gonogo; a loaded CI machine may be slow
_CLOSE_TIMEOUT = 30.0
_FALLBACK_KILL_TIME = 10.0


class Reaper:
    """Handle on the watchdog process. Create it with `Reaper.start`; thread-safe."""

    def __init__(self, token: str, process: subprocess.Popen[bytes]) -> None:
        self.token = token
        self._process = process
        self._lock = threading.Lock()
        self._closed = False
        self._undo_handles = itertools.count(1)
        # What we told the watchdog, so that close() can still clean up if it is gone.
        self._selector = procfs.Selector(
            env_entries={f"{TOKEN_VARIABLE}={token}".encode()}, spare={os.getpid()}
        )

    @classmethod
    def start(
        cls,
        token: str,
        on_death_argv: Sequence[str] | None = None,
        *,
        log_path: Path | None = None,
    ) -> Reaper:
        """Start the watchdog; returns once it is watching.

        `on_death_argv` runs (after the killing) only if gonogo died without `close()`.
        The watchdog's own messages and the output of `on_death_argv` go to `log_path`.
        """
        if not _TOKEN.fullmatch(token):
            raise ValueError("a run token is 8-128 characters out of A-Z a-z 0-9 _ . -")
        ready_read, ready_write = os.pipe()
        argv = [
            sys.executable, "-m", "gonogo.system.reaper",
            "--token", token,
            "--owner", str(os.getpid()),
            "--ready-fd", str(ready_write),
        ]  # fmt: skip
        if on_death_argv is not None:
            argv += ["--on-death", json.dumps(list(on_death_argv))]
        env = dict(os.environ)
        if env.get(TOKEN_VARIABLE) == token:
            del env[TOKEN_VARIABLE]  # the watchdog must never match itself
        # Make sure the watchdog imports this very gonogo, even from a source checkout.
        source_root = str(Path(gonogo.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [source_root, env.get("PYTHONPATH")]))
        log = open(log_path, "ab") if log_path is not None else None  # noqa: SIM115
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=log if log is not None else subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
                pass_fds=(ready_write,),
                start_new_session=True,  # out of reach of the terminal's Ctrl-C and of killpg
                env=env,
            )
        except OSError:
            os.close(ready_read)
            raise
        finally:
            os.close(ready_write)
            if log is not None:
                log.close()
        try:
            ready = _read_ready(ready_read, _START_TIMEOUT)
        finally:
            os.close(ready_read)
        if not ready:
            process.kill()
            process.wait()
            where = f"; see {log_path}" if log_path is not None else ""
            raise RunFailed(f"the reaper watchdog did not start (exit code {process.returncode}){where}")
        return cls(token, process)

    @property
    def pid(self) -> int:
        """The watchdog's pid."""
        return self._process.pid

    def env(self) -> dict[str, str]:
        """Environment entries to give every process gonogo starts."""
        return {TOKEN_VARIABLE: self.token}

    def register(self, pid: int, pgid: int) -> None:
        """Tell the watchdog about a process (and its group) we just started."""
        with self._lock:
            if self._closed:
                raise RunFailed("the reaper is closed; no process may be started any more")
            self._selector.pgids.add(pgid)
            started = procfs.info(pid)
            start_time = started.start_time if started is not None else -1
            self._selector.processes.add((pid, start_time))
            self._send(f"reg {pid} {pgid} {start_time}\n")

    def add_undo(self, argv: Sequence[str]) -> int:
        """Have the watchdog run `argv` should gonogo die before `remove_undo(handle)`.

        For faults living outside any process (a firewall rule, a file filling a disk):
        register the undo before applying the fault, remove it once the fault is removed.
        Undo commands run after the killing, newest first, each with a time limit; a clean
        `close()` runs none of them. Returns the handle for `remove_undo`.
        """
        command = list(argv)
        if not command or not command[0] or not all(isinstance(word, str) for word in command):
            raise ValueError("an undo command is a list of strings, the first one naming the program")
        encoded = json.dumps(command)  # one line: JSON escapes line breaks
        with self._lock:
            if self._closed:
                raise RunFailed("the reaper is closed; no fault may be applied any more")
            handle = next(self._undo_handles)
            self._send(f"undo {handle} {encoded}\n")
        return handle

    def remove_undo(self, handle: int) -> None:
        """The fault behind `handle` is gone: its undo command must not run. Idempotent."""
        with self._lock:
            if self._closed:
                return  # a closed watchdog runs nothing any more
            self._send(f"done {handle}\n")

    def close(self) -> None:
        """Kill anything still alive that we started and stop the watchdog. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            clean = True
            try:
                self._send("bye\n")
            except RunFailed:
                clean = False
            assert self._process.stdin is not None
            try:
                self._process.stdin.close()
            except OSError:
                clean = False
            try:
                clean = self._process.wait(_CLOSE_TIMEOUT) == 0 and clean
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
                clean = False
            if not clean:
                # The watchdog failed us; do its job here rather than leave anything behind.
                procfs.kill_until_gone(self._selector, deadline=time.monotonic() + _FALLBACK_KILL_TIME)

    def _send(self, line: str) -> None:
        assert self._process.stdin is not None
        try:
            os.write(self._process.stdin.fileno(), line.encode())
        except (OSError, ValueError) as error:
            raise RunFailed(
                f"the reaper watchdog is gone ({error}); processes could outlive gonogo"
            ) from error

    def __enter__(self) -> Reaper:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _read_ready(fd: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    received = b""
    while b"\n" not in received:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            return False
        chunk = os.read(fd, 64)
        if not chunk:
            return False
        received += chunk
    return received.startswith(b"ready")
