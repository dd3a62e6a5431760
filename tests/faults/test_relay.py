"""The fault proxy's C relay (links of proxies without toxics) against real sockets on 127.0.0.1:
exact bytes and counters, half-close, resets, backpressure, handing links to the asyncio path when a
toxic arrives, disable and stop, and no file descriptor left behind."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from gonogo.faults import FaultProxy

from .helpers import Api, roundtrip

_BUILT = importlib.util.find_spec("gonogo.faults._relay") is not None
_BUILD_HINT = "the C relay is not built: run .venv/bin/python setup.py build_ext --inplace"


def test_the_relay_is_built() -> None:
    assert _BUILT, _BUILD_HINT


@pytest.fixture(autouse=True)
def _needs_the_relay(request: pytest.FixtureRequest) -> None:
    # one clear failure above when the extension is missing, not one per test
    if not _BUILT and request.node.name != "test_the_relay_is_built":
        pytest.skip(_BUILD_HINT)


def _relayed(faults: FaultProxy) -> int:
    relay = faults.registry.relay
    return 0 if relay is None else relay.relay.links


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@contextlib.contextmanager
def _upstream(handler: Callable[[socket.socket], None]) -> Iterator[int]:
    """A one-connection-at-a-time TCP server on 127.0.0.1 running ``handler`` for each connection."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            conn.settimeout(20)

            def run(conn: socket.socket = conn) -> None:
                with conn, contextlib.suppress(OSError):
                    handler(conn)

            thread = threading.Thread(target=run, daemon=True)
            thread.start()
            threads.append(thread)

    acceptor = threading.Thread(target=serve, daemon=True)
    acceptor.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        acceptor.join(timeout=5)
        server.close()
        for thread in threads:
            thread.join(timeout=10)


def _proxy(api: Api, upstream_port: int, name: str = "relay") -> int:
    status, body = api("POST", "/proxies", {"name": name, "upstream": f"127.0.0.1:{upstream_port}"})
    assert status == 201, body
    return int(body["listen"].rsplit(":", 1)[1])


def _stats(faults: FaultProxy, name: str = "echo") -> dict[str, int]:
    return faults.stats(name)


def test_links_without_toxics_are_relayed_in_c_with_exact_counters(
    faults: FaultProxy, proxy_port: int
) -> None:
    payloads = [os.urandom(size) for size in (1, 1000, 300_000, 3 * 1024 * 1024)]
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=10) as sock:
        sock.sendall(b"hello")
        assert sock.recv(10) == b"hello"
        assert _relayed(faults) == 1
        stats = _stats(faults)
        assert (stats["connections_open"], stats["bytes_upstream"], stats["bytes_downstream"]) == (1, 5, 5)
    for payload in payloads:
        assert roundtrip(proxy_port, payload)[0] == payload
    total = 5 + sum(len(p) for p in payloads)
    assert _wait_for(lambda: _stats(faults)["connections_open"] == 0)
    stats = _stats(faults)
    assert stats["connections_total"] == 1 + len(payloads)
    assert (stats["bytes_upstream"], stats["bytes_downstream"]) == (total, total)
    assert _relayed(faults) == 0


def _echo(conn: socket.socket) -> None:
    while data := conn.recv(65536):
        conn.sendall(data)


def test_many_concurrent_links_are_exact(faults: FaultProxy, api: Api) -> None:
    payloads = [os.urandom(1000 * (i + 1) * (i + 1)) for i in range(24)]
    results: list[bytes] = [b""] * len(payloads)
    # its own echo server: the shared fixture's listen backlog (5) overflows with 24 connections at
    # once on a loaded machine, and the kernel then resets some of them
    with _upstream(_echo) as upstream_port:
        port = _proxy(api, upstream_port)

        def one(index: int) -> None:
            results[index] = roundtrip(port, payloads[index])[0]

        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(payloads))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert results == payloads
    total = sum(len(p) for p in payloads)
    assert _wait_for(lambda: _stats(faults, "relay")["connections_open"] == 0)
    stats = _stats(faults, "relay")
    assert (stats["connections_total"], stats["bytes_upstream"], stats["bytes_downstream"]) == (
        len(payloads),
        total,
        total,
    )


