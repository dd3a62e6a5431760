"""A TCP listener on the running event loop that hands each connection to a stream handler.

``asyncio.start_server`` on Python 3.11 leaks the socket of a connection accepted just before
``Server.close()`` (the transport's ``Server._attach`` assertion fails and nothing closes it), which
would leave a client hanging exactly when a proxy is disabled. This listener accepts in a
plain reader callback and wraps each socket itself, so a closed listener leaves no socket behind.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

__all__ = ["Handler", "Listener", "listening_socket"]

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def listening_socket(host: str, port: int) -> socket.socket:
    """A non-blocking listening TCP socket on a loopback `host` (IPv4 or IPv6)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server(
        ("127.0.0.1" if host == "localhost" else host, port), family=family, backlog=128
    )
    sock.setblocking(False)
    return sock


class Listener:
    def __init__(self, sock: socket.socket, handler: Handler) -> None:
        self._sock = sock
        self._handler = handler
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._accept)
        self.port: int = sock.getsockname()[1]

    @classmethod
    async def open(cls, host: str, port: int, handler: Handler) -> Listener:
        return cls(listening_socket(host, port), handler)

    def _accept(self) -> None:
        # synchronous: every accepted socket is handed to its task at once, so none can be dropped
        for _ in range(64):
            try:
                conn, _ = self._sock.accept()
            except OSError:  # BlockingIOError: nothing more to accept
                return
            conn.setblocking(False)
            task = self._loop.create_task(self._serve(conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _serve(self, conn: socket.socket) -> None:
        try:
            reader, writer = await asyncio.open_connection(sock=conn)
        except BaseException:
            conn.close()
            raise
        await self._handler(reader, writer)

    async def close(self) -> None:
        """Stop accepting and close the listening socket; handlers already running go on."""
        if self._sock.fileno() != -1:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
