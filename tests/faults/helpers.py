"""Helpers for the fault-proxy tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

Api = Callable[..., tuple[int, Any]]


def roundtrip(port: int, data: bytes, timeout: float = 15.0) -> tuple[bytes, float, int]:
    """Send ``data`` through the proxy, half-close, read until EOF: (received, seconds, number of reads)."""
    received = bytearray()
    reads = 0
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        started = time.monotonic()

        def send() -> None:
            try:
                sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        while chunk := sock.recv(65536):
            received += chunk
            reads += 1
        elapsed = time.monotonic() - started
        sender.join(timeout=5)
    return bytes(received), elapsed, reads
