"""Fixtures for the fault-proxy tests: a running FaultProxy, a TCP echo upstream, a tiny API client."""

from __future__ import annotations

import json
import secrets
import socket
import socketserver
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from gonogo.faults import FaultProxy
from gonogo.system import Reaper, procfs

from .helpers import Api


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        try:
            while data := sock.recv(65536):
                sock.sendall(data)
        except OSError:
            pass


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    request_queue_size = 128  # the default 5 resets connections when tests open many at once


@pytest.fixture
def echo_port() -> Iterator[int]:
    """A TCP echo server on 127.0.0.1: echoes everything, closes when the client half-closes."""
    server = _EchoServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def faults() -> Iterator[FaultProxy]:
    server = FaultProxy.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def api(faults: FaultProxy) -> Api:
    def call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(faults.api_url + path, data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            return exc.code, json.loads(raw) if raw else None

    return call


@pytest.fixture
def proxy_port(api: Api, echo_port: int) -> int:
    """A proxy named "echo" in front of the echo server; returns its listen port."""
    status, body = api("POST", "/proxies", {"name": "echo", "upstream": f"127.0.0.1:{echo_port}"})
    assert status == 201, body
    return int(body["listen"].rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def reaper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reaper]:
    """A real watchdog for faults that register processes or undo commands; whatever it was
    told about is gone after the module's tests."""
    token = "faults-" + secrets.token_hex(8)
    watchdog = Reaper.start(token, log_path=tmp_path_factory.mktemp("reaper") / "reaper.log")
    try:
        yield watchdog
    finally:
        watchdog.close()
        procfs.kill_until_gone(
            procfs.Selector(env_entries={f"GONOGO_RUN_TOKEN={token}".encode()}),
            deadline=time.monotonic() + 5,
        )