def test_half_close_from_the_server_side(faults: FaultProxy, api: Api) -> None:
    """The server finishes its answer first (FIN); the client still sends, and the server reads it all."""
    received = hashlib.sha256()
    done = threading.Event()

    def greet_then_read(conn: socket.socket) -> None:
        conn.sendall(b"greeting")
        conn.shutdown(socket.SHUT_WR)
        while chunk := conn.recv(65536):
            received.update(chunk)
        done.set()

    payload = os.urandom(500_000)
    with _upstream(greet_then_read) as upstream_port:
        port = _proxy(api, upstream_port)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            data = b""
            while chunk := sock.recv(100):
                data += chunk
            assert data == b"greeting"  # EOF forwarded, the client's direction still open
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            assert done.wait(10)
        assert received.digest() == hashlib.sha256(payload).digest()
    assert _wait_for(lambda: _stats(faults, "relay")["connections_open"] == 0)
    stats = _stats(faults, "relay")
    assert (stats["bytes_upstream"], stats["bytes_downstream"]) == (len(payload), len("greeting"))


def test_a_reset_by_the_server_reaches_the_client(api: Api) -> None:
    def reset(conn: socket.socket) -> None:
        conn.recv(10)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    with _upstream(reset) as upstream_port:
        port = _proxy(api, upstream_port)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"x")
            with pytest.raises(ConnectionResetError):
                while sock.recv(10):
                    pass


def test_a_reset_by_the_client_reaches_the_server(api: Api) -> None:
    outcome: list[str] = []

    def wait_for_the_reset(conn: socket.socket) -> None:
        conn.sendall(b"ready")
        try:
            while conn.recv(10):
                pass
            outcome.append("eof")
        except ConnectionResetError:
            outcome.append("reset")

    with _upstream(wait_for_the_reset) as upstream_port:
        port = _proxy(api, upstream_port)
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        assert sock.recv(10) == b"ready"
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        assert _wait_for(lambda: bool(outcome))
    assert outcome == ["reset"]


def test_backpressure_holds_the_sender_and_loses_nothing(faults: FaultProxy, api: Api) -> None:
    """A server that does not read stops the client (TCP flow control through the relay), and once it
    reads, every byte arrives in order: the relay buffers at most one chunk per direction."""
    may_read = threading.Event()
    received = hashlib.sha256()
    count = [0]

    def slow_reader(conn: socket.socket) -> None:
        may_read.wait(30)
        while chunk := conn.recv(65536):
            received.update(chunk)
            count[0] += len(chunk)

    sent = hashlib.sha256()
    total = 0
    with _upstream(slow_reader) as upstream_port:
        port = _proxy(api, upstream_port)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.settimeout(1.0)
            block = os.urandom(65536)
            with pytest.raises(TimeoutError):
                while total < 512 * 1024 * 1024:  # far more than any kernel buffer
                    count_sent = sock.send(block)  # what send() accepted, exactly
                    sent.update(block[:count_sent])
                    total += count_sent
            assert total < 256 * 1024 * 1024
            sock.settimeout(20)
            may_read.set()
            sock.sendall(block)
            sent.update(block)
            total += len(block)
            sock.shutdown(socket.SHUT_WR)
            assert _wait_for(lambda: count[0] >= total, timeout=30)
    assert count[0] == total
    assert received.digest() == sent.digest()


def test_a_new_toxic_takes_over_relayed_links(faults: FaultProxy, api: Api, proxy_port: int) -> None:
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=10) as sock:
        sock.sendall(b"before")
        assert sock.recv(100) == b"before"
        assert _relayed(faults) == 1
        status, _ = api("POST", "/proxies/echo/toxics", {"type": "latency", "attributes": {"latency": 300}})
        assert status == 200
        assert _relayed(faults) == 0  # handed to the asyncio path, where toxics apply
        started = time.monotonic()
        sock.sendall(b"after")
        data = b""
        while len(data) < 5:
            data += sock.recv(100)
        assert data == b"after"
        assert time.monotonic() - started >= 0.25
    assert _wait_for(lambda: _stats(faults)["connections_open"] == 0)
    stats = faults.stats("echo")
    assert (stats["bytes_upstream"], stats["bytes_downstream"]) == (11, 11)
    assert stats["toxics"] == {"latency_downstream": {"type": "latency", "connections": 1, "applied": 1}}
    # new links of a proxy with a toxic go to the asyncio path; without toxics, to the relay again
    api("DELETE", "/proxies/echo/toxics/latency_downstream")
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=10) as sock:
        sock.sendall(b"again")
        assert sock.recv(100) == b"again"
        assert _relayed(faults) == 1


