"""The raw client against a real socket server (in a thread of the test) that records the bytes
it received and answers as each path asks: what goes on the wire is exactly what was given."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gonogo.journey.raw import RawClient, RawResponse


@dataclass
class Received:
    head: bytes
    body: bytes = b""  # as framed on the wire (chunk sizes included)


@dataclass
class RecordingServer:
    """Answers per path: `/echo…` 200 with the request's body length, `/reject` 413 after 64 KiB
    of body then close, `/continue` honours Expect, `/refuse-expect` answers 417 at once,
    `/slow` sleeps, `/chunked` answers chunked, `/big` answers 200 KiB, `/close-delimited`
    answers without framing, `/garbage` is not HTTP."""

    sock: socket.socket
    tls: ssl.SSLContext | None = None
    received: list[Received] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def port(self) -> int:
        port: int = self.sock.getsockname()[1]
        return port

    def serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            conn.settimeout(10)
            self._answer(conn)
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()

    def _answer(self, conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            piece = conn.recv(65536)
            if not piece:
                return
            data += piece
        head, _, rest = data.partition(b"\r\n\r\n")
        record = Received(head + b"\r\n\r\n", rest)
        self.received.append(record)
        path = head.split(b" ")[1]
        lower = head.lower()
        if path == b"/garbage":
            conn.sendall(b"SSH-2.0-OpenSSH\r\n\r\n")
            return
        if path == b"/slow":
            time.sleep(3)
            return
        if path == b"/reject":
            while len(record.body) < 64 * 1024:
                record.body += conn.recv(65536)
            conn.sendall(
                b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 9\r\nConnection: close\r\n\r\ntoo large"
            )
            return  # closed with the rest of the body unread: the client sees a reset
        if path == b"/refuse-expect":
            conn.sendall(b"HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\n\r\n")
            conn.settimeout(0.5)
            with contextlib.suppress(TimeoutError):
                record.body += conn.recv(65536)
            return
        if path == b"/continue" and b"expect: 100-continue" in lower:
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        record.body = self._read_body(conn, lower, record.body)
        body = self._content(path, len(record.body))
        if path == b"/chunked":
            chunks = b"5\r\nhello\r\n6;x=1\r\n world\r\n0\r\n\r\n"
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks)
        elif path == b"/close-delimited":
            conn.sendall(b"HTTP/1.1 200 OK\r\n\r\n" + body)
        else:
            headers = b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n"
            conn.sendall(b"HTTP/1.1 200 OK\r\n%bContent-Length: %d\r\n\r\n%b" % (headers, len(body), body))

    def _read_body(self, conn: socket.socket, lower_head: bytes, body: bytes) -> bytes:
        if b"transfer-encoding: chunked" in lower_head:
            while not body.endswith(b"0\r\n\r\n"):
                body += conn.recv(65536)
        elif b"content-length:" in lower_head:
            length = int(lower_head.split(b"content-length:")[1].split(b"\r\n")[0])
            while len(body) < length:
                piece = conn.recv(65536)
                if not piece:
                    break
                body += piece
        return body

    @staticmethod
    def _content(path: bytes, received: int) -> bytes:
        if path == b"/big":
            return b"x" * 200_000
        return b"received %d" % received


def _start(tls: ssl.SSLContext | None = None) -> Iterator[RecordingServer]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    server = RecordingServer(sock, tls)
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop.set()
        thread.join(5)
        sock.close()


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    yield from _start()


def send(server: RecordingServer, method: str, target: str, **options: object) -> RawResponse:
    client = RawClient(f"http://127.0.0.1:{server.port}", timeout=options.pop("client_timeout", 5.0))  # type: ignore[arg-type]
    return asyncio.run(client.request(method, target, **options))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "target", ["/files/../x", "/a%2f..%2fb", "/static/..\\..\\etc/passwd", "/%252e%252e/"]
)
def test_the_target_goes_on_the_wire_untouched(server: RecordingServer, target: str) -> None:
    response = send(server, "GET", target)
    assert response.status == 200
    assert server.received[0].head.startswith(f"GET {target} HTTP/1.1\r\n".encode())
    assert response.sent_head == server.received[0].head


def test_headers_are_sent_as_given_with_host_and_connection_added(server: RecordingServer) -> None:
    response = send(
        server,
        "GET",
        "/echo",
        headers=[("Authorization", "Bearer "), ("X-Raw", b"\xff\x01"), ("X-Empty", "")],
    )
    head = server.received[0].head
    assert b"\r\nAuthorization: Bearer \r\n" in head
    assert b"\r\nX-Raw: \xff\x01\r\n" in head
    assert b"\r\nX-Empty: \r\n" in head
    assert f"\r\nHost: 127.0.0.1:{server.port}\r\n".encode() in head
    assert b"\r\nConnection: close\r\n" in head
    assert b"Content-Length" not in head  # no body, no length
    assert response.header_values("set-cookie") == ["a=1", "b=2"]
    assert response.header("SET-COOKIE") == "a=1"


def test_given_host_and_connection_are_not_duplicated(server: RecordingServer) -> None:
    send(server, "GET", "/echo", headers=[("Host", "evil.example"), ("Connection", "keep-alive")])
    head = server.received[0].head
    assert head.count(b"Host:") == 1 and b"Host: evil.example" in head
    assert head.count(b"Connection:") == 1


def test_a_bytes_body_gets_its_length(server: RecordingServer) -> None:
    response = send(server, "POST", "/echo", body=b'{"a": 1}')
    assert b"Content-Length: 8\r\n" in server.received[0].head
    assert server.received[0].body == b'{"a": 1}'
    assert (response.status, response.text(), response.body_sent) == (200, "received 8", 8)
    assert response.complete and response.error is None


def test_chunked_framing(server: RecordingServer) -> None:
    response = send(server, "POST", "/echo", body=iter([b"hello", b"", b" world!"]), chunked=True)
    head = server.received[0].head
    assert b"Transfer-Encoding: chunked\r\n" in head and b"Content-Length" not in head
    # The empty piece is skipped: a zero-size chunk would end the body early.
    assert server.received[0].body == b"5\r\nhello\r\n7\r\n world!\r\n0\r\n\r\n"
    assert response.status == 200


def test_a_streamed_body_with_its_length(server: RecordingServer) -> None:
    pieces = (b"a" * 1000 for _ in range(300))
    response = send(server, "PUT", "/echo", body=pieces, content_length=300_000)
    assert b"Content-Length: 300000\r\n" in server.received[0].head
    assert response.text() == "received 300000"


def test_expect_continue_sends_the_body_after_100(server: RecordingServer) -> None:
    response = send(server, "POST", "/continue", body=b"payload", expect_continue=True)
    assert b"Expect: 100-continue\r\n" in server.received[0].head
    assert (response.status, response.text()) == (200, "received 7")  # the 100 was skipped


def test_expect_continue_sends_no_body_when_the_server_answers_first(server: RecordingServer) -> None:
    response = send(server, "POST", "/refuse-expect", body=b"payload", expect_continue=True)
    assert response.status == 417
    assert server.received[0].body == b"" and response.body_sent == 0


def test_a_server_that_answers_413_and_closes_mid_body_gives_413(server: RecordingServer) -> None:
    body = (b"z" * 65536 for _ in range(200))  # 12.5 MiB, never in memory at once
    response = send(server, "POST", "/reject", body=body, content_length=200 * 65536)
    assert response.status == 413
    assert response.text() == "too large"
    assert response.body_sent < 200 * 65536


def test_a_timeout_says_so(server: RecordingServer) -> None:
    response = send(server, "GET", "/slow", timeout=0.3)
    assert response.status is None
    assert response.error == "timeout after 0.3s"


def test_a_chunked_response_is_dechunked(server: RecordingServer) -> None:
    response = send(server, "GET", "/chunked")
    assert (response.body, response.size, response.complete) == (b"hello world", 11, True)


def test_only_keep_bytes_are_kept(server: RecordingServer) -> None:
    client = RawClient(f"http://127.0.0.1:{server.port}", keep=1024)
    response = asyncio.run(client.request("GET", "/big"))
    assert (len(response.body), response.size, response.complete) == (1024, 200_000, False)
    assert response.error is None


def test_a_response_until_close(server: RecordingServer) -> None:
    response = send(server, "GET", "/close-delimited")
    assert (response.status, response.text(), response.complete) == (200, "received 0", True)


def test_not_http(server: RecordingServer) -> None:
    response = send(server, "GET", "/garbage")
    assert response.status is None
    assert response.error is not None and response.error.startswith("not an HTTP response")


def test_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    response = asyncio.run(RawClient(f"http://127.0.0.1:{port}").request("GET", "/"))
    assert response.status is None and response.error == f"connection refused by 127.0.0.1:{port}"


def test_head_has_no_body(server: RecordingServer) -> None:
    response = send(server, "HEAD", "/echo")
    assert response.status == 200 and response.body == b"" and response.error is None


def test_https(tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    for server in _start(context):
        client = RawClient(f"https://127.0.0.1:{server.port}", verify_tls=False)
        response = asyncio.run(client.request("POST", "/files/../x", body=b"abc"))
        assert (response.status, response.text()) == (200, "received 3")
        assert server.received[0].head.startswith(b"POST /files/../x HTTP/1.1")
        verified = asyncio.run(RawClient(f"https://127.0.0.1:{server.port}").request("GET", "/"))
        assert verified.status is None and verified.error is not None and "TLS" in verified.error


def test_curl_reproduction() -> None:
    client = RawClient("http://127.0.0.1:8080")
    line = client.curl(
        "GET", "/files/../x", [("Authorization", "Bearer $TOKEN"), ("X-Empty", "")], expand={"TOKEN"}
    )
    assert line == (
        "curl -sS -i --path-as-is -X GET -H 'Authorization: Bearer '\"$TOKEN\" -H 'X-Empty;' "
        "http://127.0.0.1:8080/files/../x"
    )
    assert "--data-binary @body.bin" in client.curl("POST", "/up", body=b"x" * 5000)
    assert "5,000-byte" in client.curl("POST", "/up", body=b"x" * 5000)
    assert client.curl("POST", "/q", body=b"a=1") == (
        "curl -sS -i --path-as-is -X POST --data-binary a=1 http://127.0.0.1:8080/q"
    )
    assert "--request-target '*'" in client.curl("OPTIONS", "*")
