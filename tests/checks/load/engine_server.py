"""A small real HTTP/1.1 server for the load-engine tests: `python engine_server.py PORT`.

asyncio, keep-alive, one process (so a test can SIGSTOP it). Paths:
  /fixed[/N]          200 with a Content-Length body of N bytes (default 100)
  /chunked/N/K        200, chunked body of N bytes in K chunks, with a trailer
  /status/NNN         that status (204 and 304 without a body)
  /delay/MS           200 after MS milliseconds
  /close              200 with Connection: close, then closes
  /until-close        200 without length or chunking: the body ends when the server closes
  /continue           an interim 100 Continue, then 200
  /split              a chunked response written one byte at a time
  /http10             an HTTP/1.0 response (no keep-alive)
  /hang               never answers
  /reset              resets the connection (RST)
  /eof                closes without answering
  /alternate          200, JSON: {"status": "ok", "n": N} for even N (the how-many-th request to
                      this path), {"status": "fail", "n": N} for odd N
  /needle/CHUNK       200, chunked: "<x*CHUNK-3>NEE" then "DLE<y*CHUNK>", the text NEEDLE split across
                      the chunk boundary (one write)
  /trickle-needle     the same body with chunks of 4 bytes, written one byte at a time
  /doc/NAME           200, application/json: the document DOCS[NAME] (as bytes, sent as is)
  /big/N              200, application/json: {"pad": "<N bytes>", "status": "ok"}
  /stats              JSON: {"connections": n, "requests": {path: n}}; not counted itself
Any path answers HEAD with the headers of its GET (Content-Length included) and no body.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import sys
from collections import Counter

STATS: dict[str, object] = {}
CONNECTIONS = 0
REQUESTS: Counter[str] = Counter()

DOCS: dict[str, bytes] = {
    "item": b'{"status": "ok", "id": 3, "price": 2.5, "big": 12345678901234567, "on": true, "off": false,'
    b' "none": null, "name": "caf\\u00e9 \\"q\\"", "emoji": "\\ud83d\\ude00", "odd-key": 1,'
    b' "items": [{"id": 1, "tags": ["a", ["x", "y"]]}, {"id": 3, "tags": []}],'
    b' "empty": {}, "dup": 1, "dup": 2}',
    "malformed": b'{"status": "ok", "id": 3,, }',
    "truncated": b'{"status": "ok", "items": [1, 2',
    "deep": b"[" * 100_000 + b"]" * 100_000,
    "nested-ok": b'{"a": ' * 400 + b"1" + b"}" * 400,
    "trailing": b'{"status": "ok"} {"status": "ok"}',
    "control": b'{"status": "o\x01k"}',
    "bad-escape": b'{"status": "\\q"}',
    "unterminated": b'{"status": "ok',
    "scalar": b"42",
}

REASONS = {200: "OK", 204: "No Content", 304: "Not Modified", 404: "Not Found", 500: "Internal Server Error"}


def response(status: int, body: bytes, extra: str = "", head: bool = False) -> bytes:
    reason = REASONS.get(status, "Status")
    headers = f"HTTP/1.1 {status} {reason}\r\nServer: engine-test\r\n{extra}"
    if status not in (204, 304):
        headers += f"Content-Length: {len(body)}\r\n"
    data = (headers + "\r\n").encode()
    if head or status in (204, 304):
        return data
    return data + body


class Handler(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        global CONNECTIONS
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        CONNECTIONS += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.process()

    def process(self) -> None:
        while not self.busy and self.transport is not None and not self.transport.is_closing():
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            lines = head.split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            self.handle(method, path, body)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def handle(self, method: str, path: str, body: bytes) -> None:
        head = method == "HEAD"
        parts = path.strip("/").split("/")
        if parts[0] != "stats":
            REQUESTS[path] += 1
        name = parts[0]
        if name == "stats":
            data = json.dumps({"connections": CONNECTIONS, "requests": dict(REQUESTS)}).encode()
            self.write(response(200, data, "Content-Type: application/json\r\n"))
        elif name == "fixed":
            size = int(parts[1]) if len(parts) > 1 else 100
            self.write(response(200, b"x" * size, head=head))
        elif name == "echo":
            self.write(response(200, body, head=head))
        elif name == "chunked":
            size, count = int(parts[1]), int(parts[2])
            out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Done\r\n\r\n"
            if not head:
                step = max(1, size // count)
                sent = 0
                while sent < size:
                    n = min(step, size - sent)
                    out += f"{n:x};ext=1\r\n".encode() + b"c" * n + b"\r\n"
                    sent += n
                out += b"0\r\nX-Done: yes\r\n\r\n"
            self.write(out)
        elif name == "alternate":
            number = REQUESTS[path] - 1
            data = json.dumps({"status": "fail" if number % 2 else "ok", "n": number}).encode()
            self.write(response(200, data, "Content-Type: application/json\r\n", head=head))
        elif name in ("needle", "trickle-needle"):
            size = int(parts[1]) if name == "needle" else 8
            body = b"x" * (size - 3) + b"NEEDLE" + b"y" * size
            step = size if name == "needle" else 4
            out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            for start in range(0, len(body), step):
                piece = body[start : start + step]
                out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
            out += b"0\r\n\r\n"
            if name == "needle":
                self.write(out)
            else:
                self.busy = True
                asyncio.get_running_loop().create_task(self.trickle(out))
        elif name == "doc":
            self.write(response(200, DOCS[parts[1]], "Content-Type: application/json\r\n", head=head))
        elif name == "big":
            data = b'{"pad": "' + b"p" * int(parts[1]) + b'", "status": "ok"}'
            self.write(response(200, data, "Content-Type: application/json\r\n", head=head))
        elif name == "status":
            self.write(response(int(parts[1]), b"status body", head=head))
        elif name == "delay":
            self.busy = True
            asyncio.get_running_loop().call_later(int(parts[1]) / 1000, self.delayed, head)
        elif name == "close":
            self.write(response(200, b"bye", "Connection: close\r\n", head=head))
            assert self.transport is not None
            self.transport.close()
        elif name == "until-close":
            self.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + (b"" if head else b"u" * 1000))
            assert self.transport is not None
            self.transport.close()
        elif name == "continue":
            self.write(b"HTTP/1.1 100 Continue\r\n\r\n" + response(200, b"after continue", head=head))
        elif name == "split":
            self.busy = True
            data = (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
            )
            asyncio.get_running_loop().create_task(self.trickle(data))
        elif name == "http10":
            self.write(b"HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\n" + (b"" if head else b"ten!"))
        elif name == "hang":
            self.busy = True
        elif name == "reset":
            assert self.transport is not None
            sock = self.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.transport.abort()
        elif name == "eof":
            assert self.transport is not None
            self.transport.close()
        else:
            self.write(response(404, b"not found", head=head))

    def delayed(self, head: bool) -> None:
        self.busy = False
        self.write(response(200, b"late", head=head))
        self.process()

    async def trickle(self, data: bytes) -> None:
        for i in range(len(data)):
            self.write(data[i : i + 1])
            await asyncio.sleep(0.001)
        self.busy = False
        self.process()


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Handler, "127.0.0.1", port, backlog=1024, reuse_address=True)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
