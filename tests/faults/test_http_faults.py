"""The HTTP fault proxy against a real HTTP server on loopback, driven by httpx and raw sockets."""

from __future__ import annotations

import hashlib
import http.server
import json
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gonogo.faults.http import AddressError, HttpFaultProxy, HttpRuleError, apply_http_fault

PATTERN = bytes(range(256)) * 4096  # 1 MiB, repeated to make bodies of any size
PIECE = 64 * 1024


def pattern_bytes(size: int) -> Iterator[bytes]:
    for offset in range(0, size, PIECE):
        start = offset % len(PATTERN)
        yield PATTERN[start : start + min(PIECE, size - offset)]


def pattern_sha256(size: int) -> str:
    digest = hashlib.sha256()
    for piece in pattern_bytes(size):
        digest.update(piece)
    return digest.hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate sends
    server: _Upstream

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _request_body(self) -> Iterator[bytes]:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while size := int(self.rfile.readline().split(b";")[0], 16):
                yield self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b""):  # trailer fields
                pass
            return
        remaining = int(self.headers.get("Content-Length", "0"))
        while remaining:
            data = self.rfile.read(min(remaining, PIECE))
            remaining -= len(data)
            yield data

    def do_HEAD(self) -> None:
        self.server.hits.append(("HEAD", self.path, time.monotonic()))
        self.send_response(200)
        self.send_header("Content-Length", "12345")  # what a GET would return: no body follows
        self.end_headers()

    def do_GET(self) -> None:
        self.server.hits.append(("GET", self.path, time.monotonic()))
        parts = self.path.split("/")
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for word in (b"one", b"two", b"three"):
                self._chunk(word)
            self.wfile.write(b"0\r\nX-Checksum: none\r\n\r\n")
        elif self.path == "/status/204":
            self.send_response(204)
            self.end_headers()
        elif self.path == "/status/304":
            self.send_response(304)
            self.send_header("Content-Length", "100")  # the representation's length: no body with a 304
            self.end_headers()
        elif self.path == "/close":
            self._send(200, b"bye", Connection="close")
            self.close_connection = True
        elif parts[1] == "bytes":  # /bytes/N: N bytes with a Content-Length
            size = int(parts[2])
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            for piece in pattern_bytes(size):
                self.wfile.write(piece)
        elif parts[1] == "stream":  # /stream/N: N bytes in chunks
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in pattern_bytes(int(parts[2])):
                self._chunk(piece)
            self.wfile.write(b"0\r\n\r\n")
        else:
            self._send(200, f"hello {self.path}".encode())

    def do_POST(self) -> None:
        self.server.hits.append(("POST", self.path, time.monotonic()))
        digest = hashlib.sha256()
        size = 0
        for piece in self._request_body():
            digest.update(piece)
            size += len(piece)
        self._send(200, json.dumps({"size": size, "sha256": digest.hexdigest()}).encode())


class _Upstream(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hits: list[tuple[str, str, float]] = []  # (method, path, monotonic arrival time)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def upstream() -> Iterator[_Upstream]:
    server = _Upstream()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _proxy_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "gonogo-http-fault-proxy"]


@pytest.fixture
def proxy(upstream: _Upstream) -> Iterator[HttpFaultProxy]:
    server = HttpFaultProxy.start(listen="127.0.0.1:0", upstream=upstream.address, seed=1234)
    try:
        yield server
    finally:
        server.stop()
        assert not _proxy_threads(), "the proxy's thread outlived stop()"


@pytest.fixture
def client(proxy: HttpFaultProxy) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=proxy.url, timeout=30) as session:
        yield session


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _raw_exchange(address: str, data: bytes, timeout: float = 15.0) -> bytes:
    """Send ``data`` on a fresh connection and read until the proxy closes it."""
    host, _, port = address.rpartition(":")
    received = bytearray()
    with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as sock:
        sock.sendall(data)
        while chunk := sock.recv(65536):
            received += chunk
    return bytes(received)


# --- forwarding ---------------------------------------------------------------------------------------------


