"""A small order service for docs/observability.md: it needs a stock service and a SQLite file.

    python app.py --port 8080 --stock http://127.0.0.1:8081/ --db orders.db [--lying]

GET /health asks both dependencies every time: 200 {"status": "ok", ...} when the stock service
answers (within 0.5 s) and the database file opens, else 503 {"status": "unavailable", ...} with
what failed. With --lying (a break-on-purpose switch) it answers 200 {"status": "ok"} whatever
happens, as a health check that only proves the process runs.

GET /orders asks both too: 200 {"orders": n}, or 503 when one fails; every failed call to a
dependency is counted in `orders_dependency_errors_total{dependency="stock"|"database"}`.

GET /metrics is the Prometheus text format (prometheus_client): those counters,
`orders_requests_total{route, status}`, and the process collector's `process_*` gauges.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest

REQUESTS = Counter("orders_requests", "requests answered", ["route", "status"])
DEPENDENCY_ERRORS = Counter("orders_dependency_errors", "failed calls to a dependency", ["dependency"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--stock", required=True, help="the stock service's URL")
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--lying", action="store_true", help="/health always answers 200")
    options = parser.parse_args()
    with sqlite3.connect(options.db) as db:
        db.execute("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, item TEXT)")

    def stock() -> str | None:
        """None when the stock service answered, else what went wrong."""
        try:
            with urllib.request.urlopen(options.stock, timeout=0.5) as reply:
                reply.read()
            return None
        except OSError as error:
            DEPENDENCY_ERRORS.labels("stock").inc()
            return f"stock: {error}"

    def orders() -> tuple[int | None, str | None]:
        """The number of orders, or what went wrong. mode=rw: a database file that is gone is an
        error, not a new empty database."""
        try:
            with sqlite3.connect(f"file:{options.db}?mode=rw", uri=True, timeout=0.5) as db:
                return db.execute("SELECT count(*) FROM orders").fetchone()[0], None
        except sqlite3.Error as error:
            DEPENDENCY_ERRORS.labels("database").inc()
            return None, f"database: {error}"

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(
            self, route: str, status: int, body: bytes, content_type: str = "application/json"
        ) -> None:
            REQUESTS.labels(route, str(status)).inc()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/health":
                if options.lying:
                    self._answer("/health", 200, b'{"status": "ok"}')
                    return
                problems = [p for p in (stock(), orders()[1]) if p]
                state = "unavailable" if problems else "ok"
                body = json.dumps({"status": state, "problems": problems}).encode()
                self._answer("/health", 503 if problems else 200, body)
            elif self.path == "/orders":
                count, problem = orders()
                problem = stock() or problem
                if problem:
                    self._answer("/orders", 503, json.dumps({"error": problem}).encode())
                else:
                    self._answer("/orders", 200, json.dumps({"orders": count}).encode())
            elif self.path == "/metrics":
                self._answer("/metrics", 200, generate_latest(), CONTENT_TYPE_LATEST)
            else:
                self._answer("other", 404, b'{"error": "no such route"}')

    server = ThreadingHTTPServer(("127.0.0.1", options.port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
