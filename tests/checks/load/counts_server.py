"""A small service for counting journeys under load: sign-up, a slow log-in that refuses
every second attempt (401), items to create (the first few too slow: they time out), read
and delete, an account to close; `GET /stats` says how often each was asked.

Usage: counts_server.py PORT SLOW_CREATES. It exits by itself after two minutes."""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOGIN_SECONDS = 0.05  # a password hash
SLOW_CREATE_SECONDS = 0.6  # beyond the tests' request_timeout

lock = threading.Lock()
stats: dict[str, int] = {}


def count(name: str) -> int:
    with lock:
        stats[name] = stats.get(name, 0) + 1
        return stats[name]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    slow_creates = 0

    def log_message(self, *args: object) -> None:
        pass

    def reply(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def read_body(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self) -> None:
        if self.path == "/stats":
            with lock:
                self.reply(200, dict(stats))
            return
        count("read")
        self.reply(200, {"id": self.path.rsplit("/", 1)[-1]})

    def do_POST(self) -> None:
        self.read_body()
        if self.path == "/signup":
            self.reply(201, {"id": count("signup")})
        elif self.path == "/login":
            time.sleep(LOGIN_SECONDS)
            attempt = count("login")
            if attempt % 2:
                count("login_refused")
                self.reply(401, {"error": "try again"})
            else:
                self.reply(200, {"token": f"t{attempt}"})
        elif self.path == "/items":
            number = count("create")
            if number <= self.slow_creates:
                time.sleep(SLOW_CREATE_SECONDS)
            self.reply(201, {"id": number})
        else:
            self.reply(404, {"error": "no such path"})

    def do_DELETE(self) -> None:
        count("close" if self.path == "/account" else "delete")
        self.reply(200, {})


def main() -> None:
    Handler.slow_creates = int(sys.argv[2])
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    threading.Timer(120, server.shutdown).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
