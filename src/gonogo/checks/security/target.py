"""What every part of the security check works from: the system's base URL, its OpenAPI
document, the exchanges of the plan's journeys as two users, the credentials used, a shared
budget, and the services' processes and logs.

The check builds one `Target` and hands it to each part in turn; parts only read it, except
the budget, which they draw from before every request they send.
"""

from __future__ import annotations

__all__ = ["ENDS_SESSION", "NOT_REPLAYED_HEADERS", "Budget", "Exchange", "Target", "UserSession"]

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gonogo.checks.security.openapi import OpenApi
from gonogo.faults.targets import ServiceControl

# Headers a part does not copy from a journey's request when it sends its own: framing and
# connection (the raw client sets its own), credentials (each part brings its own), and
# Accept-Encoding, so that bodies come back uncompressed and compare with the journeys' ones.
NOT_REPLAYED_HEADERS = frozenset(
    {
        "host", "authorization", "cookie", "content-length", "transfer-encoding", "connection",
        "keep-alive", "expect", "accept-encoding", "te", "upgrade",
    }
)  # fmt: skip


# A request path that ends the session it is sent with (its credentials are then spent).
ENDS_SESSION = re.compile(r"log-?out|sign-?out|revoke", re.IGNORECASE)


class Budget:
    """At most `requests` requests and `seconds` of wall time for the whole check.

    Parts call `take()` before each request and stop when it says no; `exhausted` then names
    the limit reached, which the check reports (a part cut short is a note, not an error).
    """

    def __init__(self, requests: int, seconds: float) -> None:
        self.limit = requests
        self.seconds = seconds
        self.used = 0
        self._deadline = time.monotonic() + seconds
        self.exhausted: str | None = None

    def take(self, count: int = 1) -> bool:
        if self.exhausted is None:
            if self.used + count > self.limit:
                self.exhausted = f"the request budget ({self.limit}) was reached"
            elif time.monotonic() >= self._deadline:
                self.exhausted = f"the time budget ({self.seconds:g} s) was reached"
        if self.exhausted is not None:
            return False
        self.used += count
        return True

    def remaining(self) -> float:
        """Seconds left."""
        return max(0.0, self._deadline - time.monotonic())


@dataclass(frozen=True)
class UserSession:
    """One user as the journeys made it: the headers that authenticate it (an
    `Authorization`, a `Cookie`), the variables its journey ended with (ids it created, its
    email), and the secrets it used (password, tokens), which must never leak."""

    label: str  # "first user", "second user"
    auth_headers: Mapping[str, str]  # header name (as sent) → value
    variables: Mapping[str, Any]
    secrets: frozenset[str]


@dataclass(frozen=True)
class Exchange:
    """One request of a journey and its response, as sent on the wire by the first user."""

    journey: str
    step: str
    method: str
    url: str  # absolute, as sent
    headers: tuple[tuple[str, str], ...]  # as sent, in order
    body: bytes  # as sent (empty for none), multipart included; the first 1 MiB
    body_complete: bool  # `body` is the whole body (False: too large to replay)
    status: int
    response_headers: tuple[tuple[str, str], ...]
    response_body: bytes  # the first bytes (2 KiB, or all of it when the step read it)
    response_size: int
    response_sha256: str  # of the whole response body: the same data served to another user
    variables: Mapping[str, Any]  # the iteration's variables after the step (ids, token, email)
    operation: str | None = None  # `GET /documents/{id}` when the OpenAPI document has it

    def header(self, name: str) -> str | None:
        lower = name.lower()
        return next((value for key, value in self.headers if key.lower() == lower), None)

    @property
    def authenticated(self) -> bool:
        """Whether the request carried credentials (an Authorization header or a cookie)."""
        return self.header("authorization") is not None or self.header("cookie") is not None


@dataclass
class Target:
    base_url: str  # no trailing slash
    openapi: OpenApi | None
    exchanges: list[Exchange]  # the first user's, in journey order
    users: list[UserSession]  # the first user, then the second (when the journeys could make one)
    budget: Budget
    services: ServiceControl | None  # processes (RSS), history (crashes), for the plan's system
    log_files: Mapping[str, Path]  # service → its log (stdout and stderr)
    request_timeout: float
    progress: Callable[[str], None]
    work_dir: Path
    service_names: tuple[str, ...] = ()  # the plan's services whose processes are watched
    notes: list[str] = field(default_factory=list)

    @property
    def secrets(self) -> frozenset[str]:
        """Every password and token gonogo used, to redact and to look for where they must not be."""
        return frozenset().union(*(user.secrets for user in self.users)) if self.users else frozenset()