def test_forwards_keep_alive_chunked_head_and_bodiless_statuses(
    upstream: _Upstream, proxy: HttpFaultProxy, client: httpx.Client
) -> None:
    for number in range(5):
        assert client.get(f"/hello/{number}").text == f"hello /hello/{number}"
    chunked = client.get("/chunked")
    assert chunked.headers["transfer-encoding"] == "chunked"
    assert chunked.text == "onetwothree"
    head = client.head("/hello")
    assert (head.status_code, head.headers["content-length"], head.content) == (200, "12345", b"")
    assert client.get("/status/204").status_code == 204
    assert client.get("/status/304").status_code == 304
    small = client.post("/upload", content=b"x" * 1000)
    assert small.json()["size"] == 1000
    chunked_upload = client.post("/upload", content=iter([b"abc", b"", b"def"]))
    assert chunked_upload.json() == {"size": 6, "sha256": hashlib.sha256(b"abcdef").hexdigest()}
    assert client.get("/hello/after").text == "hello /hello/after"

    stats = proxy.stats()
    assert stats["connections"] == 1, "every request should have reused the kept-alive client connection"
    assert stats["upstream_connections"] == 1
    assert stats["requests"] == 12
    assert stats["responses"] == {"1xx": 0, "2xx": 11, "3xx": 1, "4xx": 0, "5xx": 0}
    assert stats["upstream_errors"] == 0

    # the upstream ends the connection: the client is told so, and its next request gets a new one
    closing = client.get("/close")
    assert (closing.text, closing.headers["connection"]) == ("bye", "close")
    assert client.get("/hello/again").status_code == 200
    assert proxy.stats()["connections"] == 2
    assert len(upstream.hits) == 14


def test_pipelined_requests_and_expect_100_continue(proxy: HttpFaultProxy) -> None:
    pipelined = _raw_exchange(
        proxy.address,
        b"GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    assert pipelined.count(b"HTTP/1.1 200") == 2
    assert pipelined.index(b"hello /one") < pipelined.index(b"hello /two")

    host, _, port = proxy.address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=15) as sock:
        sock.sendall(
            b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n"
            b"Connection: close\r\n\r\n"
        )
        interim = sock.recv(65536)
        assert interim.startswith(b"HTTP/1.1 100"), interim  # the upstream's 100 Continue, passed on
        sock.sendall(b"hello")
        final = bytearray()
        while chunk := sock.recv(65536):
            final += chunk
    assert b'"size": 5' in final

    garbage = _raw_exchange(proxy.address, b"NONSENSE\r\n\r\n")
    assert garbage.startswith(b"HTTP/1.1 400")
    assert proxy.stats()["responses"]["4xx"] == 1


def test_streams_20_mb_each_way_with_checksums_in_bounded_memory(client: httpx.Client) -> None:
    size = 20 * 1024 * 1024
    expected = pattern_sha256(size)
    tracemalloc.start()
    try:
        chunked = client.post("/upload", content=pattern_bytes(size))
        assert chunked.json() == {"size": size, "sha256": expected}
        with_length = client.post(
            "/upload", content=pattern_bytes(size), headers={"Content-Length": str(size)}
        )
        assert with_length.json() == {"size": size, "sha256": expected}
        for path in (f"/bytes/{size}", f"/stream/{size}"):
            digest = hashlib.sha256()
            received = 0
            with client.stream("GET", path) as response:
                for piece in response.iter_raw():
                    digest.update(piece)
                    received += len(piece)
            assert (received, digest.hexdigest()) == (size, expected), path
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # client, proxy and upstream all in this process: 80 MB went through, a few pieces at a time
    assert peak < 8 * 1024 * 1024, f"peak traced memory {peak / 2**20:.1f} MiB: a body was buffered"


# --- faults -------------------------------------------------------------------------------------------------


