"""gonogo's own fault proxy: TCP proxies with Toxiproxy-style toxics, driven by a Toxiproxy 2.x HTTP API.

Everything (proxy listeners, proxied connections, the HTTP API) runs on one asyncio event loop in a
background thread, so tests and gonogo can start and stop it from synchronous code::

    with FaultProxy.start() as faults:
        faults.api_url  # http://127.0.0.1:<port>, point any Toxiproxy client at it

Links of a proxy without any toxic are relayed in C (``_relay.c``: one thread, epoll, no Python per
chunk); when a toxic is added, the proxy's relayed links are handed back to the asyncio path, which
applies toxics (Toxiproxy semantics: toxics apply to existing connections). Links stay there after
the last toxic is removed. Without the built extension every link takes the asyncio path.

Listen and upstream addresses are loopback only. Every proxy counts its connections and bytes, and
every toxic counts the connections it was selected for and the times it actually acted
(``GET /proxies/{name}/stats`` or :meth:`FaultProxy.stats`), so a run can prove a fault was applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from gonogo.faults.addresses import format_address, parse_loopback_address
from gonogo.faults.listener import Listener, listening_socket
from gonogo.faults.loop_thread import LoopThread, cancel_stragglers
from gonogo.faults.toxics import Toxic

if TYPE_CHECKING:
    from gonogo.faults._relay import Relay

__all__ = ["FaultProxy", "ProxyState", "Registry", "ToxicCounters"]

_READ_SIZE = 32 * 1024
_QUEUE_CHUNKS = 64


@dataclass
class ToxicCounters:
    """Counters of one toxic name on one proxy; they outlive the toxic so evidence survives its removal."""

    type: str
    connections: int = 0
    applied: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "connections": self.connections, "applied": self.applied}


@dataclass
class _Stream:
    """One direction of a proxied connection."""

    name: str  # "upstream" (client to server) or "downstream" (server to client)
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter  # where the data goes
    queue: asyncio.Queue[tuple[float, bytes] | None] = field(
        default_factory=lambda: asyncio.Queue(maxsize=_QUEUE_CHUNKS)
    )
    sent: int = 0
    done: bool = False


class _Link:
    """One proxied connection: client <-> proxy <-> upstream."""

    def __init__(
        self,
        proxy: ProxyState,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        pending: tuple[bytes, bytes] = (b"", b""),
    ) -> None:
        self.proxy = proxy
        self.client_writer = client[1]
        self.upstream_writer = upstream[1]
        self.streams = (
            _Stream("upstream", client[0], upstream[1]),
            _Stream("downstream", upstream[0], client[1]),
        )
        now = asyncio.get_running_loop().time()
        for stream, data in zip(self.streams, pending, strict=True):
            if data:  # what the C relay had read but not yet sent when it handed the link over
                stream.queue.put_nowait((now, data))
        self._rolls: dict[int, tuple[Toxic, bool]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = False

    def start(self) -> None:
        for toxic in self.proxy.toxics:
            self.attach(toxic)
        for stream in self.streams:
            self._spawn(self._read_loop(stream))
            self._spawn(self._write_loop(stream))

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def selected(self, toxic: Toxic) -> bool:
        """Whether the toxicity roll (made once per connection and toxic) selected this toxic."""
        entry = self._rolls.get(id(toxic))
        if entry is not None and entry[0] is toxic:
            return entry[1]
        chosen = random.random() < toxic.toxicity
        self._rolls[id(toxic)] = (toxic, chosen)
        if chosen:
            self.proxy.counters(toxic).connections += 1
        return chosen

    def attach(self, toxic: Toxic) -> None:
        """A toxic now applies to this connection: roll for it and start its timer if it has one."""
        if not self.selected(toxic):
            return
        if toxic.type == "reset_peer" or (toxic.type == "timeout" and toxic.attr("timeout") > 0):
            self._spawn(self._close_timer(toxic))

    async def _close_timer(self, toxic: Toxic) -> None:
        await asyncio.sleep(toxic.attr("timeout") / 1000)
        if self.closed or not self.proxy.has_toxic(toxic):
            return
        self.proxy.counters(toxic).applied += 1
        self.close(reset=toxic.type == "reset_peer")

    def _active(self, stream: str) -> list[Toxic]:
        return [t for t in self.proxy.toxics if t.stream == stream and self.selected(t)]

    async def _read_loop(self, stream: _Stream) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await stream.reader.read(_READ_SIZE)
                if not data:
                    break
                await stream.queue.put((loop.time(), data))
        except (ConnectionError, OSError):
            pass
        await stream.queue.put(None)

    async def _write_loop(self, stream: _Stream) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                item = await stream.queue.get()
                toxics = self._active(stream.name)
                if item is None:
                    for toxic in toxics:
                        if toxic.type == "slow_close":
                            self.proxy.counters(toxic).applied += 1
                            await asyncio.sleep(toxic.attr("delay") / 1000)
                    self._half_close(stream)
                    return
                arrival, data = item
                holding = [t for t in toxics if t.type == "timeout"]
                if holding:  # data does not get through while a timeout toxic is active
                    for toxic in holding:
                        self.proxy.counters(toxic).applied += 1
                    continue
                for toxic in toxics:
                    if toxic.type == "latency":
                        jitter = toxic.attr("jitter")
                        delay = (toxic.attr("latency") + random.uniform(-jitter, jitter)) / 1000
                        self.proxy.counters(toxic).applied += 1
                        wait = arrival + delay - loop.time()
                        if wait > 0:
                            await asyncio.sleep(wait)
                close_after = False
                for toxic in toxics:
                    if toxic.type == "limit_data":
                        remaining = max(0, toxic.attr("bytes") - stream.sent)
                        if len(data) >= remaining:
                            data = data[:remaining]
                            close_after = True
                            self.proxy.counters(toxic).applied += 1
                await self._deliver(stream, data, toxics)
                if close_after:
                    self.close()
                    return
        except (ConnectionError, OSError):
            self.close()

    async def _deliver(self, stream: _Stream, data: bytes, toxics: list[Toxic]) -> None:
        slicers = [t for t in toxics if t.type == "slicer" and t.attr("average_size") > 0]
        pieces = [data]
        if slicers and data:
            slicer = slicers[0]
            self.proxy.counters(slicer).applied += 1
            pieces = _slice(data, slicer.attr("average_size"), slicer.attr("size_variation"))
        rates = [t for t in toxics if t.type == "bandwidth" and t.attr("rate") > 0]
        for index, piece in enumerate(pieces):
            if rates:
                rate = min(t.attr("rate") for t in rates) * 1000  # bytes per second
                step = max(1, rate // 10)
                for start in range(0, len(piece), step):
                    part = piece[start : start + step]
                    await self._write(stream, part)
                    await asyncio.sleep(len(part) / rate)
                for toxic in rates:
                    self.proxy.counters(toxic).applied += 1
            else:
                await self._write(stream, piece)
            if slicers and index < len(pieces) - 1:
                await asyncio.sleep(slicers[0].attr("delay") / 1_000_000)

    async def _write(self, stream: _Stream, data: bytes) -> None:
        if not data:
            return
        stream.writer.write(data)
        await stream.writer.drain()
        stream.sent += len(data)
        self.proxy.add_bytes(stream.name, len(data))

    def _half_close(self, stream: _Stream) -> None:
        stream.done = True
        if all(s.done for s in self.streams):
            self.close()
            return
        try:
            if stream.writer.can_write_eof():
                stream.writer.write_eof()
        except (ConnectionError, OSError):
            self.close()

    def close(self, reset: bool = False) -> None:
        """Cut the connection on both sides; with ``reset`` both peers get a TCP RST (SO_LINGER 0)."""
        if self.closed:
            return
        self.closed = True
        self.proxy.links.discard(self)
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        for writer in (self.client_writer, self.upstream_writer):
            if reset:
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
            else:
                writer.close()


def _slice(data: bytes, average: int, variation: int) -> list[bytes]:
    pieces = []
    start = 0
    while start < len(data):
        size = max(1, average + random.randint(-variation, variation))
        pieces.append(data[start : start + size])
        start += size
    return pieces


class _RelayHub:
    """The C relay of one registry on its event loop, and the Python handle of each link it relays."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.links: dict[int, _RelayedLink] = {}
        self._loop = asyncio.get_running_loop()
        self._notify_fd = relay.notify_fd
        self._loop.add_reader(self._notify_fd, self.reap)

    @classmethod
    def start(cls) -> _RelayHub | None:
        try:
            from gonogo.faults._relay import Relay
        except ImportError:  # extensions not built (setup.py build_ext --inplace): asyncio path only
            return None
        try:
            return cls(Relay())
        except OSError:  # no thread or fd left for it: the asyncio path still works
            return None

    def reap(self) -> None:
        """Fold the counters of links that ended in C into their proxies."""
        for link_id, sent_upstream, sent_downstream in self.relay.reap():
            link = self.links.pop(link_id, None)
            if link is not None:
                link.ended(sent_upstream, sent_downstream)

    def close(self) -> None:
        self.reap()
        self._loop.remove_reader(self._notify_fd)
        self.relay.stop()


