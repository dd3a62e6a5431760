"""Whether a response is what the step expects, or what a poll waits for.

A failure says what was looked for and what was there instead: the value found at a JSON
path, or for a text expectation the body's lines closest to the missing text, the text
around an unwanted match, or the body's beginning.
"""

from __future__ import annotations

__all__ = ["check_expect", "check_poll", "status_problem", "text_problems"]

import difflib
import re
from collections.abc import Callable, Mapping
from typing import Any

from gonogo.journey.jsonpath import JsonPath
from gonogo.journey.matchers import Matcher, show
from gonogo.journey.reply import MAX_KEPT_BODY, Reply, ReplyError
from gonogo.journey.settings import Expect, Poll, TextExpect
from gonogo.journey.variables import stringify

Render = Callable[[Any], Any]
CONTEXT = 40  # characters shown either side of an unwanted match
BEGINNING = 120  # characters of the body shown when nothing closer can be
CLOSEST_LINES = 3
MAX_COMPARED_LINES = 5000  # difflib is quadratic: a huge body is described by its beginning


def status_problem(statuses: tuple[int, ...] | None, status: int) -> str | None:
    if statuses is None:
        if 200 <= status <= 299:
            return None
        return f"expected a 2xx status, got {status}"
    if status in statuses:
        return None
    wanted = " or ".join(str(s) for s in statuses)
    return f"expected status {wanted}, got {status}"


def _json_problems(fields: Mapping[JsonPath, Matcher], reply: Reply, render: Render) -> list[str]:
    if not fields:
        return []
    try:
        document = reply.json()
    except ReplyError as error:
        return [str(error)]
    problems = []
    for path, matcher in fields.items():
        found, value = path.find(document)
        problem = matcher.check(str(path), found, value, render)
        if problem:
            problems.append(problem)
    return problems


def check_expect(expect: Expect, reply: Reply, render: Render, sent_sha256: str | None) -> list[str]:
    """Every way the response falls short of `expect` (empty: it is as expected).

    `sent_sha256` is the checksum of what `expect.body_sha256_of` names.
    """
    problem = status_problem(expect.status, reply.status)
    if problem:
        return [problem]  # the rest would only repeat that this is the wrong response
    problems = _json_problems(expect.json_fields, reply, render)
    for name, matcher in expect.headers.items():
        found = name in reply.headers
        value = reply.headers.get(name)
        problem = matcher.check(f"header {name}", found, value, lambda v: _as_text(render(v)))
        if problem:
            problems.append(problem)
    if expect.text is not None:
        problems.extend(text_problems(expect.text, reply, render))
    if expect.needs_hash and reply.sha256 is None:
        problems.append(
            f"the body is {reply.size} bytes, more than the {MAX_KEPT_BODY // (1024 * 1024)} MiB gonogo "
            "keeps of a raw-mode response, so its sha256 is not known"
        )
        return problems
    if expect.body_sha256 is not None and reply.sha256 != expect.body_sha256:
        problems.append(
            f"the body's sha256 is {reply.sha256} ({reply.size} bytes), expected {expect.body_sha256}"
        )
    if expect.body_sha256_of is not None and reply.sha256 != sent_sha256:
        problems.append(
            f"the body ({reply.size} bytes, sha256 {reply.sha256}) differs from what step "
            f"{expect.body_sha256_of} sent (sha256 {sent_sha256})"
        )
    return problems


def text_problems(expect: TextExpect, reply: Reply, render: Render) -> list[str]:
    """Every text the body lacks or holds against `expect`, each with what the body has instead."""
    try:
        body = reply.text()
    except ReplyError as error:
        return [str(error)]
    media_type = reply.headers.get("content-type", "no content type").split(";")[0].strip()
    subject = f"the body ({media_type}, {reply.size} bytes)"
    problems = []
    for template in expect.contains:
        wanted = stringify(render(template))
        if wanted not in body:
            problems.append(f"{subject} does not contain {show(wanted)} — {_nearest(body, wanted)}")
    for template in expect.not_contains:
        unwanted = stringify(render(template))
        at = body.find(unwanted)
        if at >= 0:
            problems.append(
                f"{subject} contains {show(unwanted)}, expected it not to — there: "
                f"{_around(body, at, at + len(unwanted))}"
            )
    for pattern in expect.matches:
        if not pattern.search(body):
            problems.append(
                f"{subject} has no match for the regular expression {pattern.pattern!r} — "
                f"{_nearest(body, _literal_part(pattern.pattern))}"
            )
    for pattern in expect.not_matches:
        match = pattern.search(body)
        if match:
            problems.append(
                f"{subject} matches the regular expression {pattern.pattern!r} with {show(match.group(0))}, "
                f"expected no match — there: {_around(body, match.start(), match.end())}"
            )
    return problems


def _around(body: str, start: int, end: int) -> str:
    before = max(0, start - CONTEXT)
    after = min(len(body), end + CONTEXT)
    text = ("…" if before else "") + body[before:after] + ("…" if after < len(body) else "")
    return show(text, limit=2 * CONTEXT + (end - start) + 40)


def _nearest(body: str, wanted: str) -> str:
    """The lines of the body most like `wanted` (a /metrics line with another value or label),
    or the body's beginning when no line is close."""
    if not body:
        return "the body is empty"
    if wanted and "\n" not in wanted.strip("\n"):
        lines = [line for line in body.splitlines()[:MAX_COMPARED_LINES] if line.strip()]
        close = difflib.get_close_matches(wanted.strip("\n"), lines, n=CLOSEST_LINES, cutoff=0.6)
        if close:
            return "closest lines: " + ", ".join(show(line) for line in close)
    beginning = body[:BEGINNING] + ("…" if len(body) > BEGINNING else "")
    return f"it begins: {show(beginning, limit=BEGINNING + 40)}"


def _literal_part(pattern: str) -> str:
    """What of a regular expression reads as plain text, to find the lines that come close."""
    return re.sub(r"\\[dDsSwWbB]|[\^$.*+?()\[\]{}|\\]", "", pattern)


def check_poll(poll: Poll, reply: Reply, render: Render) -> list[str]:
    """Why the poll's condition does not hold yet (empty: it holds)."""
    problem = status_problem(poll.status, reply.status) if poll.status is not None else None
    if problem:
        return [problem]
    return _json_problems(poll.until, reply, render)


def _as_text(value: Any) -> Any:
    """Header values are text: an expected 5 means "5"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return [_as_text(item) for item in value]
    return value
