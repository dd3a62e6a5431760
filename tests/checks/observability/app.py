"""A small service that needs a dependency, for the observability tests.

    python app.py --port P --dependency URL [--lying]

GET /health asks the dependency (0.5 s timeout) and answers 200 {"status": "ok"}, or 503
{"status": "unavailable"} when it cannot reach it; with --lying it answers 200 whatever happens.
GET /work asks the dependency too: 200, or 502 counted in `app_dependency_errors_total`.
GET /metrics is the Prometheus text format (prometheus_client): `app_requests_total{route,
status}`, `app_dependency_errors_total` and the process collector's `process_*` gauges.
"""

from __future__ import annotations

import argparse
import json
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest

REQUESTS = Counter("app_requests", "requests answered", ["route", "status"])
DEPENDENCY_ERRORS = Counter("app_dependency_errors", "calls to the dependency that failed")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dependency", required=True)
    parser.add_argument("--lying", action="store_true")
    options = parser.parse_args()

    def dependency_up() -> bool:
        try:
            with urllib.request.urlopen(options.dependency, timeout=0.5) as reply:
                reply.read()
            return True
        except OSError:
            DEPENDENCY_ERRORS.inc()
            return False

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
                healthy = options.lying or dependency_up()
                status, state = (200, "ok") if healthy else (503, "unavailable")
                self._answer("/health", status, json.dumps({"status": state}).encode())
            elif self.path == "/work":
                if dependency_up():
                    self._answer("/work", 200, b'{"done": true}')
                else:
                    self._answer("/work", 502, b'{"error": "dependency unavailable"}')
            elif self.path == "/metrics":
                self._answer("/metrics", 200, generate_latest(), CONTENT_TYPE_LATEST)
            else:
                self._answer("other", 404, b'{"error": "no such route"}')

    server = ThreadingHTTPServer(("127.0.0.1", options.port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
