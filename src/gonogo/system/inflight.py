"""Requests in flight when a service is told to stop: answered, or dropped?

A few threads send requests to the service's readiness URL without pause, each on a new
connection (a keep-alive connection closed by the server between two requests is a race every
client retries, not a request the service dropped). A request is *in flight* at the stop signal
when its connection was accepted before the signal and its answer had not arrived; it is *lost*
when no complete answer ever came (reset, closed, or timed out). A graceful server answers them
all before it exits.
"""

from __future__ import annotations

__all__ = ["InFlight", "InFlightProbe"]

import http.client
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

_CLIENTS = 4
_REFUSED_PAUSE = 0.01  # after a refused connection: the listener is gone, do not spin


@dataclass(frozen=True)
class InFlight:
    in_flight: int  # requests accepted before the stop signal and not yet answered then
    lost: int  # of those, the ones that never got a complete answer
    detail: str  # what happened to the lost ones, for the evidence


@dataclass(frozen=True)
class _Request:
    connected: float  # time.monotonic() when the connection was accepted
    finished: float
    answered: bool
    error: str = ""


class InFlightProbe:
    """`start()` the traffic, `mark_signal()` just before the stop signal, `finish()` once the
    service has exited: the requests that were in flight at the signal."""

    def __init__(self, url: str, *, timeout: float) -> None:
        parts = urlsplit(url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (443 if self._https else 80)
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._timeout = timeout
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._done: list[_Request] = []
        self._signal_at: float | None = None
        self._threads = [
            threading.Thread(target=self._client, name=f"gonogo-inflight-{i}", daemon=True)
            for i in range(_CLIENTS)
        ]

    def start(self, *, warm: float = 0.1) -> None:
        """Start sending, and give the requests `warm` seconds to be flowing."""
        for thread in self._threads:
            thread.start()
        time.sleep(warm)

    def mark_signal(self) -> None:
        self._signal_at = time.monotonic()

    def finish(self) -> InFlight:
        self._stopping.set()
        for thread in self._threads:
            thread.join(self._timeout + 1.0)
        signal_at = self._signal_at
        with self._lock:
            done = list(self._done)
        if signal_at is None:
            return InFlight(0, 0, "no stop signal was sent")
        caught = [r for r in done if r.connected <= signal_at < r.finished]
        lost = [r for r in caught if not r.answered]
        reasons = sorted({r.error for r in lost})
        detail = (
            f"{len(caught)} of gonogo's probe request(s) to the readiness URL in flight at the stop signal, "
            f"{len(lost)} without an answer"
        )
        return InFlight(len(caught), len(lost), detail + (f" ({'; '.join(reasons)})" if reasons else ""))

    def _client(self) -> None:
        while not self._stopping.is_set():
            connection: http.client.HTTPConnection
            if self._https:
                context = ssl._create_unverified_context()
                connection = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self._timeout, context=context
                )
            else:
                connection = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
            try:
                connection.connect()
            except OSError:
                connection.close()
                self._stopping.wait(_REFUSED_PAUSE)
                continue
            connected = time.monotonic()
            answered, error = False, ""
            try:
                connection.request("GET", self._target, headers={"Connection": "close"})
                response = connection.getresponse()
                response.read()
                answered = True
            except (OSError, http.client.HTTPException) as problem:
                error = type(problem).__name__
            finally:
                connection.close()
            with self._lock:
                self._done.append(_Request(connected, time.monotonic(), answered, error))
