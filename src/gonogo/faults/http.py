"""An HTTP/1.1 fault proxy: faults TCP toxics cannot express, in front of one service's HTTP dependency.

The plan routes a dependency (an external API, a model server) through the proxy; rules then answer
a status for a share of the requests without contacting the upstream, delay responses, cut response
bodies short or reset connections, each restricted by method and path::

    with HttpFaultProxy.start(listen="127.0.0.1:0", upstream="127.0.0.1:8080", seed=7) as proxy:
        proxy.url  # http://127.0.0.1:<port>: point the service's dependency URL here
        with apply_http_fault(proxy, "status", toxicity=0.3, method="POST", path="/enrich") as fault:
            ...  # traffic flows; fault.counters() shows what the rule did so far
        fault.detail  # "503 for 30% of POST /enrich: 41 of 139 requests affected"

Like the TCP fault proxy it runs on an asyncio loop in a background thread, is started and stopped
from synchronous code, listens on and forwards to loopback addresses only, and counts everything a
rule did so a run can prove the fault acted. Requests are forwarded as they came (same head bytes,
same body framing), one upstream connection per client connection, kept alive as long as both
sides keep theirs; bodies stream through in bounded pieces.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import random
import socket
import struct
import threading
from collections.abc import Callable, Sequence
from http import HTTPStatus
from types import TracebackType
from typing import Any, TypeVar

from gonogo.errors import GonogoError
from gonogo.faults.addresses import AddressError, format_address, parse_loopback_address
from gonogo.faults.base import ActiveFault, FaultError
from gonogo.faults.http_rules import HTTP_FAULT_KINDS, HttpRule, HttpRuleCounters, HttpRuleError, make_rule
from gonogo.faults.http_wire import (
    LENGTH,
    NO_BODY,
    SMALL_BODY,
    HttpProtocolError,
    RequestHead,
    ResponseHead,
    copy_body,
    discard_body,
    parse_request_head,
    parse_response_head,
)
from gonogo.faults.listener import Listener
from gonogo.faults.loop_thread import LoopThread, cancel_stragglers

__all__ = [
    "HTTP_FAULT_KINDS",
    "AddressError",
    "HttpFault",
    "HttpFaultProxy",
    "HttpRule",
    "HttpRuleCounters",
    "HttpRuleError",
    "apply_http_fault",
]

_T = TypeVar("_T")
_STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
_PIECE = 64 * 1024


class _Plan:
    """What the rules decided for one request."""

    __slots__ = ("request_delay", "response_delay", "terminal", "truncates")

    def __init__(self) -> None:
        self.terminal: HttpRule | None = None  # a status or reset rule: the upstream is not contacted
        self.request_delay = 0.0
        self.response_delay = 0.0
        self.truncates: list[HttpRule] = []


class _Counters:
    def __init__(self) -> None:
        self.connections = 0
        self.requests = 0
        self.responses = dict.fromkeys(_STATUS_CLASSES, 0)
        self.upstream_errors = 0
        self.upstream_connections = 0

    def response(self, status: int) -> None:
        key = f"{status // 100}xx"
        if key in self.responses:
            self.responses[key] += 1


class _Connection:
    """One client connection and the upstream connection that serves it."""

    def __init__(
        self, proxy: HttpFaultProxy, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.proxy = proxy
        self.counters = proxy._counters
        self.reader = reader
        self.writer = writer
        self.up_reader: asyncio.StreamReader | None = None
        self.up_writer: asyncio.StreamWriter | None = None
        self.children: set[asyncio.Task[Any]] = set()
        self.closed = False

    async def serve(self) -> None:
        try:
            while not self.closed and await self._exchange():
                pass
        except (ConnectionError, OSError, asyncio.IncompleteReadError, HttpProtocolError):
            pass
        finally:
            self.close()

    def close(self, reset: bool = False) -> None:
        """End both connections; with ``reset`` the client gets a TCP RST instead of a FIN."""
        if self.closed:
            return
        self.closed = True
        self.proxy._connections.discard(self)
        for task in self.children:
            task.cancel()
        if reset:
            sock = self.writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.writer.transport.abort()
        else:
            self.writer.close()
        self._drop_upstream()

    def _drop_upstream(self) -> None:
        if self.up_writer is not None:
            self.up_writer.transport.abort()
        self.up_reader = self.up_writer = None

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro)
        self.children.add(task)
        task.add_done_callback(self.children.discard)
        return task

    async def _exchange(self) -> bool:
        """Serve one request; whether the client connection stays open for another."""
        try:
            raw = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False  # the client closed its connection between requests
        except asyncio.LimitOverrunError:
            self.counters.requests += 1
            await self._reply(431, b"request head larger than 64 KiB\n", close=True)
            return False
        try:
            request = parse_request_head(raw)
        except HttpProtocolError as exc:
            self.counters.requests += 1
            await self._reply(400, f"bad request: {exc}\n".encode(), close=True)
            return False
        self.counters.requests += 1
        if request.method == "CONNECT":
            await self._reply(
                501, b"the gonogo HTTP fault proxy is a reverse proxy: no CONNECT\n", close=True
            )
            return False
        plan = self.proxy._plan(request)
        if plan is None:
            return await self._forward(request, None)
        if plan.terminal is not None:
            rule = plan.terminal
            await self._sleep(plan.request_delay + plan.response_delay)
            rule.counters.affected += 1
            if rule.kind == "reset":
                self.close(reset=True)
                return False
            return await self._answer_locally(request, rule.status, rule.body)
        await self._sleep(plan.request_delay)
        return await self._forward(request, plan)

    async def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            await asyncio.sleep(seconds)

    async def _reply(self, status: int, body: bytes, close: bool) -> None:
        reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Injected"
        head = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: {'close' if close else 'keep-alive'}\r\n\r\n"
        )
        self.counters.response(status)
        self.writer.write(head.encode("latin-1") + body)
        await self.writer.drain()
        if close:
            self.close()

    async def _answer_locally(self, request: RequestHead, status: int, body: bytes) -> bool:
        """Answer without the upstream, after reading the request's body so the connection stays usable."""
        close = request.close
        if request.framing != NO_BODY:
            if request.expect_continue:  # the client waits for 100 Continue: its body never comes
                close = True
            else:
                await discard_body(request, self.reader)
        await self._reply(status, body, close)
        return not close

    async def _connect_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
        """The upstream connection, opened if needed; the flag says whether it was reused."""
        if self.up_reader is not None and self.up_writer is not None:
            if not self.up_reader.at_eof() and not self.up_writer.transport.is_closing():
                return self.up_reader, self.up_writer, True
            self._drop_upstream()
        proxy = self.proxy
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(proxy._upstream_host, proxy._upstream_port), proxy.connect_timeout
        )
        self.up_reader, self.up_writer = reader, writer
        self.counters.upstream_connections += 1
        return reader, writer, False

    async def _upstream_failed(self, request: RequestHead, reason: str, body_read: bool) -> bool:
        self.counters.upstream_errors += 1
        self._drop_upstream()
        message = f"gonogo HTTP fault proxy: upstream {self.proxy.upstream} {reason}\n".encode()
        if body_read:
            await self._reply(502, message, request.close)
            return not request.close
        return await self._answer_locally(request, 502, message)

    async def _forward(self, request: RequestHead, plan: _Plan | None) -> bool:
        whole: bytes | None = None  # the request with its body when small enough to hold (and resend)
        if request.framing == NO_BODY:
            whole = request.raw
        for attempt in (1, 2):
            try:
                up_reader, up_writer, reused = await self._connect_upstream()
            except (OSError, TimeoutError) as exc:
                reason = "connection timed out" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
                return await self._upstream_failed(
                    request, f"unreachable: {reason}", body_read=whole is not None
                )
            body_task: asyncio.Task[None] | None = None
            small = request.framing == LENGTH and request.length <= SMALL_BODY
            if whole is None and small and not request.expect_continue:  # expect: body only after 100
                whole = request.raw + await self.reader.readexactly(request.length)
            if whole is not None:
                up_writer.write(whole)
            else:
                up_writer.write(request.raw)
                body_task = self._spawn(copy_body(request.framing, request.length, self.reader, up_writer))
            try:
                response = await self._response_head(request, up_reader, body_task)
            except _ClientGone:
                self.close()
                return False
            except (ConnectionError, OSError, asyncio.IncompleteReadError) as exc:
                nothing = isinstance(exc, asyncio.IncompleteReadError) and not exc.partial
                if (
                    reused
                    and body_task is None
                    and attempt == 1
                    and (nothing or isinstance(exc, ConnectionError))
                ):
                    self._drop_upstream()  # a kept-alive connection the upstream had closed: try a fresh one
                    continue
                if (
                    body_task is not None
                ):  # how much of the client's body was read is unknown: the 502 ends it
                    request.close = True
                return await self._upstream_failed(
                    request, "closed the connection without a response", body_read=True
                )
            except HttpProtocolError as exc:
                if body_task is not None:
                    request.close = True
                return await self._upstream_failed(
                    request, f"sent a malformed response: {exc}", body_read=True
                )
            return await self._respond(request, plan, response, up_reader, up_writer, body_task)
        raise AssertionError("unreachable")

    async def _response_head(
        self, request: RequestHead, up_reader: asyncio.StreamReader, body_task: asyncio.Task[None] | None
    ) -> ResponseHead:
        if body_task is None:
            return await self._read_response_head(request, up_reader)
        head_task = self._spawn(self._read_response_head(request, up_reader))
        done, _ = await asyncio.wait((head_task, body_task), return_when=asyncio.FIRST_COMPLETED)
        if body_task in done and self._client_failed(body_task.exception()):
            head_task.cancel()  # the upstream would wait for the rest of the body forever
            raise _ClientGone
        response: ResponseHead = await head_task
        return response

    def _client_failed(self, error: BaseException | None) -> bool:
        """Whether forwarding the request body failed on the client's side (not the upstream's)."""
        if error is None:
            return False
        if not isinstance(error, ConnectionError | OSError):  # short or malformed body: read errors
            return True
        return self.reader.exception() is not None or self.reader.at_eof()

    async def _read_response_head(
        self, request: RequestHead, up_reader: asyncio.StreamReader
    ) -> ResponseHead:
        while True:
            try:
                raw = await up_reader.readuntil(b"\r\n\r\n")
            except asyncio.LimitOverrunError:
                raise HttpProtocolError("response head larger than 64 KiB") from None
            response = parse_response_head(raw, request.method)
            if 100 <= response.status < 200 and response.status != 101:
                self.writer.write(raw)  # 100 Continue, 103 Early Hints: passed on, the final answer follows
                await self.writer.drain()
                continue
            return response

    async def _respond(
        self,
        request: RequestHead,
        plan: _Plan | None,
        response: ResponseHead,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
        body_task: asyncio.Task[None] | None,
    ) -> bool:
        keep: int | None = None
        if plan is not None:
            await self._sleep(plan.response_delay)
            if plan.truncates:
                keep = min(rule.keep_bytes for rule in plan.truncates)
        self.counters.response(response.status)
        if response.status == 101:
            self.writer.write(response.raw)
            await self._tunnel(up_reader, up_writer)
            return False
        try:
            _, cut = await copy_body(
                response.framing, response.length, up_reader, self.writer, keep, response.raw
            )
        except (asyncio.IncompleteReadError, HttpProtocolError):
            self.counters.upstream_errors += 1  # the upstream's body ended early or was malformed
            self.close()
            return False
        if cut:
            assert plan is not None
            for rule in plan.truncates:
                if rule.keep_bytes == keep:
                    rule.counters.affected += 1
            self.close()  # the client got a short body and the end of the connection
            return False
        if body_task is not None and (not body_task.done() or body_task.exception() is not None):
            self.close()  # the upstream answered before reading the whole request: it cannot be reused
            return False
        if response.close:
            self._drop_upstream()
        if response.close or request.close:
            self.close()
            return False
        return True

    async def _tunnel(self, up_reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter) -> None:
        """After 101 Switching Protocols the connection is no longer HTTP: bytes flow both ways."""

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await reader.read(_PIECE):
                    writer.write(data)
                    await writer.drain()
                if writer.can_write_eof():
                    writer.write_eof()

        await asyncio.gather(pipe(self.reader, up_writer), pipe(up_reader, self.writer))


