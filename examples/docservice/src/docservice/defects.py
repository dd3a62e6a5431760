"""Stability and durability defects on purpose, for gonogo's own tests (README, "Deliberate
failure switches"). Nothing here runs unless its DOCSERVICE_* switch is set.

- `Defects` (ASGI middleware): every request leaks memory (DOCSERVICE_LEAK_MEMORY=N KiB) or a
  file descriptor (DOCSERVICE_LEAK_FDS), and the process exits with status 1 once it has
  answered DOCSERVICE_CRASH_AFTER requests.
- `Slowdown` (ASGI middleware): every response takes DOCSERVICE_SLOWDOWN (a fraction, 0.2 =
  20%) longer than it otherwise would: before the body message that completes the response
  for the client (the one reaching its Content-Length, else the last one) goes out, the
  request sleeps that fraction of the time it has taken so far.
- `WriteBehind`: uploads acknowledged before they are committed (DOCSERVICE_WRITE_BEHIND).
  Pending uploads are committed before any read of documents (so a user always reads what
  was acknowledged) and by a flush every `interval` seconds. Under steady mixed traffic the
  reads commit each upload within milliseconds, which hides the defect from a kill at a random
  moment; right after a burst of uploads with no read behind it, up to `interval` seconds of
  acknowledged uploads live only in memory, and a crash then loses them.
"""

from __future__ import annotations

__all__ = ["Defects", "FlushBeforeReads", "Slowdown", "WriteBehind"]

import asyncio
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from starlette.concurrency import run_in_threadpool

log = logging.getLogger("docservice.api")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CRASH_EXIT_STATUS = 1
LEAK_FILL = b"\xa5"  # written into every leaked byte, so the pages are really resident


class Defects:
    """Pure ASGI middleware applying the stability switches to every HTTP request."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        leak_memory_kib: int = 0,
        leak_fds: bool = False,
        crash_after: int = 0,
        leaked_file: str = os.devnull,
    ) -> None:
        self.app = app
        self.leak_bytes = leak_memory_kib * 1024
        self.leak_fds = leak_fds
        self.crash_after = crash_after
        self.leaked_file = leaked_file
        self.kept: list[bytes] = []  # never emptied: the leak
        self.leaked_fds: list[int] = []  # never closed
        self.answered = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.leak_bytes:
            self.kept.append(LEAK_FILL * self.leak_bytes)
        if self.leak_fds:
            self.leaked_fds.append(os.open(self.leaked_file, os.O_RDONLY))
        try:
            await self.app(scope, receive, send)
        finally:
            self.answered += 1
            if self.crash_after and self.answered >= self.crash_after:
                log.critical(
                    "DOCSERVICE_CRASH_AFTER=%d: crashing on purpose after %d requests",
                    self.crash_after,
                    self.answered,
                )
                os._exit(CRASH_EXIT_STATUS)  # no cleanup, no drain: a crash


class Slowdown:
    """Pure ASGI middleware: every HTTP response `fraction` slower than it would be.

    The sleep happens in a thread, not with `asyncio.sleep`: the event loop's timers wait in
    whole milliseconds (epoll), which would turn 20% of a 2 ms request into 50%.
    """

    def __init__(self, app: ASGIApp, *, fraction: float) -> None:
        self.app = app
        self.fraction = fraction
        self.sleeper = ThreadPoolExecutor(max_workers=32, thread_name_prefix="slowdown")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        length: int | None = None  # the Content-Length, when the response declares one
        sent = 0
        slept = False

        async def send_late(message: Message) -> None:
            nonlocal length, sent, slept
            if message["type"] == "http.response.start":
                for name, value in message.get("headers", []):
                    if name.lower() == b"content-length":
                        length = int(value)
            elif message["type"] == "http.response.body" and not slept:
                sent += len(message.get("body", b""))
                # the response is complete for the client with its last declared byte, or with
                # the last message of a response of unknown length: sleep before that one
                if not message.get("more_body", False) or (length is not None and sent >= length):
                    slept = True
                    delay = self.fraction * (time.perf_counter() - started)
                    await loop.run_in_executor(self.sleeper, time.sleep, delay)
            await send(message)

        await self.app(scope, receive, send_late)


class WriteBehind:
    """Acknowledged uploads waiting to be committed (file moved into place, row inserted)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._pending: list[tuple[Callable[[], None], Callable[[], None]]] = []
        self._pending_lock = threading.Lock()
        self._flush_lock = threading.Lock()  # a reader waits for a flush under way

    def add(self, store: Callable[[], None], abort: Callable[[], None]) -> None:
        with self._pending_lock:
            self._pending.append((store, abort))

    def pending(self) -> int:
        with self._pending_lock:
            return len(self._pending)

    def flush(self) -> int:
        """Commit everything pending; the number committed. Blocking (call from a thread)."""
        with self._flush_lock:
            with self._pending_lock:
                batch, self._pending = self._pending, []
            committed = 0
            for store, abort in batch:
                try:
                    store()
                    committed += 1
                except Exception:
                    abort()
                    log.exception("an acknowledged upload was lost: committing it failed")
            return committed

    async def run(self, flush: Callable[[], Awaitable[int]]) -> None:
        """The periodic flush; cancelled at shutdown (the caller flushes once more then)."""
        while True:
            await asyncio.sleep(self.interval)
            await flush()


class FlushBeforeReads:
    """Pure ASGI middleware: a request that reads documents first commits what is pending, so
    users always read what they were acknowledged (health checks and uploads do not flush)."""

    def __init__(self, app: ASGIApp, *, write_behind: WriteBehind) -> None:
        self.app = app
        self.write_behind = write_behind

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        reads = scope["type"] == "http" and reads_documents(scope["method"], scope["path"])
        if reads and self.write_behind.pending():
            await run_in_threadpool(self.write_behind.flush)
        await self.app(scope, receive, send)


def reads_documents(method: str, path: str) -> bool:
    return method in ("GET", "HEAD", "DELETE") and (path == "/documents" or path.startswith("/documents/"))
