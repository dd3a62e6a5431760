"""A service whose log-in is slow (a password hash taking LOGIN_SECONDS) and refuses the very
first attempt at once; `POST /refuse` refuses every attempt at once; `GET /health` for
readiness, `GET /item` for the iterations.

Usage: slow_login_server.py PORT. It exits by itself after a minute."""

from __future__ import annotations

import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOGIN_SECONDS = 1.4

lock = threading.Lock()
logins = 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def reply(self, status: int, body: bytes = b"{}") -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.reply(200)

    def do_POST(self) -> None:
        global logins
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/refuse":  # a log-in that never succeeds
            self.reply(401)
            return
        with lock:
            logins += 1
            first = logins == 1
        if first:
            self.reply(401)
            return
        time.sleep(LOGIN_SECONDS)
        self.reply(200, b'{"token": "t"}')


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    threading.Timer(60, server.shutdown).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