class _RelayedLink:
    """A proxied connection relayed by the C relay; the relay owns both sockets while it lasts."""

    def __init__(
        self, proxy: ProxyState, hub: _RelayHub, client: socket.socket, upstream: socket.socket
    ) -> None:
        self.proxy = proxy
        self.hub = hub
        self.link_id = hub.relay.add(client.fileno(), upstream.fileno())
        client.detach()  # the relay owns the fds now
        upstream.detach()
        hub.links[self.link_id] = self
        self.closed = False

    def counters(self) -> tuple[int, int] | None:
        """Bytes sent upstream and downstream so far; None if the link ended and is not reaped yet."""
        return None if self.closed else self.hub.relay.counters(self.link_id)

    def _detach(self) -> None:
        self.closed = True
        self.proxy.links.discard(self)

    def ended(self, sent_upstream: int, sent_downstream: int) -> None:
        self._detach()
        self.proxy.add_bytes("upstream", sent_upstream)
        self.proxy.add_bytes("downstream", sent_downstream)

    def close(self, reset: bool = False) -> None:
        if self.closed:
            return
        self._detach()
        final = self.hub.relay.close(self.link_id, reset)
        if final is not None:  # else it ended in C a moment ago and reap() brings its counters
            self.hub.links.pop(self.link_id, None)
            self.proxy.add_bytes("upstream", final[0])
            self.proxy.add_bytes("downstream", final[1])

    def hand_to_asyncio(self) -> None:
        """Take the sockets back from the relay so the asyncio path (and its toxics) carries the link."""
        if self.closed:
            return
        self._detach()
        taken = self.hub.relay.take(self.link_id)
        if taken is None:  # ended in C a moment ago
            return
        self.hub.links.pop(self.link_id, None)
        client_fd, upstream_fd, pending_upstream, pending_downstream, sent_up, sent_down = taken
        self.proxy.add_bytes("upstream", sent_up)
        self.proxy.add_bytes("downstream", sent_down)
        client = socket.socket(fileno=client_fd)
        upstream = socket.socket(fileno=upstream_fd)
        self.proxy.spawn(
            self.proxy.start_asyncio_link(client, upstream, (pending_upstream, pending_downstream))
        )