def test_status_fault_answers_for_its_share_of_the_matching_requests_only(
    upstream: _Upstream, proxy: HttpFaultProxy, client: httpx.Client
) -> None:
    fault = apply_http_fault(
        proxy, "status", status=503, toxicity=0.3, method="POST", path="/enrich", seed=42
    )
    assert fault.applied
    assert fault.kind == "http.status"
    codes = [client.post("/enrich", content=b"{}").status_code for _ in range(200)]
    # outside the scope: other method, other path, a path that only shares a prefix of characters
    others = [client.get("/enrich").status_code for _ in range(10)]
    others += [client.post(path, content=b"{}").status_code for path in ("/enrichment", "/other") * 5]
    assert client.post("/enrich/deep", content=b"{}").status_code in (200, 503)  # in scope: a sub-path

    # the rule's own Random(seed) decides, one roll per request in scope: exactly reproducible
    rolls = random.Random(42)
    expected = [503 if rolls.random() < 0.3 else 200 for _ in range(200)]
    assert codes == expected
    failed = codes.count(503)
    assert 0.2 * 200 <= failed <= 0.4 * 200
    assert set(others) == {200}
    enrich_hits = [hit for hit in upstream.hits if hit[:2] == ("POST", "/enrich")]
    assert len(enrich_hits) == 200 - failed, "a faulted request must not reach the upstream"

    injected = client.post("/enrich", content=b"{}")
    while injected.status_code != 503:
        injected = client.post("/enrich", content=b"{}")
    assert injected.text.startswith("503 Service Unavailable")
    assert proxy.stats()["connections"] == 1, "an injected answer keeps the connection alive"

    fault.remove()
    counters = {key: fault.evidence[key] for key in ("seen", "selected", "affected")}
    seen = counters["seen"]
    assert counters["affected"] == counters["selected"] >= failed + 1
    assert seen >= 202
    assert fault.detail == f"503 for 30% of POST /enrich: {counters['affected']} of {seen} requests affected"
    assert fault.evidence["rule"]["path"] == "/enrich"
    stats = proxy.stats()
    assert stats["rules"][fault.rule.id]["active"] is False
    assert stats["responses"]["5xx"] == counters["affected"]


def test_delay_fault_adds_its_delay_to_the_median_latency(
    upstream: _Upstream, proxy: HttpFaultProxy, client: httpx.Client
) -> None:
    def median_latency(path: str) -> float:
        latencies = []
        for _ in range(7):
            started = time.perf_counter()
            assert client.get(path).status_code == 200
            latencies.append(time.perf_counter() - started)
        return statistics.median(latencies)

    before = median_latency("/hello")
    with apply_http_fault(proxy, "delay", delay=0.4, jitter=0.05, path="/hello") as fault:
        delayed = median_latency("/hello")
        assert median_latency("/other") < before + 0.2  # out of scope
    after = median_latency("/hello")
    assert 0.3 < delayed - before < 1.5, (before, delayed)
    assert after < before + 0.2, "removing the delay restores the latency"
    assert fault.evidence["affected"] == 7
    assert (
        fault.detail == "0.4 s delay (±0.05 s) before the response for 100% of requests to /hello: "
        "7 of 7 requests affected"
    )

    # before the request: the upstream itself sees the request late
    with apply_http_fault(proxy, "delay", delay=0.3, delay_before="request", method="GET"):
        sent = time.monotonic()
        assert client.get("/late").status_code == 200
    arrival = next(hit[2] for hit in upstream.hits if hit[1] == "/late")
    assert arrival - sent >= 0.25


