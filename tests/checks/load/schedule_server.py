"""A server that notes when each request arrives: `python schedule_server.py PORT`.

Every request (a GET without a body) is answered at once with an empty 200 and its arrival
noted as `time.monotonic_ns()` (the C engine's clock, CLOCK_MONOTONIC). `GET /times` answers
the arrivals noted since the last `/times` as a JSON list, and is not noted itself. Prints
"ready" once listening; exits when its stdin closes.
"""

from __future__ import annotations

import json
import selectors
import socket
import sys
import threading
import time

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


def main(port: int) -> None:
    selector = selectors.DefaultSelector()
    listener = socket.create_server(("127.0.0.1", port), backlog=512)
    listener.setblocking(False)
    selector.register(listener, selectors.EVENT_READ)
    buffers: dict[socket.socket, bytes] = {}
    times: list[int] = []
    threading.Thread(target=lambda: (sys.stdin.read(), sys.exit(0)), daemon=True).start()
    print("ready", flush=True)
    while True:
        for key, _ in selector.select(1.0):
            now = time.monotonic_ns()
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if sock is listener:
                conn, _ = listener.accept()
                conn.setblocking(False)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                selector.register(conn, selectors.EVENT_READ)
                buffers[conn] = b""
                continue
            data = sock.recv(65536)
            if not data:
                selector.unregister(sock)
                del buffers[sock]
                sock.close()
                continue
            buffered = buffers[sock] + data
            while b"\r\n\r\n" in buffered:
                head, _, buffered = buffered.partition(b"\r\n\r\n")
                if head.startswith(b"GET /times "):
                    body = json.dumps(times).encode()
                    times.clear()
                    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                else:
                    times.append(now)
                    sock.sendall(OK)
            buffers[sock] = buffered


if __name__ == "__main__":
    main(int(sys.argv[1]))