class _ProxyListener:
    """Accepts on the event loop and hands every socket at once to a callback, so a close drops none."""

    def __init__(self, sock: socket.socket, on_connection: Callable[[socket.socket], None]) -> None:
        self._sock = sock
        self._on_connection = on_connection
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._accept)
        self.port: int = sock.getsockname()[1]

    @classmethod
    def open(cls, host: str, port: int, on_connection: Callable[[socket.socket], None]) -> _ProxyListener:
        return cls(listening_socket(host, port), on_connection)

    def _accept(self) -> None:
        for _ in range(64):
            try:
                conn, _ = self._sock.accept()
            except OSError:  # BlockingIOError: nothing more to accept
                return
            conn.setblocking(False)
            self._on_connection(conn)

    def close(self) -> None:
        if self._sock.fileno() != -1:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()


class ProxyState:
    """One named proxy: its listener, its live connections, its toxics and its counters."""

    def __init__(
        self,
        name: str,
        listen: tuple[str, int],
        upstream: str,
        enabled: bool,
        relay: Callable[[], _RelayHub | None] | None = None,
    ) -> None:
        self.name = name
        self.listen_host, self.listen_port = listen
        self.upstream = upstream
        self.upstream_host, self.upstream_port = parse_loopback_address(upstream, "upstream")
        self.enabled = enabled
        self.toxics: list[Toxic] = []
        self.links: set[_Link | _RelayedLink] = set()
        self.server: _ProxyListener | None = None
        self._relay = relay
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections_total = 0
        self.bytes_upstream = 0
        self.bytes_downstream = 0
        self.toxic_counters: dict[str, ToxicCounters] = {}

    @property
    def listen(self) -> str:
        return format_address(self.listen_host, self.listen_port)

    def set_upstream(self, upstream: str) -> None:
        self.upstream_host, self.upstream_port = parse_loopback_address(upstream, "upstream")
        self.upstream = upstream

    async def start_listening(self) -> None:
        if self.server is not None:
            return
        self.server = _ProxyListener.open(self.listen_host, self.listen_port, self._accept)
        self.listen_port = self.server.port

    async def stop_listening(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.close()
        for link in list(self.links):
            link.close()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _accept(self, conn: socket.socket) -> None:
        self.connections_total += 1
        self.spawn(self._connect(conn))

    async def _connect(self, conn: socket.socket) -> None:
        family = socket.AF_INET6 if ":" in self.upstream_host else socket.AF_INET
        upstream = socket.socket(family, socket.SOCK_STREAM)
        try:
            upstream.setblocking(False)
            await asyncio.get_running_loop().sock_connect(upstream, (self.upstream_host, self.upstream_port))
        except OSError:
            conn.close()
            upstream.close()
            return
        except BaseException:  # cancelled while connecting: do not leak either socket
            conn.close()
            upstream.close()
            raise
        if self.server is None:  # disabled while connecting
            conn.close()
            upstream.close()
            return
        hub = self._relay() if self._relay is not None and not self.toxics else None
        if hub is None:
            await self.start_asyncio_link(conn, upstream)
            return
        try:
            link = _RelayedLink(self, hub, conn, upstream)
        except OSError:
            conn.close()
            upstream.close()
            return
        self.links.add(link)

    async def start_asyncio_link(
        self, conn: socket.socket, upstream: socket.socket, pending: tuple[bytes, bytes] = (b"", b"")
    ) -> None:
        """Carry a connection on the asyncio path, where toxics apply."""
        try:
            client_streams = await asyncio.open_connection(sock=conn)
        except BaseException:
            conn.close()
            upstream.close()
            raise
        try:
            upstream_streams = await asyncio.open_connection(sock=upstream)
        except BaseException:
            client_streams[1].close()
            upstream.close()
            raise
        if self.server is None:  # disabled meanwhile
            client_streams[1].close()
            upstream_streams[1].close()
            return
        link = _Link(self, client_streams, upstream_streams, pending)
        self.links.add(link)
        link.start()

    def counters(self, toxic: Toxic) -> ToxicCounters:
        counters = self.toxic_counters.get(toxic.name)
        if counters is None or counters.type != toxic.type:
            counters = self.toxic_counters[toxic.name] = ToxicCounters(toxic.type)
        return counters

    def has_toxic(self, toxic: Toxic) -> bool:
        return any(t is toxic for t in self.toxics)

    def find_toxic(self, name: str) -> Toxic | None:
        return next((t for t in self.toxics if t.name == name), None)

    def add_toxic(self, toxic: Toxic) -> None:
        self.toxics.append(toxic)
        self.counters(toxic)
        for link in list(self.links):
            if isinstance(link, _RelayedLink):
                link.hand_to_asyncio()  # it attaches every toxic of the proxy when it starts
            else:
                link.attach(toxic)

    def remove_toxic(self, toxic: Toxic) -> None:
        self.toxics = [t for t in self.toxics if t is not toxic]

    def add_bytes(self, stream: str, count: int) -> None:
        if stream == "upstream":
            self.bytes_upstream += count
        else:
            self.bytes_downstream += count

    def _relayed_bytes(self) -> tuple[int, int]:
        """Bytes sent so far by the links the C relay carries (links it ended are folded in first)."""
        counts: list[tuple[int, int] | None] = []
        for _ in range(10):
            relayed = [link for link in self.links if isinstance(link, _RelayedLink)]
            if not relayed:
                return 0, 0
            relayed[0].hub.reap()
            counts = [link.counters() for link in self.links if isinstance(link, _RelayedLink)]
            if None not in counts:  # else a link ended between reap and counters: reap it too
                break
        known = [c for c in counts if c is not None]
        return sum(c[0] for c in known), sum(c[1] for c in known)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": [t.to_json() for t in self.toxics],
        }

    def stats(self) -> dict[str, Any]:
        sent_upstream, sent_downstream = self._relayed_bytes()
        return {
            "name": self.name,
            "connections_total": self.connections_total,
            "connections_open": len(self.links),
            "bytes_upstream": self.bytes_upstream + sent_upstream,
            "bytes_downstream": self.bytes_downstream + sent_downstream,
            "toxics": {name: c.to_json() for name, c in self.toxic_counters.items()},
        }


