"""A small service for counting journeys under load: sign-up, a slow log-in that refuses
every second attempt (401), items to create (the first few too slow: they time out), read
and delete (slowish), an account to close (slow: it counts the closes that came while an
item request was being answered); `GET /stats` says how often each was asked.

Usage: counts_server.py PORT SLOW_CREATES. It exits by itself after two minutes."""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOGIN_SECONDS = 0.05  # a password hash
DELETE_SECONDS = 0.03  # long enough that iterations are in flight when a user is done
CLOSE_SECONDS = 0.1
SLOW_CREATE_SECONDS = 0.6  # beyond the tests' request_timeout

lock = threading.Lock()
stats: dict[str, int] = {}
busy = [0]  # item requests being answered


@contextlib.contextmanager
def item_request() -> Iterator[None]:
    """An item request being answered (its client may have given up: then the reply fails)."""
    with lock:
        busy[0] += 1
    try:
        yield
    finally:
        with lock:
            busy[0] -= 1


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
        with item_request():
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
            with item_request():
                number = count("create")
                if number <= self.slow_creates:
                    time.sleep(SLOW_CREATE_SECONDS)
                self.reply(201, {"id": number})
        else:
            self.reply(404, {"error": "no such path"})

    def do_DELETE(self) -> None:
        if self.path == "/account":
            with lock:
                if busy[0]:  # a teardown while an iteration still runs
                    stats["close_during_iterations"] = stats.get("close_during_iterations", 0) + 1
            count("close")
            time.sleep(CLOSE_SECONDS)
            self.reply(200, {})
            return
        with item_request():
            count("delete")
            time.sleep(DELETE_SECONDS)
            self.reply(200, {})


def main() -> None:
    Handler.slow_creates = int(sys.argv[2])
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    threading.Timer(120, server.shutdown).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
