"""What libfaketime costs a threaded Python HTTP service (the figures of docs/chaos.md).

    .venv/bin/python bench/faketime.py [--clients 8] [--seconds 3] [--runs 3]

Starts a `ThreadingHTTPServer` answering `{"time": time.time()}` on 127.0.0.1 four ways:
without libfaketime, with gonogo's settings (`gonogo.faults.clock.faketime_env`) at +0 and at
+2 h, and with libfaketime's monotonic fix on (`FAKETIME_FORCE_MONOTONIC_FIX=1`, what the
settings were before), and prints the median requests per second of keep-alive clients.
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

from gonogo.faults.clock import faketime_env, faketime_library

SERVER = textwrap.dedent(
    """
    import json, socket, sys, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def setup(self):  # headers and body go out as two writes: without this, Nagle waits
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        def do_GET(self):
            body = json.dumps({"time": time.time()}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *args):
            pass

    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
    """
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def requests_per_second(port: int, clients: int, seconds: float) -> float:
    counts = [0] * clients
    deadline = time.monotonic() + seconds

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while time.monotonic() < deadline:
            connection.request("GET", "/")
            connection.getresponse().read()
            counts[index] += 1
        connection.close()

    threads = [threading.Thread(target=client, args=(index,)) for index in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / seconds


def measure(env: dict[str, str], clients: int, seconds: float) -> float:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], env={**os.environ, **env})
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        return requests_per_second(port, clients, seconds)
    finally:
        server.kill()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    if faketime_library() is None:
        sys.exit("libfaketime is not installed (Debian: apt-get install libfaketime)")
    with tempfile.TemporaryDirectory() as folder:
        control = Path(folder) / "offset"
        gonogo = faketime_env(control)
        setups = {
            "without libfaketime": ({}, None),
            "gonogo's settings, +0": (gonogo, "+0"),
            "gonogo's settings, +2 h": (gonogo, "+7200"),
            "monotonic fix on (before), +0": ({**gonogo, "FAKETIME_FORCE_MONOTONIC_FIX": "1"}, "+0"),
        }
        for name, (env, offset) in setups.items():
            if offset is not None:
                control.write_text(offset)
            runs = [measure(env, options.clients, options.seconds) for _ in range(options.runs)]
            print(f"{name:32} {statistics.median(runs):8,.0f} req/s  ({options.clients} clients)", flush=True)


if __name__ == "__main__":
    main()
