"""A test service in its own process group on a free port of 127.0.0.1, ready when its
`ready_path` (/health) answers 200, killed (with all it started) however the test ends.
Shared by the test folders (tests/ is on the import path through its conftest.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(
    argv: Sequence[str],
    port: int,
    log: Path,
    *,
    what: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    ready_path: str = "/health",
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Start `argv` (listening on `port`) with its output in `log`; yield its base URL and process."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            list(argv), cwd=cwd, env=None if env is None else dict(env),
            start_new_session=True, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                pytest.fail(f"the {what} exited with {process.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"{base_url}{ready_path}", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the {what} did not become ready within 20 s")
            time.sleep(0.05)
        yield base_url, process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
