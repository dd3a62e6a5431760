"""What a load request expects of every response, as the C engine checks it, and the
failing responses it keeps as evidence.

`ResponseExpect` is the engine's form of a request's `expect` (the plan's `LoadExpect`,
in `settings`, and the journeys' `expect` compiled for the C engine): expected statuses
(none given: any 2xx), headers that must contain a text (or, `HOW_EQUALS`, be it, trimmed;
`HOW_ABSENT`, not be sent), a text the body must contain, and JSON fields (a path → one
scalar value, JSON equality; or only that the path leads somewhere, or nowhere).
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
    "HOW_ABSENT",
    "HOW_CONTAINS",
    "HOW_EQUALS",
    "KEPT_FAILURES",
    "MAX_BODY_LIMIT",
    "MAX_HEADERS",
    "MAX_JSON_DEPTH",
    "MAX_JSON_FIELDS",
    "MAX_PATH_STEPS",
    "MAX_TEXT_BYTES",
    "AssertionFailure",
    "HeaderCheck",
    "JsonField",
    "JsonScalar",
    "ResponseExpect",
]

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

JsonScalar = str | int | float | bool | None
HOW_CONTAINS: Final = "contains"
HOW_EQUALS: Final = "equals"
HOW_ABSENT: Final = "absent"
HeaderHow = Literal["contains", "equals", "absent"]
HeaderCheck = tuple[str, str] | tuple[str, str, HeaderHow]  # (name, text[, how]): contains by default
_HEADER_HOW = {HOW_CONTAINS: 0, HOW_EQUALS: 1, HOW_ABSENT: 2}
_JSON_HOW = {"equals": 0, "exists": 1, "absent": 2}
_BE = {"exists": "exist", "absent": "be absent"}

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
    how: Literal["equals", "exists", "absent"] = "equals"  # exists, absent: `value` is not looked at


@dataclass(frozen=True)
class ResponseExpect:
    statuses: tuple[int, ...] = ()  # empty: any 2xx
    headers: tuple[HeaderCheck, ...] = ()  # (name, text its value must contain[, how])
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
        for name, text, *_ in self.headers:
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
            tuple(
                (header[0].encode("latin-1"), header[1].encode(), _HEADER_HOW[header[2]])
                if len(header) == 3
                else (header[0].encode("latin-1"), header[1].encode())
                for header in self.headers
            ),
            self.body_contains.encode() if self.body_contains is not None else None,
            tuple(
                (field.steps, field.value)
                if field.how == "equals"
                else (field.steps, None, _JSON_HOW[field.how])
                for field in self.json
            ),
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
            header = self.headers[index]
            name, text = header[0], header[1]
            how = header[2] if len(header) == 3 else HOW_CONTAINS
            got = "is missing" if found is None else f"is {_show(found)}"
            wanted = {
                HOW_CONTAINS: f"expected it to contain {_show(text)}",
                HOW_EQUALS: f"expected {_show(text)}",
                HOW_ABSENT: "expected it to be absent",
            }[how]
            return f"headers.{name}", f"header {name} {got}, {wanted}"
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
        expected = _show(field.value) if field.how == "equals" else f"it to {_BE[field.how]}"
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