def test_truncate_fault_gives_the_client_a_short_body(proxy: HttpFaultProxy, client: httpx.Client) -> None:
    fault = apply_http_fault(proxy, "truncate", keep_bytes=1000)
    with pytest.raises(httpx.RemoteProtocolError, match=r"incomplete|without sending complete"):
        client.get("/bytes/100000")
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/stream/100000")  # cut in the middle of a chunk
    assert client.get("/bytes/10").content == PATTERN[:10]  # shorter than the cut: untouched
    raw = _raw_exchange(proxy.address, b"GET /bytes/100000 HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"Content-Length: 100000" in head
    assert body == PATTERN[:1000]
    fault.remove()
    assert (fault.evidence["seen"], fault.evidence["affected"]) == (4, 3)
    assert (
        fault.detail
        == "response body cut after 1000 bytes for 100% of all requests: 3 of 4 requests affected"
    )
    assert len(client.get("/bytes/100000").content) == 100000


def test_reset_fault_closes_the_connection_without_an_answer(
    upstream: _Upstream, proxy: HttpFaultProxy, client: httpx.Client
) -> None:
    with apply_http_fault(proxy, "reset", path="/hello/reset") as fault:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            client.get("/hello/reset")
        assert client.get("/hello/fine").status_code == 200
    assert fault.evidence["affected"] == 1
    assert not any(hit[1] == "/hello/reset" for hit in upstream.hits)


def test_rules_change_while_traffic_flows_and_removal_restores(proxy: HttpFaultProxy) -> None:
    stop = threading.Event()
    seen: list[int] = []
    failures: list[BaseException] = []

    def traffic() -> None:
        try:
            with httpx.Client(base_url=proxy.url, timeout=30) as session:
                while not stop.is_set():
                    seen.append(session.get("/hello").status_code)
        except BaseException as exc:
            failures.append(exc)

    workers = [threading.Thread(target=traffic) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        for round_number in range(20):
            fault = apply_http_fault(proxy, "status", status=500 + round_number % 4, toxicity=0.5)
            time.sleep(0.02)
            fault.remove()
            fault.remove()  # idempotent
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
    assert not failures, failures
    assert proxy.rules() == []
    assert set(seen) <= {200, 500, 501, 502, 503}
    with httpx.Client(base_url=proxy.url, timeout=30) as session:
        assert [session.get("/hello").status_code for _ in range(20)] == [200] * 20
    stats = proxy.stats()
    assert stats["requests"] == sum(stats["responses"].values()) == len(seen) + 20
    assert sum(rule["affected"] for rule in stats["rules"].values()) == stats["responses"]["5xx"]


# --- upstream failures, addresses, settings -----------------------------------------------------------


def test_upstream_unreachable_or_silent_answers_502_and_is_counted() -> None:
    port = _free_port()  # nothing listens there
    with (
        HttpFaultProxy.start(upstream=f"127.0.0.1:{port}") as proxy,
        httpx.Client(base_url=proxy.url) as client,
    ):
        first = client.get("/x")
        assert first.status_code == 502
        assert "unreachable" in first.text
        assert client.post("/y", content=b"body").status_code == 502  # the connection stays usable
        stats = proxy.stats()
        assert (stats["upstream_errors"], stats["responses"]["5xx"], stats["connections"]) == (2, 2, 1)

    silent = socket.create_server(("127.0.0.1", 0))
    silent.settimeout(0.1)
    stop = threading.Event()

    def hang_up() -> None:  # accepts and closes at once
        while not stop.is_set():
            try:
                connection, _ = silent.accept()
            except OSError:
                continue
            connection.close()

    closer = threading.Thread(target=hang_up)
    closer.start()
    try:
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        with HttpFaultProxy.start(upstream=address) as proxy, httpx.Client(base_url=proxy.url) as client:
            response = client.get("/x")
            assert response.status_code == 502
            assert "without a response" in response.text
            assert proxy.stats()["upstream_errors"] == 1
    finally:
        stop.set()
        closer.join(timeout=10)
        silent.close()
    assert not _proxy_threads()


@pytest.mark.parametrize(
    ("listen", "upstream", "message"),
    [
        ("0.0.0.0:0", "127.0.0.1:80", "listen address '0.0.0.0:0' is not a loopback address"),
        ("192.168.1.10:8080", "127.0.0.1:80", "not a loopback address"),
        ("127.0.0.1:0", "10.0.0.1:80", "upstream '10.0.0.1:80' is not a loopback address"),
        ("127.0.0.1:0", "example.com:80", "upstream 'example.com:80' is not a loopback address"),
        ("127.0.0.1:0", "127.0.0.1", "upstream must be a string host:port"),
        ("127.0.0.1:0", "127.0.0.1:0", "needs a port"),
    ],
)
def test_only_loopback_addresses_are_accepted(listen: str, upstream: str, message: str) -> None:
    with pytest.raises(AddressError, match=message):
        HttpFaultProxy.start(listen=listen, upstream=upstream)
    assert not _proxy_threads()


def test_ipv6_loopback(upstream: _Upstream) -> None:
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with HttpFaultProxy.start(listen="[::1]:0", upstream=upstream.address) as proxy:
        assert proxy.address.startswith("[::1]:")
        with httpx.Client(base_url=proxy.url, timeout=30) as client:
            assert client.get("/six").text == "hello /six"


def test_invalid_rules_are_refused_with_clear_messages(proxy: HttpFaultProxy) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"kind": "teapot"}, "unknown HTTP fault kind 'teapot'"),
        ({"kind": "status", "toxicity": 1.5}, "toxicity must be between 0 and 1"),
        ({"kind": "status", "status": 99}, "status must be an HTTP status code"),
        ({"kind": "delay", "delay": -1}, "delay must be between 0 and 3600"),
        ({"kind": "delay", "delay": 1, "delay_before": "later"}, "delay_before must be"),
        ({"kind": "truncate", "keep_bytes": -5}, "keep_bytes must be"),
        ({"kind": "status", "path": "enrich"}, "path must start with /"),
        ({"kind": "status", "method": "PO ST"}, "method must be an HTTP method"),
    ]
    for settings, message in cases:
        with pytest.raises(HttpRuleError, match=message):
            apply_http_fault(proxy, **settings)
    apply_http_fault(proxy, "delay", rule_id="slow")
    with pytest.raises(HttpRuleError, match="'slow' is already installed"):
        apply_http_fault(proxy, "status", rule_id="slow")
    assert [rule.id for rule in proxy.rules()] == ["slow"]


