"""What a load request expects of every response, as the C engine checks it, and the
failing responses it keeps as evidence.

`ResponseExpect` is the engine's form of a request's `expect` (the plan's `LoadExpect`,
in `settings`): expected statuses (none given: any 2xx), headers that must contain a text,
a text the body must contain, and JSON fields (a path → one scalar value, JSON equality).
The engine judges each response while it streams through its parser:

* an unexpected 4xx/5xx status counts as `http_4xx`/`http_5xx` (as without `expect`); any
  other unmet expectation (a 200 where 201 was expected, a header, the body, a JSON field,
  a body over `max_body`, a body that is not JSON) counts as `assertion`; an expected
  4xx/5xx (`status: 404`) is not an error;
* when the status is wrong, nothing else is checked (the rest would only repeat it);
* the first `KEPT_FAILURES` failing responses of each endpoint's measured phase are kept:
  status, which expectation failed and why, and the first `EXCERPT_BYTES` of the body.

Bounds (the engine refuses more): `MAX_HEADERS` headers, `MAX_JSON_FIELDS` fields of at
most `MAX_PATH_STEPS` steps, texts of at most `MAX_TEXT_BYTES`, `max_body` up to
`MAX_BODY_LIMIT`; JSON nested deeper than `MAX_JSON_DEPTH` levels fails the assertion.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_MAX_BODY",
    "EXCERPT_BYTES",
    "KEPT_FAILURES",
    "MAX_BODY_LIMIT",
    "MAX_HEADERS",
    "MAX_JSON_DEPTH",
    "MAX_JSON_FIELDS",
    "MAX_PATH_STEPS",
    "MAX_TEXT_BYTES",
    "AssertionFailure",
    "JsonField",
    "JsonScalar",
    "ResponseExpect",
]

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

JsonScalar = str | int | float | bool | None

# Keep in sync with _engine.c.
KEPT_FAILURES = 5
EXCERPT_BYTES = 256
MAX_TEXT_BYTES = 1024
MAX_HEADERS = 16
MAX_JSON_FIELDS = 32
MAX_PATH_STEPS = 32
MAX_JSON_DEPTH = 512
MAX_BODY_LIMIT = 64 << 20
DEFAULT_MAX_BODY = 1 << 20


@dataclass(frozen=True)
class JsonField:
    path: str  # as the plan wrote it, e.g. $.items[0].id
    steps: tuple[str | int, ...]  # keys and indexes (negative: from the end)
    value: JsonScalar


@dataclass(frozen=True)
class ResponseExpect:
    statuses: tuple[int, ...] = ()  # empty: any 2xx
    headers: tuple[tuple[str, str], ...] = ()  # (name, text its value must contain)
    body_contains: str | None = None
    json: tuple[JsonField, ...] = ()
    max_body: int = DEFAULT_MAX_BODY  # bytes buffered for the JSON fields

    @property
    def reads_body(self) -> bool:
        return self.body_contains is not None or bool(self.json)

    def problems(self, method: str) -> list[str]:
        """Why the engine would refuse this expectation (empty: it takes it)."""
        problems = []
        if any(not 100 <= s <= 599 for s in self.statuses):
            problems.append("expected statuses are between 100 and 599")
        if len(self.headers) > MAX_HEADERS:
            problems.append(f"at most {MAX_HEADERS} headers")
        for name, text in self.headers:
            if len(text.encode()) > MAX_TEXT_BYTES:
                problems.append(f"header {name}: the expected text is over {MAX_TEXT_BYTES} bytes")
        if self.body_contains is not None and not 1 <= len(self.body_contains.encode()) <= MAX_TEXT_BYTES:
            problems.append(f"body_contains must be 1 to {MAX_TEXT_BYTES} bytes")
        if len(self.json) > MAX_JSON_FIELDS:
            problems.append(f"at most {MAX_JSON_FIELDS} JSON fields")
        for field in self.json:
            if len(field.steps) > MAX_PATH_STEPS:
                problems.append(f"{field.path}: at most {MAX_PATH_STEPS} steps")
            if isinstance(field.value, float) and not math.isfinite(field.value):
                problems.append(f"{field.path}: the expected number must be finite")
        if not 1 <= self.max_body <= MAX_BODY_LIMIT:
            problems.append(f"max_body must be 1 byte to {MAX_BODY_LIMIT // (1 << 20)} MiB")
        if method == "HEAD" and self.reads_body:
            problems.append("a HEAD request gets no body: body_contains and json cannot hold")
        return problems

    def engine_form(self) -> tuple[object, ...]:
        """The tuple `_engine.Engine(expects=...)` takes for this request."""
        return (
            self.statuses,
            tuple((name.encode("latin-1"), text.encode()) for name, text in self.headers),
            self.body_contains.encode() if self.body_contains is not None else None,
            tuple((field.steps, field.value) for field in self.json),
            self.max_body,
        )

    def failure(self, endpoint: str, raw: Sequence[object]) -> AssertionFailure:
        """A kept failure from the engine: (status, error kind, what, index, body bytes,
        excerpt, detail or None)."""
        status, error, what, index, body_bytes, excerpt, detail = raw
        assert isinstance(status, int) and isinstance(error, str) and isinstance(what, str)
        assert isinstance(index, int) and isinstance(body_bytes, int) and isinstance(excerpt, bytes)
        found = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else None
        assertion, reason = self._explain(what, index, status, body_bytes, found)
        return AssertionFailure(
            endpoint=endpoint,
            status=status,
            error=error,
            assertion=assertion,
            reason=reason,
            body_bytes=body_bytes,
            body_excerpt=excerpt.decode("utf-8", "replace"),
        )

    def _explain(
        self, what: str, index: int, status: int, body_bytes: int, found: str | None
    ) -> tuple[str, str]:
        if what == "status":
            wanted = (
                "status " + " or ".join(str(s) for s in self.statuses) if self.statuses else "a 2xx status"
            )
            return "status", f"expected {wanted}, got {status}"
        if what in ("header_missing", "header_value"):
            name, text = self.headers[index]
            got = "is missing" if found is None else f"is {_show(found)}"
            return f"headers.{name}", f"header {name} {got}, expected it to contain {_show(text)}"
        if what == "body":
            needle = _show(self.body_contains)
            return "body_contains", f"the body ({body_bytes} bytes) does not contain {needle}"
        if what == "too_large":
            return (
                "max_body",
                f"the body ({body_bytes} bytes) is over max_body ({self.max_body} bytes): its JSON "
                "fields were not checked",
            )
        if what == "json_invalid":
            return "json", f"the body ({body_bytes} bytes) is not JSON: {found}"
        if what in ("extract", "variable"):  # a journey program's step: the engine says what failed
            return what, found or f"{what} failed"
        field = self.json[index]
        expected = _show(field.value)
        if what == "json_missing":
            return f"json.{field.path}", f"{field.path} is missing, expected {expected}"
        shown = found if found is not None and len(found) < 160 else f"{found}…"
        return f"json.{field.path}", f"{field.path} is {shown}, expected {expected}"


@dataclass(frozen=True)
class AssertionFailure:
    """One response that failed its request's `expect`, kept as evidence."""

    endpoint: str
    status: int
    error: str  # the error kind it counted as: assertion, http_4xx or http_5xx
    assertion: str  # which expectation: status, headers.NAME, body_contains, json.PATH, json, max_body
    reason: str
    body_bytes: int
    body_excerpt: str  # the body's first EXCERPT_BYTES, decoded as UTF-8 (invalid bytes replaced)

    def summary(self) -> str:
        return f"{self.endpoint}: {self.reason} (status {self.status})"


def _show(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)