def test_takeover_in_the_middle_of_a_transfer_loses_nothing(faults: FaultProxy, api: Api) -> None:
    """A toxic arrives while the relay holds unsent data (the server is not reading): the data
    pending in the relay goes first on the asyncio path, then the rest, in order."""
    may_read = threading.Event()
    received = hashlib.sha256()
    count = [0]

    def slow_reader(conn: socket.socket) -> None:
        may_read.wait(30)
        while chunk := conn.recv(65536):
            received.update(chunk)
            count[0] += len(chunk)

    payload = os.urandom(24 * 1024 * 1024)
    with _upstream(slow_reader) as upstream_port:
        port = _proxy(api, upstream_port)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sender = threading.Thread(target=lambda: (sock.sendall(payload), sock.shutdown(socket.SHUT_WR)))
            sender.start()
            time.sleep(0.5)  # the kernel buffers and the relay's chunk fill up
            status, _ = api(
                "POST", "/proxies/relay/toxics", {"type": "latency", "attributes": {"latency": 10}}
            )
            assert status == 200
            may_read.set()
            sender.join(timeout=30)
            assert _wait_for(lambda: count[0] >= len(payload), timeout=30)
    assert received.digest() == hashlib.sha256(payload).digest()
    assert _wait_for(lambda: _stats(faults, "relay")["connections_open"] == 0)
    assert _stats(faults, "relay")["bytes_upstream"] == len(payload)


def test_disable_and_stop_close_relayed_links(echo_port: int) -> None:
    with FaultProxy.start() as faults:
        import urllib.request

        def call(method: str, path: str, body: bytes) -> None:
            request = urllib.request.Request(faults.api_url + path, data=body, method=method)
            urllib.request.urlopen(request, timeout=10).close()

        call("POST", "/proxies", b'{"name": "echo", "upstream": "127.0.0.1:%d"}' % echo_port)
        port = int(faults.registry.proxies["echo"].listen_port)
        first = socket.create_connection(("127.0.0.1", port), timeout=10)
        first.sendall(b"1")
        assert first.recv(10) == b"1"
        call("POST", "/proxies/echo", b'{"enabled": false}')
        with contextlib.suppress(ConnectionResetError):
            assert first.recv(10) == b""
        first.close()
        call("POST", "/proxies/echo", b'{"enabled": true}')
        second = socket.create_connection(("127.0.0.1", port), timeout=10)
        second.sendall(b"2")
        assert second.recv(10) == b"2"
        assert _relayed(faults) == 1
    with contextlib.suppress(ConnectionResetError):
        assert second.recv(10) == b""  # the stop closed it
    second.close()


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_no_file_descriptor_is_left_behind(echo_port: int) -> None:
    before = _open_fds()
    with FaultProxy.start() as faults:
        import json
        import urllib.request

        def call(method: str, path: str, body: object) -> None:
            data = json.dumps(body).encode()
            request = urllib.request.Request(faults.api_url + path, data=data, method=method)
            urllib.request.urlopen(request, timeout=10).close()

        call("POST", "/proxies", {"name": "echo", "upstream": f"127.0.0.1:{echo_port}"})
        port = int(faults.registry.proxies["echo"].listen_port)
        for _ in range(20):  # ended by the client
            assert roundtrip(port, b"x" * 1000)[0] == b"x" * 1000
        kept = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(10)]
        for sock in kept:
            sock.sendall(b"k")
            assert sock.recv(10) == b"k"
        call("POST", "/proxies/echo/toxics", {"type": "latency", "attributes": {"latency": 1}})
        call("DELETE", "/proxies/echo/toxics/latency_downstream", {})
        more = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(10)]
        for sock in more:
            sock.sendall(b"m")
            assert sock.recv(10) == b"m"
    for sock in kept + more:
        sock.close()
    # the echo server's handler threads close their side once the proxy is gone
    assert _wait_for(lambda: _open_fds() <= before, timeout=10), _open_fds() - before