class Registry:
    """All proxies of one fault-proxy server; only touched from its event loop."""

    def __init__(self) -> None:
        self.proxies: dict[str, ProxyState] = {}
        self.relay: _RelayHub | None = None
        self._relay_tried = False

    def _relay_hub(self) -> _RelayHub | None:
        """The C relay, started on first use (on the event loop); None if the extension is not built."""
        if not self._relay_tried:
            self._relay_tried = True
            self.relay = _RelayHub.start()
        return self.relay

    async def create(self, name: str, listen: str, upstream: str, enabled: bool) -> ProxyState:
        proxy = ProxyState(name, parse_loopback_address(listen, "listen"), upstream, enabled, self._relay_hub)
        if enabled:
            await proxy.start_listening()
        self.proxies[name] = proxy
        return proxy

    async def update(
        self, proxy: ProxyState, listen: str | None, upstream: str | None, enabled: bool | None
    ) -> None:
        new_listen = parse_loopback_address(listen, "listen") if listen is not None else None
        if upstream is not None:
            proxy.set_upstream(upstream)
        if new_listen is not None and new_listen != (proxy.listen_host, proxy.listen_port):
            was_listening = proxy.server is not None
            await proxy.stop_listening()
            proxy.listen_host, proxy.listen_port = new_listen
            if was_listening:
                await proxy.start_listening()
        if enabled is not None and enabled != proxy.enabled:
            proxy.enabled = enabled
            if enabled:
                await proxy.start_listening()
            else:
                await proxy.stop_listening()

    async def delete(self, proxy: ProxyState) -> None:
        self.proxies.pop(proxy.name, None)
        await proxy.stop_listening()

    async def reset(self) -> None:
        for proxy in self.proxies.values():
            proxy.toxics = []
            if not proxy.enabled:
                proxy.enabled = True
                await proxy.start_listening()

    async def close(self) -> None:
        for proxy in list(self.proxies.values()):
            await self.delete(proxy)
        if self.relay is not None:
            self.relay.close()
            self.relay = None


