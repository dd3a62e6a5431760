"""Running a load's parts (one per worker) in worker processes: started with `spawn`, each
its own engine, all starting at one common instant so that their seconds line up; progress
and results come back through pipes. Workers never outlive the caller: daemon processes,
killed in a `finally`, and given PR_SET_PDEATHSIG so that even a SIGKILL of the caller
takes them down.
"""

from __future__ import annotations

__all__ = ["Part", "fd_limit", "pinned", "run_processes"]

import contextlib
import multiprocessing
import os
import resource
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from gonogo.loadgen.merge import Progress, build_result
from gonogo.loadgen.native import engine as _engine
from gonogo.loadgen.results import LoadError, LoadInterrupted, LoadResult
from gonogo.loadgen.spec import LoadSpec

_READY_TIMEOUT = 60.0  # seconds for worker processes to start
_START_DELAY_NS = 100_000_000  # common start: this long after the last worker is ready
_STOP_GRACE = 3.0  # seconds for stopped workers to hand back what they measured


@dataclass(frozen=True)
class Part:
    index: int
    kwargs: dict[str, Any]
    cpu: int | None
    fds: int


@contextlib.contextmanager
def fd_limit(needed: int) -> Iterator[None]:
    """Raise the soft open-files limit for the run if the connections need it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed + 64
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        try:
            yield
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    else:
        yield


@contextlib.contextmanager
def pinned(cpu: int | None) -> Iterator[None]:
    """Pin the calling thread to one CPU for the run (Linux: affinity is per thread)."""
    if cpu is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _worker_main(conn: Connection, part: Part, parent: int) -> None:
    """A worker process: run one part, report progress and the result through `conn`."""
    # The parent handles Ctrl-C and stops the workers through the pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _engine.set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)
    try:
        if part.cpu is not None:
            os.sched_setaffinity(0, {part.cpu})
        engine = _engine.Engine(**part.kwargs)
        with fd_limit(part.fds):
            conn.send(("ready", None))
            message, start_ns = conn.recv()
            if message != "go":
                conn.send(("result", None, None))
                return
            error: str | None = None
            try:
                engine.run(
                    progress=lambda report: conn.send(("progress", report)),
                    should_stop=conn.poll,  # any message from the parent means stop
                    start_ns=start_ns,
                )
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
        conn.send(("result", engine.results(), error))
    except (BrokenPipeError, EOFError):  # the parent is gone
        os._exit(1)
    except Exception as exc:
        with contextlib.suppress(OSError):
            conn.send(("error", f"{type(exc).__name__}: {exc}", None))


def run_processes(
    spec: LoadSpec, parts: list[Part], progress: Progress, stop: threading.Event | None
) -> LoadResult:
    ctx = multiprocessing.get_context("spawn")
    processes: list[multiprocessing.process.BaseProcess] = []
    conns: list[Connection] = []
    raws: list[dict[str, Any] | None] = [None] * len(parts)
    stopping = False

    def stop_all() -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            for c in conns:
                with contextlib.suppress(OSError):
                    c.send(("stop", 0))

    def pump(deadline: float | None, until: str) -> None:
        """Handle messages until every worker said `until` ("ready" or "result")."""
        seen = [False] * len(parts)
        while not all(seen):
            if stop is not None and stop.is_set() and until == "result":
                stop_all()
            timeout = 0.1 if deadline is None else max(0.0, min(0.1, deadline - time.monotonic()))
            if deadline is not None and time.monotonic() >= deadline:
                raise LoadError(f"load workers did not {'start' if until == 'ready' else 'finish'} in time")
            waiting = {c: i for i, c in enumerate(conns) if not seen[i]}
            for ready in wait(list(waiting), timeout=timeout):
                assert isinstance(ready, Connection)
                i = waiting[ready]
                try:
                    message = ready.recv()
                except EOFError:
                    code = processes[i].exitcode
                    raise LoadError(f"load worker {i} exited unexpectedly (exit code {code})") from None
                kind = message[0]
                if kind == "error":
                    raise LoadError(f"load worker {i} failed: {message[1]}")
                if kind == "progress":
                    progress.feed(i, message[1])
                elif kind == until:
                    seen[i] = True
                    if kind == "result":
                        if message[2]:
                            raise LoadError(f"load worker {i} failed: {message[2]}")
                        raws[i] = message[1]

    started = False
    try:
        for part in parts:
            parent_end, child_end = ctx.Pipe(duplex=True)
            process = ctx.Process(
                target=_worker_main,
                args=(child_end, part, os.getpid()),
                name=f"gonogo-load-worker-{part.index}",
                daemon=True,
            )
            processes.append(process)
            conns.append(parent_end)
            process.start()
            child_end.close()
        pump(time.monotonic() + _READY_TIMEOUT, "ready")
        start_ns = time.monotonic_ns() + _START_DELAY_NS
        for c in conns:
            c.send(("go", start_ns))
        started = True
        pump(None, "result")
        return build_result(
            spec, [(p, r) for p, r in zip(parts, raws, strict=True) if r is not None], stopping
        )
    except KeyboardInterrupt as exc:
        if started:  # the workers hand back what they measured
            stop_all()
            with contextlib.suppress(LoadError, OSError):
                pump(time.monotonic() + _STOP_GRACE, "result")
        got = [(p, r) for p, r in zip(parts, raws, strict=True) if r is not None]
        raise LoadInterrupted(build_result(spec, got, True)) from exc
    finally:
        for worker in processes:
            if worker.is_alive():
                worker.kill()
        for worker in processes:
            worker.join(5)
        for c in conns:
            c.close()
