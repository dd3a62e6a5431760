"""A small real JSON item store for the integrity tests, run in its own process.

    python items_server.py PORT

POST /items stores a JSON document (409 if its `name` is already stored) and answers 201
{"id": N}. Reading it back: GET /items/N answers the document as written plus its id
(honest); the other read paths answer it reshaped, the way a broken service might:
/wrapped/N ({"data": document}), /renamed/N (`name` renamed `title`), /retyped/N (numbers
as text), /nested/N (`name` moved under `meta`), /dropped/N (`tags` left out).
It exits by itself when the process that started it goes away.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

items: dict[int, dict[str, Any]] = {}
lock = threading.Lock()


def _reshaped(how: str, document: dict[str, Any]) -> Any:
    if how == "wrapped":
        return {"data": document}
    if how == "renamed":
        return {("title" if key == "name" else key): value for key, value in document.items()}
    if how == "retyped":
        return {key: str(value) if isinstance(value, int) else value for key, value in document.items()}
    if how == "nested":
        rest = {key: value for key, value in document.items() if key != "name"}
        return {**rest, "meta": {"name": document["name"]}}
    if how == "dropped":
        return {key: value for key, value in document.items() if key != "tags"}
    return document


class Handler(BaseHTTPRequestHandler):
    def _answer(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        document = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with lock:
            if any(item.get("name") == document.get("name") for item in items.values()):
                self._answer(409, {"error": "already stored"})
                return
            item_id = len(items) + 1
            items[item_id] = document
        self._answer(201, {"id": item_id})

    def do_GET(self) -> None:
        if self.path == "/health":
            self._answer(200, {"ok": True})
            return
        _, how, item_id = self.path.split("/")
        with lock:
            document = items.get(int(item_id))
        if document is None:
            self._answer(404, {"error": "no such item"})
            return
        self._answer(200, _reshaped(how, {"id": int(item_id), **document}))

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _exit_with_parent() -> None:
    parent = os.getppid()
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(0)


if __name__ == "__main__":
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
