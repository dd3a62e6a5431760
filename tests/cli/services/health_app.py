"""A small HTTP service with the defects every run should notice by itself, chosen by its
arguments: `crash-after N` (exits with a traceback after N requests), `leak` (keeps 2 MB every
200 ms, a leak no request is needed for), `noisy` (allocates and frees random amounts: flat but
noisy memory), `abrupt` (dies at once on SIGTERM, dropping requests in flight; by default it
answers them first)."""

from __future__ import annotations

import mmap
import os
import random
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, modes = int(sys.argv[1]), sys.argv[2:]
crash_after = int(modes[modes.index("crash-after") + 1]) if "crash-after" in modes else None
kept: list[bytearray] = []
noise: list[mmap.mmap] = []
PAGE = mmap.PAGESIZE
served = 0
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        global served
        with lock:
            served += 1
            crash = crash_after is not None and served > crash_after
        if crash:
            print("Traceback (most recent call last):\nRuntimeError: request budget spent", file=sys.stderr)
            sys.stderr.flush()
            os._exit(3)
        # In flight when the stop signal comes: an abrupt stop then surely drops some.
        time.sleep(0.2 if "abrupt" in modes else 0.02)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


def churn() -> None:
    while True:
        if "leak" in modes:
            kept.append(bytearray(2_000_000))
        if "noisy" in modes:
            # Mapped, touched and unmapped each time: resident memory really goes up and down
            # (malloc would keep the high-water mark, which is no leak but grows on a short run).
            for old in noise:
                old.close()
            size = random.randint(1, 20_000_000)
            noise[:] = [mmap.mmap(-1, size)]
            for offset in range(0, size, PAGE):
                noise[0][offset] = 1
        time.sleep(0.2)


server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
server.daemon_threads = False
server.block_on_close = True  # serve_forever's shutdown waits for requests being answered
if "abrupt" not in modes:
    signal.signal(signal.SIGTERM, lambda signum, frame: threading.Thread(target=server.shutdown).start())
threading.Thread(target=churn, daemon=True).start()
server.serve_forever()
server.server_close()
