"""Helpers of the load-engine tests: the real test server in its own process group,
always killed (SIGKILL to the group) however the test ends."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

SERVER = Path(__file__).with_name("engine_server.py")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=10) as reply:
            data: dict[str, Any] = json.loads(reply.read())
            return data

    def pause(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    @contextlib.contextmanager
    def stalled(self, after: float, lasting: float) -> Iterator[None]:
        """The server stops (SIGSTOP) `after` seconds into the block, for `lasting` seconds."""

        def stall() -> None:
            time.sleep(after)
            self.pause()
            try:
                time.sleep(lasting)
            finally:
                self.resume()

        thread = threading.Thread(target=stall)
        thread.start()
        try:
            yield
        finally:
            thread.join()


@contextlib.contextmanager
def engine_test_server() -> Iterator[Server]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(SERVER), str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line == b"ready\n", f"the test server did not start: {line!r}"
        yield Server(port, process)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def nearest_rank(sorted_values: list[int], percentile: float) -> int:
    """The exact nearest-rank percentile of sorted samples."""
    rank = max(1, math.ceil(Fraction(str(percentile)) / 100 * len(sorted_values)))  # exact: no float rounding
    return sorted_values[rank - 1]
