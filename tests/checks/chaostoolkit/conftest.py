"""What the `chaostoolkit` check's tests share: a recording context that also fills in
`{port.NAME}`, a real local HTTP service, and the fixture files."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from chaostoolkit_helpers import PortsContext


@pytest.fixture
def ctx(tmp_path: Path) -> PortsContext:
    plan_dir, work_dir = tmp_path / "plan", tmp_path / "work"
    plan_dir.mkdir()
    work_dir.mkdir()
    return PortsContext(plan_dir=plan_dir, work_dir=work_dir, check_name="chaos")


class _Health(http.server.BaseHTTPRequestHandler):
    """GET /health answers 200 "ok"; anything else 404."""

    def do_GET(self) -> None:
        body = b"ok" if self.path == "/health" else b"not found"
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[str]:
    """A real HTTP service on a free loopback port; yields its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="health-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
