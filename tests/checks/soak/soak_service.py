"""A tiny HTTP service for the soak tests, run in its own process.

    python soak_service.py PORT MODE

Every request to any path is answered 200 "ok" (HTTP/1.1, keep-alive). What each request
leaves behind depends on MODE:

- `memory`: 50 KB appended to a list that is never emptied (a memory leak);
- `fds`: a file descriptor opened on /dev/null and never closed (an fd leak);
- `noisy`: a random amount of memory (0 to 4 MB, touched) replacing the oldest of the last
  eight, so RSS swings by megabytes without growing (healthy, but noisy).

It exits by itself when the process that started it goes away.
"""

from __future__ import annotations

import os
import random
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODE = sys.argv[2]
kept: list[bytes] = []
recent: deque[bytes] = deque(maxlen=8)
lock = threading.Lock()


def leave_something() -> None:
    with lock:
        if MODE == "memory":
            kept.append(b"m" * 50_000)
        elif MODE == "fds":
            os.open("/dev/null", os.O_RDONLY)
        elif MODE == "noisy":
            recent.append(b"n" * random.randrange(4_000_000))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms wait between them

    def do_GET(self) -> None:
        leave_something()
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


def _exit_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


if __name__ == "__main__":
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    server.serve_forever()
