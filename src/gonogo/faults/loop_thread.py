"""An asyncio event loop on a thread of its own, started and stopped from synchronous code.

Both fault proxies run this way, so gonogo (synchronous) and the tests can start one, drive it
and stop it without an event loop of their own.
"""

from __future__ import annotations

__all__ = ["LoopThread", "cancel_stragglers"]

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

_T = TypeVar("_T")


class LoopThread:
    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._startup: Callable[[], Coroutine[Any, Any, None]] | None = None

    def start(self, startup: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run `startup` on the new loop; raise here what it raised (e.g. OSError: address in use)."""
        self._startup = startup
        self.thread.start()
        self._ready.wait()
        if self._error is not None:
            self.thread.join()
            raise self._error

    def _run(self) -> None:
        assert self._startup is not None
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._startup())
        except BaseException as exc:  # reported to the thread that called start()
            self._error = exc
            self._ready.set()
            self.loop.close()
            return
        self._ready.set()
        try:
            self.loop.run_forever()
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def call(self, coroutine: Coroutine[Any, Any, _T], timeout: float = 10) -> _T:
        """Run `coroutine` on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=timeout)

    def stop(self, shutdown: Callable[[], Coroutine[Any, Any, None]], timeout: float = 10) -> None:
        """Run `shutdown` on the loop, then stop the loop and its thread."""
        self.call(shutdown(), timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=timeout)


async def cancel_stragglers(after_each_round: Callable[[], None] | None = None) -> None:
    """Cancel every other task on the loop until none is left.

    Connections accepted just before a close still have handlers starting up; a task cancelled
    before its first step never runs its cleanup, so let them start, then cancel, until none is left.
    """
    for _ in range(50):
        await asyncio.sleep(0.01)
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if not tasks:
            break
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if after_each_round is not None:
            after_each_round()
    await asyncio.sleep(0.01)  # transports close their sockets in callbacks scheduled by close()
