"""A small real service that acknowledges writes before it commits them, unless told not to.

    python store.py --port P --db FILE [--flush-every SECONDS] [--commit-before-ack]

POST /items stores the body in SQLite and answers 201 {"id": ID}. By default it answers at
once and keeps the write in a buffer that a thread commits every `--flush-every` seconds (2):
a kill -9 loses what the buffer holds. Reads are kept consistent, which is what hides the
loss under mixed traffic: a read (GET /items, GET /items/ID) commits the buffer first, and
while reads keep coming (one in the last 0.2 s) a write is committed before it is answered.
With --commit-before-ack every write is committed before it is answered. GET /health does
not count as a read.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

READERS_ACTIVE = 0.2  # seconds since the last read during which writes are committed at once


class Store:
    def __init__(self, path: Path, *, write_behind: bool) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS items (id TEXT PRIMARY KEY, body BLOB)")
        self._db.commit()
        self._lock = threading.Lock()
        self._buffer: list[tuple[str, bytes]] = []
        self._write_behind = write_behind
        self._last_read = 0.0

    def write(self, item: str, body: bytes) -> None:
        with self._lock:
            self._buffer.append((item, body))
            if not self._write_behind or time.monotonic() - self._last_read < READERS_ACTIVE:
                self._commit()

    def read(self, item: str | None) -> bytes | int | None:
        with self._lock:
            self._last_read = time.monotonic()
            self._commit()
            if item is None:
                (count,) = self._db.execute("SELECT COUNT(*) FROM items").fetchone()
                return int(count)
            row = self._db.execute("SELECT body FROM items WHERE id = ?", (item,)).fetchone()
            return None if row is None else bytes(row[0])

    def flush(self) -> None:
        with self._lock:
            self._commit()

    def _commit(self) -> None:
        if self._buffer:
            self._db.executemany("INSERT INTO items VALUES (?, ?)", self._buffer)
            self._db.commit()
            self._buffer.clear()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--flush-every", type=float, default=2.0)
    parser.add_argument("--commit-before-ack", action="store_true")
    options = parser.parse_args()
    store = Store(options.db, write_behind=not options.commit_before_ack)

    def flusher() -> None:
        while True:
            time.sleep(options.flush_every)
            store.flush()

    threading.Thread(target=flusher, daemon=True).start()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/health":
                self._answer(200, b'{"status": "ok"}')
            elif self.path == "/items":
                self._answer(200, json.dumps({"count": store.read(None)}).encode())
            elif self.path.startswith("/items/"):
                found = store.read(self.path.removeprefix("/items/"))
                if isinstance(found, bytes):
                    self._answer(200, found)
                else:
                    self._answer(404, b'{"error": "not found"}')
            else:
                self._answer(404, b'{"error": "no such route"}')

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            item = uuid.uuid4().hex
            store.write(item, body)
            self._answer(201, json.dumps({"id": item}).encode())

    ThreadingHTTPServer.request_queue_size = 128  # a burst connects all at once (the default is 5)
    server = ThreadingHTTPServer(("127.0.0.1", options.port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
