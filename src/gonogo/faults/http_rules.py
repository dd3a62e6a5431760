"""HTTP fault rules: what the HTTP fault proxy does to which requests, and the counters proving it did.

A rule has a kind (``status``, ``delay``, ``truncate``, ``reset``), a scope (methods and a path
prefix or glob) and a toxicity: the fraction of the requests in scope it acts on, drawn per request
from the rule's own ``random.Random(seed)`` so a run is reproducible.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from http import HTTPStatus
from typing import Any, Final, Literal, cast

from gonogo.errors import GonogoError

__all__ = ["HTTP_FAULT_KINDS", "HttpRule", "HttpRuleCounters", "HttpRuleError", "make_rule"]

HTTP_FAULT_KINDS: Final = ("status", "delay", "truncate", "reset")
HttpFaultKind = Literal["status", "delay", "truncate", "reset"]
DelayPoint = Literal["request", "response"]

_GLOB_CHARACTERS = frozenset("*?[")


class HttpRuleError(GonogoError, ValueError):
    """An invalid HTTP fault rule; the message says which setting and why."""


@dataclass
class HttpRuleCounters:
    """``seen``: requests in the rule's scope; ``selected``: those its toxicity roll picked;
    ``affected``: those it actually changed (a truncate rule only affects bodies longer than its cut)."""

    seen: int = 0
    selected: int = 0
    affected: int = 0

    def to_json(self) -> dict[str, int]:
        return {"seen": self.seen, "selected": self.selected, "affected": self.affected}


@dataclass(eq=False)
class HttpRule:
    """One installed fault; build it with :func:`make_rule`, which validates every setting."""

    id: str
    kind: HttpFaultKind
    toxicity: float
    methods: frozenset[str] | None  # upper-case; None: every method
    path: str | None  # a prefix (whole segments) or, with * ? [, a glob on the path; None: every path
    seed: int
    status: int = 503
    body: bytes = b""
    delay: float = 0.0  # seconds
    jitter: float = 0.0  # seconds, uniform in [-jitter, +jitter]
    delay_before: DelayPoint = "response"
    keep_bytes: int = 0
    counters: HttpRuleCounters = field(default_factory=HttpRuleCounters)
    _random: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def matches(self, method: str, path: str) -> bool:
        if self.methods is not None and method.upper() not in self.methods:
            return False
        if self.path is None:
            return True
        if _GLOB_CHARACTERS.intersection(self.path):
            return fnmatchcase(path, self.path)
        prefix = self.path.rstrip("/")
        return path == self.path or path == prefix or path.startswith(prefix + "/")

    def roll(self) -> bool:
        """Whether this request is one of the ``toxicity`` fraction (only called on the proxy's loop)."""
        if self.toxicity >= 1.0:
            return True
        return self._random.random() < self.toxicity

    def delay_seconds(self) -> float:
        if not self.jitter:
            return self.delay
        return max(0.0, self.delay + self._random.uniform(-self.jitter, self.jitter))

    @property
    def scope(self) -> str:
        methods = "|".join(sorted(self.methods)) if self.methods else ""
        if methods and self.path:
            return f"{methods} {self.path}"
        if methods:
            return f"{methods} requests"
        if self.path:
            return f"requests to {self.path}"
        return "all requests"

    def describe(self) -> str:
        """For people: "503 for 30% of POST /enrich"."""
        share = f"{self.toxicity * 100:.3g}% of {self.scope}"
        if self.kind == "status":
            return f"{self.status} for {share}"
        if self.kind == "delay":
            jitter = f" (±{self.jitter:g} s)" if self.jitter else ""
            return f"{self.delay:g} s delay{jitter} before the {self.delay_before} for {share}"
        if self.kind == "truncate":
            return f"response body cut after {self.keep_bytes} bytes for {share}"
        return f"connection reset without an answer for {share}"

    def to_json(self) -> dict[str, Any]:
        settings: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "toxicity": self.toxicity,
            "methods": sorted(self.methods) if self.methods else None,
            "path": self.path,
            "seed": self.seed,
        }
        if self.kind == "status":
            settings["status"] = self.status
        elif self.kind == "delay":
            settings.update(delay=self.delay, jitter=self.jitter, delay_before=self.delay_before)
        elif self.kind == "truncate":
            settings["keep_bytes"] = self.keep_bytes
        return settings


def _number(name: str, value: object, low: float, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise HttpRuleError(f"{name} must be a number, got {value!r}")
    if not low <= value <= high:
        bounds = f"between {low:g} and {high:g}" if high != math.inf else f"at least {low:g}"
        raise HttpRuleError(f"{name} must be {bounds}, got {value!r}")
    return float(value)


def _methods(method: str | list[str] | tuple[str, ...] | None) -> frozenset[str] | None:
    if method is None:
        return None
    names = [method] if isinstance(method, str) else list(method)
    if not names or not all(isinstance(m, str) and m.strip() and m.strip().isalpha() for m in names):
        raise HttpRuleError(f"method must be an HTTP method name or a list of them, got {method!r}")
    return frozenset(m.strip().upper() for m in names)


def make_rule(
    kind: str,
    *,
    rule_id: str,
    seed: int,
    toxicity: float = 1.0,
    method: str | list[str] | tuple[str, ...] | None = None,
    path: str | None = None,
    status: int = 503,
    body: str | bytes | None = None,
    delay: float = 0.0,
    jitter: float = 0.0,
    delay_before: str = "response",
    keep_bytes: int = 0,
) -> HttpRule:
    """A validated rule; raises :class:`HttpRuleError` with a message naming the bad setting."""
    if kind not in HTTP_FAULT_KINDS:
        raise HttpRuleError(f"unknown HTTP fault kind {kind!r} (known: {', '.join(HTTP_FAULT_KINDS)})")
    if not isinstance(rule_id, str) or not rule_id:
        raise HttpRuleError("a rule id must be a non-empty string")
    if path is not None and (not isinstance(path, str) or not path.startswith(("/", "*"))):
        raise HttpRuleError(f"path must start with / (a prefix) or be a glob such as /files/*, got {path!r}")
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
        raise HttpRuleError(f"status must be an HTTP status code from 200 to 599, got {status!r}")
    if kind == "delay":
        _number("delay", delay, 0.0, 3600.0)
        _number("jitter", jitter, 0.0, 3600.0)
    if delay_before not in ("request", "response"):
        raise HttpRuleError(f"delay_before must be 'request' or 'response', got {delay_before!r}")
    if kind == "truncate" and (
        isinstance(keep_bytes, bool) or not isinstance(keep_bytes, int) or keep_bytes < 0
    ):
        raise HttpRuleError(f"keep_bytes must be a whole number of bytes, at least 0, got {keep_bytes!r}")
    if body is None:
        phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Injected fault"
        body_bytes = f"{status} {phrase} (injected by the gonogo HTTP fault proxy)\n".encode()
    else:
        body_bytes = body.encode() if isinstance(body, str) else bytes(body)
    return HttpRule(
        id=rule_id,
        kind=cast(HttpFaultKind, kind),
        toxicity=_number("toxicity", toxicity, 0.0, 1.0),
        methods=_methods(method),
        path=path,
        seed=seed,
        status=status,
        body=body_bytes,
        delay=float(delay),
        jitter=float(jitter),
        delay_before=cast(DelayPoint, delay_before),
        keep_bytes=keep_bytes,
    )
