"""A pre-forking HTTP server, as gunicorn is: a master that keeps N workers alive.

The master binds the socket and forks workers that accept on it; when a worker dies, the
master starts another after `--respawn-delay` seconds (or never, with `--no-respawn`).
Each worker answers GET with its own pid.
"""

from __future__ import annotations

import argparse
import http.server
import os
import signal
import socket
import sys
import time


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"{os.getpid()}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _worker(listener: socket.socket, master: int) -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Handler, bind_and_activate=False)
    server.socket.close()
    server.socket = listener
    server.timeout = 0.5
    while os.getppid() == master:  # a worker whose master died goes too
        server.handle_request()
    os._exit(0)


def _spawn(listener: socket.socket) -> int:
    master = os.getpid()
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        try:
            _worker(listener, master)
        finally:
            os._exit(0)
    return pid


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--respawn-delay", type=float, default=0.2)
    parser.add_argument("--no-respawn", action="store_true")
    args = parser.parse_args()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.port))
    listener.listen(128)
    workers = {_spawn(listener) for _ in range(args.workers)}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"master {os.getpid()} workers {sorted(workers)}", flush=True)
    while True:
        pid, _ = os.wait()
        workers.discard(pid)
        print(f"worker {pid} died", flush=True)
        if not args.no_respawn:
            time.sleep(args.respawn_delay)
            workers.add(_spawn(listener))


if __name__ == "__main__":
    main()
