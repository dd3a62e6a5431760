"""A load run's description (`LoadSpec`, its `Endpoint`s), its checks, and the request
bytes the engine sends: HTTP/1.1, keep-alive, serialized once and sent byte for byte, to
loopback addresses only. See `engine` for what a run does with it.
"""

from __future__ import annotations

__all__ = [
    "STREAM_KINDS",
    "Endpoint",
    "LoadSpec",
    "LoadSpecError",
    "StreamKind",
    "auto_workers",
    "build_request",
    "loopback_address",
]

import ipaddress
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from gonogo.errors import GonogoError
from gonogo.loadgen.expect import ResponseExpect

# How a streaming response's body divides into events (the engine times each event):
# server-sent events (an event ends at an empty line), each chunk of a chunked body, or each
# non-empty line (newline-delimited JSON).
StreamKind = Literal["sse", "chunks", "lines"]
STREAM_KINDS: tuple[StreamKind, ...] = ("sse", "chunks", "lines")

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_USERS_PER_WORKER = 500
_RATE_PER_WORKER = 25_000.0


class LoadSpecError(GonogoError, ValueError):
    """A load spec that cannot run; the message names the field."""


@dataclass(frozen=True)
class Endpoint:
    """One request of the mix. `weight`: its integer share of the requests."""

    name: str
    method: str = "GET"
    path: str = "/"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    weight: int = 1
    component: str = ""
    expect: ResponseExpect | None = None  # checked on every response (see `expect`)
    stream: StreamKind | None = None  # its response is a stream whose events are timed


@dataclass(frozen=True)
class LoadSpec:
    """What to run. Times in seconds, rates in requests per second."""

    host: str
    port: int
    endpoints: Sequence[Endpoint]
    model: Literal["open", "closed"] = "open"
    rate: float | None = None
    stages: Sequence[tuple[float, float]] = ()
    poisson: bool = False
    seed: int = 0
    users: int = 1
    think_time: float = 0.0
    duration: float | None = None
    max_requests: int | None = None
    warmup: float = 0.0
    max_connections: int = 100
    max_queue: int | None = None  # None: as many arrivals as fit in one timeout at peak rate
    timeout: float = 10.0
    late_threshold: float = 0.010
    workers: int = 1  # 0: auto
    cpus: Sequence[int] | None = None
    host_header: str | None = None  # None: host:port

    def validate(self) -> None:
        """Raise `LoadSpecError` if the spec cannot run."""
        loopback_address(self.host)
        if not 1 <= self.port <= 65535:
            raise LoadSpecError(f"port: {self.port} is not between 1 and 65535")
        if not self.endpoints:
            raise LoadSpecError("endpoints: at least one is required")
        names = [e.name for e in self.endpoints]
        if len(set(names)) != len(names):
            raise LoadSpecError("endpoints: names must be unique")
        for e in self.endpoints:
            build_request(e, self._host_header())
            problems = e.expect.problems(e.method) if e.expect is not None else []
            if problems:
                raise LoadSpecError(f"endpoint {e.name!r}: expect: " + "; ".join(problems))
            if e.stream is not None and e.stream not in STREAM_KINDS:
                raise LoadSpecError(
                    f"endpoint {e.name!r}: stream: {e.stream!r} is not one of {', '.join(STREAM_KINDS)}"
                )
            if e.stream is not None and e.method == "HEAD":
                raise LoadSpecError(f"endpoint {e.name!r}: stream: a HEAD request gets no body to stream")
        if self.model not in ("open", "closed"):
            raise LoadSpecError(f"model: {self.model!r} is not 'open' or 'closed'")
        if self.duration is not None and not (self.duration > 0 and math.isfinite(self.duration)):
            raise LoadSpecError("duration: must be a positive number of seconds")
        if self.max_requests is not None and self.max_requests < 1:
            raise LoadSpecError("max_requests: must be at least 1")
        if not (self.warmup >= 0 and math.isfinite(self.warmup)):
            raise LoadSpecError("warmup: must be >= 0 seconds")
        if not (self.timeout > 0 and math.isfinite(self.timeout)):
            raise LoadSpecError("timeout: must be > 0 seconds")
        if not self.late_threshold >= 0:
            raise LoadSpecError("late_threshold: must be >= 0 seconds")
        if self.workers < 0:
            raise LoadSpecError("workers: must be >= 0 (0: automatic)")
        if self.max_queue is not None and self.max_queue < 0:
            raise LoadSpecError("max_queue: must be >= 0")
        if self.model == "closed":
            if self.users < 1:
                raise LoadSpecError("users: the closed model needs at least 1")
            if not self.think_time >= 0:
                raise LoadSpecError("think_time: must be >= 0 seconds")
            if self.duration is None and self.max_requests is None:
                raise LoadSpecError("duration: a duration or max_requests is required")
            return
        if self.max_connections < 1:
            raise LoadSpecError("max_connections: must be at least 1")
        if self.rate is not None and not (self.rate >= 0 and math.isfinite(self.rate)):
            raise LoadSpecError("rate: must be >= 0 requests per second")
        for i, stage in enumerate(self.stages):
            seconds, target = stage
            if not (seconds > 0 and math.isfinite(seconds)) or not (target >= 0 and math.isfinite(target)):
                raise LoadSpecError(f"stages[{i}]: needs a positive duration and a target rate >= 0")
        if not self.stages:
            if not self.rate:
                raise LoadSpecError("rate: the open model needs a rate > 0 (or stages)")
            if self.duration is None and self.max_requests is None:
                raise LoadSpecError("duration: a duration or max_requests is required")
        elif self._peak_rate() <= 0:
            raise LoadSpecError("stages: every target rate is 0")
        if self.warmup > 0 and self._initial_rate() <= 0:
            raise LoadSpecError("warmup: the initial rate is 0, so the warm-up would send nothing")

    def _host_header(self) -> str:
        if self.host_header is not None:
            return self.host_header
        address = loopback_address(self.host)
        shown = self.host if self.host == "localhost" else f"[{address}]" if ":" in address else address
        return f"{shown}:{self.port}"

    def _initial_rate(self) -> float:
        if self.rate is not None:
            return self.rate
        return self.stages[0][1] if self.stages else 0.0

    def _peak_rate(self) -> float:
        rates = [self.rate or 0.0, *(target for _, target in self.stages)]
        return max(rates)