class FaultProxy:
    """A running fault-proxy server (proxies plus Toxiproxy HTTP API) on its own thread and event loop."""

    def __init__(self, api_host: str, api_port: int) -> None:
        self.api_host = api_host
        self.api_port = api_port
        self.registry = Registry()
        self._runner = LoopThread("gonogo-fault-proxy")
        self._server: Listener | None = None
        self._stopped = False

    @classmethod
    def start(cls, api_host: str = "127.0.0.1", api_port: int = 0) -> FaultProxy:
        """Start the server; ``api_port=0`` picks a free port (see :attr:`api_url`)."""
        parse_loopback_address(format_address(api_host, api_port), "api address")
        server = cls(api_host, api_port)
        server._runner.start(server._startup)
        return server

    @property
    def api_url(self) -> str:
        host = f"[{self.api_host}]" if ":" in self.api_host else self.api_host
        return f"http://{host}:{self.api_port}"

    async def _startup(self) -> None:
        from gonogo.faults.api import handle_http

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await handle_http(self.registry, reader, writer)

        self._server = await Listener.open(self.api_host, self.api_port, serve)
        self.api_port = self._server.port

    async def _shutdown(self) -> None:
        if self._server is not None:
            await self._server.close()
        await self.registry.close()
        await cancel_stragglers()

    def stop(self) -> None:
        """Close the API, every proxy and every proxied connection; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._runner.stop(self._shutdown)

    def stats(self, name: str) -> dict[str, Any]:
        """Connections, bytes and per-toxic counters of one proxy (KeyError if there is no such proxy)."""

        async def read() -> dict[str, Any]:
            return self.registry.proxies[name].stats()

        return self._runner.call(read())

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
