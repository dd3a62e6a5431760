"""Whether a response is what the step expects, or what a poll waits for."""

from __future__ import annotations

__all__ = ["check_expect", "check_poll", "status_problem"]

from collections.abc import Callable, Mapping
from typing import Any

from gonogo.journey.jsonpath import JsonPath
from gonogo.journey.matchers import Matcher
from gonogo.journey.reply import Reply, ReplyError
from gonogo.journey.settings import Expect, Poll

Render = Callable[[Any], Any]


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