def loopback_address(host: str) -> str:
    """The loopback address literal to connect to; refuses anything else."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise LoadSpecError(
            f"host: {host!r} is not an IP address literal (load only goes to this machine: "
            "127.0.0.0/8, ::1 or localhost)"
        ) from None
    if not address.is_loopback:
        raise LoadSpecError(
            f"host: refusing to send load to {host}: only loopback addresses (127.0.0.0/8, ::1) are allowed"
        )
    return str(address)


def build_request(endpoint: Endpoint, host_header: str) -> bytes:
    """The request as sent on the wire: HTTP/1.1, keep-alive, Host, the endpoint's headers
    (which may override Host), and Content-Length when there is a body."""
    where = f"endpoint {endpoint.name!r}"
    if not _TOKEN.match(endpoint.method):
        raise LoadSpecError(f"{where}: method {endpoint.method!r} is not an HTTP token")
    if not endpoint.path.startswith("/") or any(c in endpoint.path for c in " \r\n\t\0"):
        raise LoadSpecError(f"{where}: path {endpoint.path!r} must start with / and have no spaces")
    if not isinstance(endpoint.weight, int) or endpoint.weight < 1:
        raise LoadSpecError(f"{where}: weight must be an integer >= 1")
    lines = [f"{endpoint.method} {endpoint.path} HTTP/1.1"]
    given = {name.lower() for name in endpoint.headers}
    if "host" not in given:
        lines.append(f"Host: {host_header}")
    for name, value in endpoint.headers.items():
        if not _TOKEN.match(name):
            raise LoadSpecError(f"{where}: header name {name!r} is not an HTTP token")
        if any(c in value for c in "\r\n\0"):
            raise LoadSpecError(f"{where}: header {name!r} has a line break in its value")
        if name.lower() in ("content-length", "transfer-encoding"):
            raise LoadSpecError(f"{where}: header {name!r} is set by the engine")
        lines.append(f"{name}: {value}")
    body = endpoint.body
    if body is not None or endpoint.method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body or b'')}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + (body or b"")


def auto_workers(spec: LoadSpec) -> int:
    """Worker processes for `workers=0`: one per usable core, no more than the load needs."""
    cores = len(os.sched_getaffinity(0))
    if spec.model == "closed":
        needed = math.ceil(spec.users / _USERS_PER_WORKER)
    else:
        needed = math.ceil(spec._peak_rate() / _RATE_PER_WORKER)
    return max(1, min(cores, needed))
