"""A small real service for the chaos tests: stores items, and has one route that needs a dependency.

    python store.py --port P --data DIR [--dependency URL] [--ack-before-commit] [--no-dependency-timeout]

POST /items stores the body and answers 201 {"id": ID} once it is on disk (fsynced), or, with
--ack-before-commit, answers first and writes a moment later: a kill -9 then loses
acknowledged writes. GET /items/ID returns the body (404 if unknown); a write that fails (disk full)
answers 507. GET /time is the service's own clock. GET /dep calls the
dependency with a 0.5 s timeout and falls back to {"degraded": true}; with
--no-dependency-timeout it waits for the dependency however long it takes.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--dependency")
    parser.add_argument("--ack-before-commit", action="store_true")
    parser.add_argument("--no-dependency-timeout", action="store_true")
    options = parser.parse_args()
    options.data.mkdir(parents=True, exist_ok=True)

    def store(item: str, body: bytes) -> None:
        temporary = options.data / f".{item}.tmp"
        try:
            with open(temporary, "wb") as file:
                file.write(body)
                file.flush()
                os.fsync(file.fileno())
        except OSError:
            temporary.unlink(missing_ok=True)
            raise
        temporary.rename(options.data / item)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/health":
                self._answer(200, b'{"status": "ok"}')
            elif self.path == "/time":  # the service's clock, as it sees it
                self._answer(200, json.dumps({"time": time.time()}).encode())
            elif self.path.startswith("/items/"):
                path = options.data / self.path.removeprefix("/items/")
                if path.name.isalnum() and path.exists():
                    self._answer(200, path.read_bytes(), "application/octet-stream")
                else:
                    self._answer(404, b'{"error": "not found"}')
            elif self.path == "/dep":
                timeout = None if options.no_dependency_timeout else 0.5
                try:
                    with urllib.request.urlopen(options.dependency, timeout=timeout) as reply:
                        reply.read()
                    self._answer(200, b'{"degraded": false}')
                except OSError:
                    self._answer(200, b'{"degraded": true}')
            else:
                self._answer(404, b'{"error": "no such route"}')

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            item = uuid.uuid4().hex  # unique across restarts: a lost write stays lost (404)
            try:
                self._store(item, body)
            except OSError as error:  # e.g. the disk is full: nothing acknowledged
                self._answer(507, json.dumps({"error": error.strerror}).encode())

        def _store(self, item: str, body: bytes) -> None:
            if options.ack_before_commit:
                self._answer(201, json.dumps({"id": item}).encode())
                time.sleep(0.5)  # "commits later": the acknowledgement went out first
                store(item, body)
            else:
                store(item, body)
                self._answer(201, json.dumps({"id": item}).encode())

    server = ThreadingHTTPServer(("127.0.0.1", options.port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
