"""Helpers for the journeys tests: a free port, stopping the server, the type of `run_check`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Callable

from recording_context import RecordingContext

from gonogo.checks.base import CheckOutcome


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        except ProcessLookupError:
            pass
    if process.stderr:
        process.stderr.close()


Run = Callable[..., tuple[CheckOutcome, RecordingContext]]
