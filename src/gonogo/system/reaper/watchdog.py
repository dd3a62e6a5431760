"""The watchdog process: waits for gonogo's end, then kills everything gonogo started.

Protocol on stdin, one line each: `reg PID PGID START_TIME` (a process gonogo started),
`undo HANDLE JSON_ARGV` (how to take back a fault gonogo applied), `done HANDLE` (that
fault is gone), `bye` (gonogo is closing cleanly). End of input, or gonogo's pid exiting,
without `bye` means gonogo died: after killing, the watchdog runs the undo commands still
registered, newest first, then the `--on-death` command.
"""

from __future__ import annotations

__all__ = ["main", "watch"]

import argparse
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from types import FrameType
from typing import Literal

from gonogo.errors import GonogoError
from gonogo.system import procfs
from gonogo.system.reaper.client import TOKEN_VARIABLE

_KILL_TIME = 20.0
_ON_DEATH_TIMEOUT = 120.0
_UNDO_TIMEOUT = 30.0  # each; an undo is one small command (rm, iptables)
_TICK = 0.5  # how often to refresh what we know, and to check on gonogo without pidfd

Ending = Literal["bye", "death", "terminated"]


class _Terminated(GonogoError):
    pass


def _log(message: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    try:
        sys.stderr.write(f"{stamp} gonogo reaper[{os.getpid()}]: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass  # nowhere to log to must not stop the killing


def _refresh(selector: procfs.Selector) -> None:
    """Forget what is gone (so a reused number is never hit); adopt new descendants.

    Adopting means remembering each of our processes by pid and start time. A child that
    left its group and cleared its environment is then still known after its parent
    dies (and with it the only link to us).
    """
    for pgid in list(selector.pgids):
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            selector.pgids.discard(pgid)
        except OSError:
            pass
    alive = procfs.scan()
    current = {(process.pid, process.start_time) for process in alive}
    selector.processes &= current
    # Reading /proc/*/stat only (no environments) keeps this cheap enough to do often.
    family = procfs.Selector(pgids=selector.pgids, processes=selector.processes)
    selector.processes |= {(p.pid, p.start_time) for p in procfs.select(family, alive)}


def _owner_gone(owner: int, owner_start: int | None) -> bool:
    now = procfs.info(owner)
    return now is None or now.start_time != owner_start or now.state in ("Z", "X")


def watch(
    fd: int,
    owner: int,
    owner_start: int | None,
    selector: procfs.Selector,
    undos: dict[int, list[str]] | None = None,
) -> Ending:
    """Read registrations from `fd` into `selector` (and `undos`) until gonogo says bye or is gone."""
    undos = {} if undos is None else undos
    pidfd: int | None = None
    # Without it (old kernel, or gonogo already gone) the pipe and the tick still tell us.
    with contextlib.suppress(AttributeError, OSError):
        pidfd = os.pidfd_open(owner)
    os.set_blocking(fd, False)
    pending = b""
    last_refresh = time.monotonic()
    while True:
        watched = [fd] if pidfd is None else [fd, pidfd]
        readable = select.select(watched, [], [], _TICK)[0]
        owner_ended = (pidfd is not None and pidfd in readable) or (
            pidfd is None and _owner_gone(owner, owner_start)
        )
        eof = False
        while True:  # drain whatever gonogo wrote before it ended
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                eof = True
                break
            pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            text = line.decode(errors="replace")
            words = text.split()
            if words == ["bye"]:
                return "bye"
            if len(words) == 4 and words[0] == "reg" and all(w.lstrip("-").isdigit() for w in words[1:]):
                pid, pgid, start_time = (int(word) for word in words[1:])
                selector.pgids.add(pgid)
                selector.processes.add((pid, start_time))
            elif len(words) >= 3 and words[0] == "undo" and words[1].isdigit():
                command = _undo_command(text.split(maxsplit=2)[2])  # the JSON may hold spaces
                if command is not None:
                    undos[int(words[1])] = command
                else:
                    _log(f"ignoring a malformed undo command: {line[:200]!r}")
            elif len(words) == 2 and words[0] == "done" and words[1].isdigit():
                undos.pop(int(words[1]), None)
            elif words:
                _log(f"ignoring an unknown line: {line[:200]!r}")
        if eof or owner_ended:
            return "death"
        if time.monotonic() - last_refresh >= _TICK:
            _refresh(selector)
            last_refresh = time.monotonic()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gonogo.system.reaper")
    parser.add_argument("--token", required=True)
    parser.add_argument("--owner", type=int, required=True, help="gonogo's pid")
    parser.add_argument("--ready-fd", type=int, help="write 'ready' there once watching")
    parser.add_argument("--on-death", help="JSON argv to run if gonogo dies without 'bye'")
    args = parser.parse_args(argv)
    on_death: list[str] | None = json.loads(args.on_death) if args.on_death else None

    # We live in our own session; a Ctrl-C or hang-up meant for gonogo is not for us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    terminating = False

    def terminate(signum: int, frame: FrameType | None) -> None:
        nonlocal terminating
        if not terminating:  # a second SIGTERM must not interrupt the killing
            terminating = True
            raise _Terminated()

    # Asked to go away: do the killing first, it is our last chance.
    signal.signal(signal.SIGTERM, terminate)

    owner_start = getattr(procfs.info(args.owner), "start_time", None)
    selector = procfs.Selector(
        env_entries={f"{TOKEN_VARIABLE}={args.token}".encode()},
        spare={os.getpid(), args.owner},
    )
    if args.ready_fd is not None:
        os.write(args.ready_fd, b"ready\n")
        os.close(args.ready_fd)
    ending: Ending
    undos: dict[int, list[str]] = {}
    try:
        ending = watch(0, args.owner, owner_start, selector, undos)
    except _Terminated:
        ending = "terminated"
    terminating = True
    killed = procfs.kill_until_gone(selector, deadline=time.monotonic() + _KILL_TIME)
    _log(f"gonogo {'closed' if ending == 'bye' else ending}; killed {killed} process(es)")
    if ending == "bye":
        return 0
    # Its pipe closes while gonogo is still exiting, so give it a moment to finish dying.
    owner_gone = _wait_owner_gone(args.owner, owner_start, 5.0)
    # Faults are undone even if gonogo somehow lingers: nobody else will take them back,
    # and every undo command is safe to run twice.
    for handle in sorted(undos, reverse=True):
        _run_logged("undo", undos[handle], _UNDO_TIMEOUT)
    # Only a gonogo that is really gone needs someone else to close its run.
    if on_death and owner_gone:
        _run_logged("on-death", on_death, _ON_DEATH_TIMEOUT)
    return 0


def _undo_command(encoded: str) -> list[str] | None:
    try:
        command = json.loads(encoded)
    except ValueError:
        return None
    if isinstance(command, list) and command and all(isinstance(word, str) for word in command):
        return command
    return None


def _wait_owner_gone(owner: int, owner_start: int | None, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not _owner_gone(owner, owner_start):
        if time.monotonic() >= deadline:
            _log("gonogo closed its pipe without saying bye but is still running")
            return False
        time.sleep(0.02)
    return True


def _run_logged(what: str, argv: list[str], timeout: float) -> None:
    _log(f"running {what} command {argv}")
    try:
        completed = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=sys.stderr,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as error:
        _log(f"{what} command failed: {error}")
        return
    _log(f"{what} command exited with code {completed.returncode}")