# --- speed --------------------------------------------------------------------------------------------------

_FAST_UPSTREAM = r"""
import asyncio
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nhello, world\n"
class Answer(asyncio.Protocol):
    def connection_made(self, transport): self.transport, self.pending = transport, b""
    def data_received(self, data):
        self.pending += data
        while b"\r\n\r\n" in self.pending:
            self.pending = self.pending.partition(b"\r\n\r\n")[2]
            self.transport.write(ANSWER)
async def main():
    server = await asyncio.get_running_loop().create_server(Answer, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(120)
asyncio.run(main())
"""

_PROXY_PROCESS = r"""
import json, sys
from gonogo.faults.http import HttpFaultProxy, apply_http_fault
with HttpFaultProxy.start(upstream=sys.argv[1]) as proxy:
    apply_http_fault(proxy, "status", toxicity=0.01, path="/never")  # rules are consulted on every request
    print(proxy.address, flush=True)
    sys.stdin.readline()
    print(json.dumps(proxy.stats()), flush=True)
"""


def test_throughput_of_small_requests() -> None:
    """Small keep-alive requests through the proxy, each process on its own: a floor a loaded CI can keep."""
    from gonogo.loadgen.engine import Endpoint, LoadSpec, run_load

    processes: list[subprocess.Popen[str]] = []
    try:
        fast = subprocess.Popen(
            [sys.executable, "-c", _FAST_UPSTREAM],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        processes.append(fast)
        assert fast.stdout is not None
        upstream_port = int(fast.stdout.readline())
        proxy = subprocess.Popen(
            [sys.executable, "-c", _PROXY_PROCESS, f"127.0.0.1:{upstream_port}"],
            stdout=subprocess.PIPE,
            stdin=subprocess.PIPE,
            text=True,
        )
        processes.append(proxy)
        assert proxy.stdout is not None and proxy.stdin is not None
        host, _, port = proxy.stdout.readline().strip().rpartition(":")
        spec = LoadSpec(
            host=host,
            port=int(port),
            endpoints=[Endpoint("small", path="/small")],
            model="closed",
            users=16,
            duration=2.0,
            warmup=0.5,
        )
        result = run_load(spec)
        proxy.stdin.write("\n")
        proxy.stdin.flush()
        stats = json.loads(proxy.stdout.readline())
    finally:
        for process in processes:
            process.kill()
            process.wait(timeout=10)
    print(f"HTTP fault proxy: {result.throughput:.0f} small requests/s with 16 keep-alive connections")
    assert result.total.responses > 0
    assert stats["responses"]["2xx"] >= result.total.responses
    assert stats["upstream_errors"] == 0
    assert result.throughput > 500, f"{result.throughput:.0f} requests/s through the proxy"


def test_stop_ends_requests_held_by_a_delay(upstream: _Upstream) -> None:
    proxy = HttpFaultProxy.start(upstream=upstream.address)
    errors: list[BaseException] = []

    def slow_request() -> None:
        try:
            with httpx.Client(base_url=proxy.url, timeout=60) as session:
                session.get("/held")
        except BaseException as exc:
            errors.append(exc)

    try:
        apply_http_fault(proxy, "delay", delay=60)
        requester = threading.Thread(target=slow_request)
        requester.start()
        deadline = time.monotonic() + 15
        while proxy.stats()["requests"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        started = time.monotonic()
        proxy.stop()
    requester.join(timeout=15)
    assert time.monotonic() - started < 10
    assert not requester.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], httpx.TransportError), errors
    assert not _proxy_threads()