class _ClientGone(GonogoError):
    """The client went away while its request body was being forwarded."""


class HttpFaultProxy:
    """A running HTTP fault proxy on its own thread and event loop; rules can change while traffic flows."""

    def __init__(
        self, listen: tuple[str, int], upstream: tuple[str, int], seed: int | None, connect_timeout: float
    ) -> None:
        self._listen_host, self._listen_port = listen
        self._upstream_host, self._upstream_port = upstream
        self.upstream = format_address(*upstream)
        self.connect_timeout = connect_timeout
        self._seeds = random.Random(seed)
        self._lock = threading.Lock()
        self._rules: tuple[HttpRule, ...] = ()  # replaced, never mutated: the loop reads it without the lock
        self._history: dict[str, HttpRule] = {}  # every rule ever added, so counters outlive removal
        self._rule_numbers = 0
        self._counters = _Counters()
        self._connections: set[_Connection] = set()
        self._runner = LoopThread("gonogo-http-fault-proxy")
        self._listener: Listener | None = None
        self._stopped = False

    @classmethod
    def start(
        cls,
        listen: str = "127.0.0.1:0",
        upstream: str = "",
        *,
        seed: int | None = None,
        connect_timeout: float = 5.0,
    ) -> HttpFaultProxy:
        """Listen on ``listen`` (port 0 picks a free one) and forward to ``upstream``, both loopback.

        ``seed`` makes the rules' choices reproducible (each rule gets its own seed drawn from it
        unless given one). Raises :class:`AddressError` (a ValueError) for a malformed or non-loopback
        address and OSError if the address cannot be listened on.
        """
        listen_address = parse_loopback_address(listen, "listen address")
        upstream_address = parse_loopback_address(upstream, "upstream")
        if upstream_address[1] == 0:
            raise AddressError(f"upstream {upstream!r} needs a port")
        if isinstance(connect_timeout, bool) or not connect_timeout > 0:
            raise ValueError(f"connect_timeout must be a positive number of seconds, got {connect_timeout!r}")
        proxy = cls(listen_address, upstream_address, seed, connect_timeout)
        proxy._runner.start(proxy._startup)  # OSError (address in use...) as FaultProxy.start raises it
        return proxy

    @property
    def address(self) -> str:
        """``host:port`` the proxy listens on (``[::1]:port`` for IPv6)."""
        return format_address(self._listen_host, self._listen_port)

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    async def _startup(self) -> None:
        self._listener = await Listener.open(self._listen_host, self._listen_port, self._accept)
        self._listen_port = self._listener.port

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._counters.connections += 1
        connection = _Connection(self, reader, writer)
        if self._listener is None:  # stopping
            connection.close()
            return
        self._connections.add(connection)
        await connection.serve()

    def _plan(self, request: RequestHead) -> _Plan | None:
        rules = self._rules
        if not rules:
            return None
        plan = _Plan()
        for rule in rules:  # every rule in scope rolls, so each rule's choices depend only on its own seed
            if not rule.matches(request.method, request.path):
                continue
            rule.counters.seen += 1
            if not rule.roll():
                continue
            rule.counters.selected += 1
            if rule.kind == "status" or rule.kind == "reset":
                if plan.terminal is None:
                    plan.terminal = rule
            elif rule.kind == "delay":
                rule.counters.affected += 1
                seconds = rule.delay_seconds()
                if rule.delay_before == "request":
                    plan.request_delay += seconds
                else:
                    plan.response_delay += seconds
            else:
                plan.truncates.append(rule)
        return plan

    # --- rules, from any thread -------------------------------------------------------------------------

    def next_rule_id(self, kind: str) -> str:
        with self._lock:
            while True:
                self._rule_numbers += 1
                candidate = f"{kind}-{self._rule_numbers}"
                if candidate not in self._history:
                    return candidate

    def next_seed(self) -> int:
        with self._lock:
            return self._seeds.getrandbits(63)

    def add_rule(self, rule: HttpRule) -> HttpRule:
        """Install a rule; it applies to every request whose head is read from now on."""
        with self._lock:
            if self._stopped:
                raise FaultError("the HTTP fault proxy is stopped")
            if any(r.id == rule.id for r in self._rules):
                raise HttpRuleError(f"a rule with id {rule.id!r} is already installed")
            self._history[rule.id] = rule
            self._rules = (*self._rules, rule)
        return rule

    def remove_rule(self, rule_id: str) -> HttpRule | None:
        """Uninstall a rule (requests already past it finish as decided); None if it was not installed."""
        with self._lock:
            found = next((r for r in self._rules if r.id == rule_id), None)
            if found is not None:
                self._rules = tuple(r for r in self._rules if r is not found)
            return found

    def rules(self) -> list[HttpRule]:
        """The installed rules, in the order they were added (which decides between status and reset)."""
        return list(self._rules)

    # --- counters ---------------------------------------------------------------------------------------

    def _on_loop(self, read: Callable[[], _T]) -> _T:
        """Run ``read`` on the proxy's loop, so counters are read between two requests' updates."""
        if self._stopped or threading.current_thread() is self._runner.thread:
            return read()
        future: concurrent.futures.Future[_T] = concurrent.futures.Future()

        def call() -> None:
            try:
                future.set_result(read())
            except BaseException as exc:
                future.set_exception(exc)

        try:
            self._runner.loop.call_soon_threadsafe(call)
        except RuntimeError:  # the loop closed meanwhile
            return read()
        return future.result(timeout=10)

    def rule_counters(self, rule_id: str) -> dict[str, int]:
        """seen / selected / affected of a rule, installed or removed (KeyError if never added)."""
        rule = self._history[rule_id]
        return self._on_loop(rule.counters.to_json)

    def stats(self) -> dict[str, Any]:
        """Totals (connections, requests, responses by status class, upstream errors), per-rule counters."""

        def read() -> dict[str, Any]:
            counters = self._counters
            active = {r.id for r in self._rules}
            with self._lock:  # rules are added from other threads
                history = list(self._history.items())
            return {
                "listen": self.address,
                "upstream": self.upstream,
                "connections": counters.connections,
                "connections_open": len(self._connections),
                "upstream_connections": counters.upstream_connections,
                "requests": counters.requests,
                "responses": dict(counters.responses),
                "upstream_errors": counters.upstream_errors,
                "rules": {
                    rule_id: {
                        **rule.to_json(),
                        "description": rule.describe(),
                        "active": rule_id in active,
                        **rule.counters.to_json(),
                    }
                    for rule_id, rule in history
                },
            }

        return self._on_loop(read)

    # --- lifetime ---------------------------------------------------------------------------------------

    def _close_connections(self) -> None:
        for connection in list(self._connections):
            connection.close()

    async def _shutdown(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.close()
        self._close_connections()
        await cancel_stragglers(after_each_round=self._close_connections)

    def stop(self) -> None:
        """Stop listening and close every connection, client and upstream; idempotent."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            self._rules = ()
        self._runner.stop(self._shutdown)

    def __enter__(self) -> HttpFaultProxy:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class HttpFault(ActiveFault):
    """One rule installed on an :class:`HttpFaultProxy`; removing it leaves its counters as evidence."""

    def __init__(self, proxy: HttpFaultProxy, rule: HttpRule) -> None:
        super().__init__(
            kind=f"http.{rule.kind}",
            description=f"{rule.describe()} (HTTP fault proxy {proxy.address} -> {proxy.upstream})",
        )
        self.proxy = proxy
        self.rule = rule
        self._removed = False
        self._lock = threading.Lock()

    def counters(self) -> dict[str, int]:
        """What the rule did so far: requests seen (in scope), selected (by the roll), affected."""
        return self.proxy.rule_counters(self.rule.id)

    def remove(self) -> None:
        with self._lock:
            if self._removed:
                return
            self._removed = True
        self.proxy.remove_rule(self.rule.id)
        counters = self.counters()
        self.evidence = {
            "rule": self.rule.to_json(),
            "proxy": self.proxy.address,
            "upstream": self.proxy.upstream,
            "applied_at": self.applied_at.isoformat(),
            **counters,
        }
        self.detail = (
            f"{self.rule.describe()}: {counters['affected']} of {counters['seen']} requests affected"
        )


def apply_http_fault(
    proxy: HttpFaultProxy,
    kind: str,
    *,
    toxicity: float = 1.0,
    method: str | Sequence[str] | None = None,
    path: str | None = None,
    status: int = 503,
    body: str | bytes | None = None,
    delay: float = 0.0,
    jitter: float = 0.0,
    delay_before: str = "response",
    keep_bytes: int = 0,
    seed: int | None = None,
    rule_id: str | None = None,
) -> HttpFault:
    """Install one HTTP fault rule on ``proxy`` and return it as an :class:`ActiveFault`.

    ``kind``: ``status`` (answer ``status`` with ``body`` without contacting the upstream),
    ``delay`` (``delay`` ± ``jitter`` seconds before the upstream's response is forwarded, or with
    ``delay_before="request"`` before the request is), ``truncate`` (forward only ``keep_bytes`` of
    the response body, then close the connection) or ``reset`` (close the connection with a TCP
    reset, no answer). ``toxicity`` is the share of the requests in scope it acts on; ``method``
    (one or several) and ``path`` (a prefix of whole segments, or a glob with ``*``) set the scope.
    Raises :class:`HttpRuleError` (a ValueError) for an invalid setting, :class:`FaultError` if
    the proxy is stopped.
    """
    rule = make_rule(
        kind,
        rule_id=rule_id if rule_id is not None else proxy.next_rule_id(kind),
        seed=seed if seed is not None else proxy.next_seed(),
        toxicity=toxicity,
        method=method if method is None or isinstance(method, str) else list(method),
        path=path,
        status=status,
        body=body,
        delay=delay,
        jitter=jitter,
        delay_before=delay_before,
        keep_bytes=keep_bytes,
    )
    proxy.add_rule(rule)
    fault = HttpFault(proxy, rule)
    fault.applied = True
    fault.detail = f"installed: {rule.describe()}"
    return fault
