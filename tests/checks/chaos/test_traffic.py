"""The background load of an experiment (gonogo.experiment.traffic) against a real HTTP server."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from gonogo.experiment.traffic import BackgroundTraffic
from gonogo.loadgen.engine import Endpoint, LoadSpec


@pytest.fixture
def server_port(tmp_path: Path) -> Iterator[int]:
    """A plain HTTP server on a free port; its process group is killed however the test ends."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    process = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(tmp_path)],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, f"the server exited with {process.returncode}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, "the server did not become ready within 20 s"
            time.sleep(0.05)
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def test_the_first_seconds_figures_are_there_as_soon_as_the_engine_reports_it(server_port: int) -> None:
    """An experiment judges its steady state once the load is flowing: that is one reported
    second, not two (each experiment used to wait a second longer than needed)."""
    spec = LoadSpec(
        host="127.0.0.1", port=server_port, endpoints=[Endpoint("index")], rate=20, duration=10, timeout=2
    )
    traffic = BackgroundTraffic(spec)
    traffic.start()
    try:
        deadline = time.monotonic() + 10
        while (first := traffic.latest()) is None:
            assert time.monotonic() < deadline, "the engine reported nothing within 10 s"
            time.sleep(0.01)
        figures = traffic.recent(1.0)
        assert figures is not None, "no figures after the engine's first second"
        assert figures["availability"] == 1.0 and figures["error_rate"] == 0.0
        # the requests of that first second, over the time since the engine started
        assert first.responses >= 10
        assert 10 <= figures["rps"] <= 30, figures
    finally:
        traffic.stop()


def test_the_window_after_a_pause_starts_once_the_requests_sent_during_it_are_answered(
    server_port: int,
) -> None:
    """A server paused for 2 s answers its backlog when it resumes: those answers (2 s late)
    are the fault's, and the window after it starts once they are all in."""
    spec = LoadSpec(
        host="127.0.0.1", port=server_port, endpoints=[Endpoint("index")], rate=20, duration=30, timeout=10
    )
    (server,) = {
        c.pid for c in psutil.net_connections("tcp") if c.laddr and c.laddr.port == server_port and c.pid
    }
    traffic = BackgroundTraffic(spec)
    traffic.start()
    try:
        time.sleep(1.5)
        os.kill(server, signal.SIGSTOP)
        time.sleep(2.0)
        os.kill(server, signal.SIGCONT)
        resumed = time.monotonic()
        time.sleep(4.0)
    finally:
        os.kill(server, signal.SIGCONT)
        traffic.stop()
    ended = time.monotonic()
    naive = traffic.window(resumed, ended)
    assert naive.p95 is not None and naive.p95 >= 1.0, naive  # the backlog, answered after the pause
    answered = traffic.answered_after(resumed)
    assert answered is not None and resumed < answered <= resumed + 2.5
    after = traffic.window(answered, ended)
    assert after.attempted >= 20 and after.p95 is not None and after.p95 < 0.5, after
