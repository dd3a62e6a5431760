"""A tiny HTTP/1.1 server that records exactly the bytes it receives, for the raw-mode tests.

    python wire_server.py PORT LOG_FILE

Every request is appended to LOG_FILE as one JSON line: `head` and `body` (the body as framed
on the wire: chunk sizes included) base64-encoded, and `early` — whether body bytes arrived
before the server answered `Expect: 100-continue` (a client that waits sends none). It answers:

- `GET /metrics`: a Prometheus text exposition;
- `/login`: 200 with a `session` cookie; `/whoami`: the Cookie header it got, as text;
- anything else: 200, `text/plain`, the request's head exactly as received.

Plain sockets, no HTTP library: nothing between the wire and the log normalises anything.
It exits by itself when the process that started it goes away.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path

CONTINUE_DELAY = 0.2  # seconds the server lets pass before its 100 Continue: a body sent early shows

METRICS = b"""# HELP http_requests_total Requests served.
# TYPE http_requests_total counter
http_requests_total{method="GET",code="200"} 1027
http_requests_total{method="POST",code="500"} 3
# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 4.2e+07
up 1
"""

log_lock = threading.Lock()


def read_until(conn: socket.socket, buffer: bytearray, marker: bytes) -> bytes | None:
    while marker not in buffer:
        piece = conn.recv(65536)
        if not piece:
            return None
        buffer += piece
    index = buffer.index(marker) + len(marker)
    taken = bytes(buffer[:index])
    del buffer[:index]
    return taken


def read_exactly(conn: socket.socket, buffer: bytearray, count: int) -> bytes:
    while len(buffer) < count:
        piece = conn.recv(65536)
        if not piece:
            break
        buffer += piece
    taken = bytes(buffer[:count])
    del buffer[:count]
    return taken


def read_chunked(conn: socket.socket, buffer: bytearray) -> bytes:
    framed = b""
    while True:
        line = read_until(conn, buffer, b"\r\n") or b""
        framed += line
        size = int(line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            framed += read_until(conn, buffer, b"\r\n") or b""  # the empty trailer line
            return framed
        framed += read_exactly(conn, buffer, size + 2)


def header(head: bytes, name: bytes) -> bytes | None:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    return None


def answer(conn: socket.socket, status: str, body: bytes, extra: bytes = b"") -> None:
    conn.sendall(
        f"HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n".encode()
        + extra
        + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )


def handle(conn: socket.socket, log: Path) -> None:
    buffer = bytearray()
    head = read_until(conn, buffer, b"\r\n\r\n")
    if head is None:
        return
    early = False
    if (header(head, b"expect") or b"").lower() == b"100-continue":
        time.sleep(CONTINUE_DELAY)
        conn.setblocking(False)
        try:
            early = bool(buffer) or bool(conn.recv(65536, socket.MSG_PEEK))
        except BlockingIOError:
            early = bool(buffer)
        conn.setblocking(True)
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
    if (header(head, b"transfer-encoding") or b"").lower() == b"chunked":
        body = read_chunked(conn, buffer)
    else:
        body = read_exactly(conn, buffer, int(header(head, b"content-length") or b"0"))
    record = {
        "head": base64.b64encode(head).decode(),
        "body": base64.b64encode(body).decode(),
        "early": early,
    }
    with log_lock, log.open("a") as file:
        file.write(json.dumps(record) + "\n")
    target = head.split(b" ")[1]
    if target == b"/metrics":
        answer(conn, "200 OK", METRICS)
    elif target == b"/login":
        answer(conn, "200 OK", b"welcome", b"Set-Cookie: session=s3cr3t-cookie; Path=/\r\n")
    elif target == b"/whoami":
        answer(conn, "200 OK", b"cookie: " + (header(head, b"cookie") or b"none"))
    else:
        answer(conn, "200 OK", head)


def serve(conn: socket.socket, log: Path) -> None:
    try:
        conn.settimeout(10)
        handle(conn, log)
    except OSError:
        pass
    finally:
        conn.close()


def exit_with_parent() -> None:
    parent = os.getppid()
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(0)


def main() -> None:
    port, log = int(sys.argv[1]), Path(sys.argv[2])
    threading.Thread(target=exit_with_parent, daemon=True).start()
    listener = socket.create_server(("127.0.0.1", port))
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn, log), daemon=True).start()


if __name__ == "__main__":
    main()
