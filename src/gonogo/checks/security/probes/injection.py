"""Injection: SQL, shell command and template payloads (and a non-ASCII value) in every string
value the journeys sent and the OpenAPI document declares, each judged against two harmless
baselines: the request as the journey sent it, and the value replaced by a harmless one (the
document's example, default or first enum value; a small number for a number; else a word
that matches nothing).

A baseline answered with a 5xx leaves the value unprobed (nothing to compare with). It is a
finding itself (`input.server-error`, high) when the request is a journey's, whose values are
known to be good; for a request made up from the document it is a note.

What makes a finding, per (operation, parameter):

- a 5xx: high, once per (operation, parameter): `input.server-error` when a plain word in the
  value's place gives one too (the value's shape, not its special characters, is the cause: a
  number expected) or for the non-ASCII value, else `injection.server-error`; critical
  (`injection.sql-error`) when its body shows a database error the baselines did not;
- a tautology (`' OR '1'='1`) answered with more rows than both baselines, or with the second
  user's values, critical (`injection.sql-tautology`);
- the output of `id` (`uid=…(…)`), critical (`injection.command`);
- a template expression evaluated (`{{1337*1337}}` giving 1787569, a number no baseline holds:
  `7*7` gives 49, which a timestamp or an id holds by chance), critical (`injection.template`);
- a delay payload (`pg_sleep`, a heavy SQLite query, `sleep`) answered slower than the slower
  baseline by at least `timing`, twice, high (`injection.timing`);
- no response in time to a payload that asks for no delay, high (`input.hang`).

Tautologies go only in GET and HEAD requests (in an UPDATE or a DELETE they would reach every
row), and DELETE requests get no payload at all.
"""

from __future__ import annotations

__all__ = ["Payload", "payloads", "run_injection"]

import json
import math
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from gonogo.checks.security.findings import Category, Severity
from gonogo.checks.security.probes._session import FIX_SERVER_ERROR, ProbeSession, Sent, outcome
from gonogo.checks.security.probes.surface import Endpoint, Point, example_of
from gonogo.journey.raw import RawResponse
from gonogo.journey.redact import is_secret_name

Family = Literal["sql", "sql-time", "command", "command-time", "template", "input"]
SAFE_METHODS = frozenset({"GET", "HEAD"})
PLAIN_WORD = "a plain word"
SQLITE_HEAVY_ROWS = 5_000_000  # rows a recursive CTE counts: seconds of work, no memory
TEMPLATE_PRODUCT = str(1337 * 1337)
COMMAND_OUTPUT = re.compile(r"uid=\d+\([^)]*\)")
DATABASE_ERRORS = re.compile(
    r"(?i)sqlite3?\.\w*Error|psycopg|SQLSTATE|syntax error|unterminated quoted|unrecognized token"
    r"|You have an error in your SQL syntax|ORA-\d{5}|SQLException|OperationalError|ProgrammingError"
    r"|pg_query\(|mysql_fetch|quoted string not properly terminated"
)
FIX_SQL = (
    "pass values to the database as bound parameters (placeholders), never by building the SQL text "
    "from them; validate the value's type and shape first"
)
FIX_COMMAND = (
    "do not run a shell with the request's values: call the program with an argument list (no shell), "
    "or avoid the external command altogether; validate the value against what it may be"
)
FIX_TEMPLATE = (
    "never render a request's value as a template: pass it to a fixed template as data (autoescaped), "
    "and keep user input out of template sources"
)
FIX_TIMING = (
    "the delay follows the payload, so the value reaches an interpreter (SQL, shell): bind it as a "
    "parameter, or pass it without a shell"
)
FIX_HANG = "bound the work one request can cause (validate the value, set statement and request timeouts)"


@dataclass(frozen=True)
class Payload:
    family: Family
    text: str
    tautology: bool = False
    before_value: bool = False  # put before the journey's value rather than in its place

    def value(self, original: str) -> str:
        return self.text + original if self.before_value else self.text


def payloads(timing: float) -> list[Payload]:
    """The payloads, those that reveal most by their response first, delays last."""
    sleep = math.ceil(timing) + 1
    cte = (
        f"' OR (WITH RECURSIVE gonogo(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM gonogo "
        f"LIMIT {SQLITE_HEAVY_ROWS}) SELECT count(*) FROM gonogo) < 0 OR 'a'='b"
    )
    return [
        Payload("sql", "'"),
        Payload("sql", "' OR '1'='1", tautology=True),
        Payload("sql", "1' OR 1=1--", tautology=True),
        Payload("sql", "1 OR 1=1", tautology=True),
        Payload("sql", "' UNION SELECT NULL--"),
        Payload("command", ";id"),
        Payload("command", "$(id)"),
        Payload("command", "|id"),
        Payload("command", "`id`"),
        Payload("template", "{{1337*1337}}"),
        Payload("template", "${1337*1337}"),
        Payload("template", "<%= 1337*1337 %>"),
        Payload("template", "#{1337*1337}"),
        # before the value, so that it keeps its shape (an email stays an email)
        Payload("input", "Zoë-Ångström-名前-🙂", before_value=True),
        Payload("sql-time", f"' OR (SELECT 1 FROM pg_sleep({sleep})) = 0 OR 'a'='b"),
        Payload("sql-time", f"'; SELECT pg_sleep({sleep})--"),
        Payload("sql-time", f"' OR (SELECT 1 FROM (SELECT SLEEP({sleep})) gonogo) = 0 OR 'a'='b"),
        Payload("sql-time", cte),
        Payload("command-time", f"|sleep {sleep}"),
        Payload("command-time", f";sleep {sleep}"),
        Payload("command-time", f"$(sleep {sleep})"),
    ]


@dataclass
class _Baseline:
    original: RawResponse
    harmless: RawResponse
    harmless_source: str = ""

    @property
    def elapsed(self) -> float:
        return max(self.original.elapsed, self.harmless.elapsed)

    def holds(self, pattern: re.Pattern[str] | str) -> bool:
        texts = (self.original.text(), self.harmless.text())
        if isinstance(pattern, str):
            return any(pattern in text for text in texts)
        return any(pattern.search(text) for text in texts)


@dataclass
class _PointRun:
    session: ProbeSession
    point: Point
    baseline: _Baseline
    others: list[str]  # the second user's values
    done: set[Family] = field(default_factory=set)
    # whether a plain word in the value's place gets a 5xx too (None: not known yet), and that request
    plain_word_fails: bool | None = None
    plain_word: tuple[str, Sent, RawResponse] | None = None
    server_error_reported: bool = False  # one 5xx finding per point (a database error aside)

    @property
    def operation(self) -> str:
        return self.point.endpoint.label

    def sent(self, value: str) -> Sent:
        target, body = self.point.request(value)
        return Sent(self.point.endpoint.method, target, self.point.endpoint.headers, body)

    def report(
        self,
        rule: str,
        title: str,
        severity: Severity,
        category: Category,
        payload: Payload,
        sent: Sent,
        response: RawResponse,
        fix: str,
        **extra: Any,
    ) -> None:
        details = {"parameter": self.point.label, "payload": payload.text, "family": payload.family, **extra}
        self.session.add(rule, title, severity, category, self.operation, sent, response, fix, details)


def _injectable(point: Point) -> bool:
    """String values: every query value, form field and JSON string; a path parameter when the
    document declares it a string (or, undeclared, when its value is not a number)."""
    if point.location != "path":
        return True
    declared = point.endpoint.parameter_type(point.name, "path")
    return declared == "string" if declared is not None else not point.value.isdigit()


async def run_injection(session: ProbeSession, endpoints: list[Endpoint]) -> None:
    others = _second_user_values(session)
    originals: dict[str, RawResponse] = {}
    for endpoint in endpoints:
        if endpoint.method == "DELETE":
            continue
        if not await _original(session, endpoint, originals):
            if session.stopped:
                return
            continue
        for point in endpoint.points():
            if not _injectable(point):
                continue
            baseline = await _baseline(session, point, originals)
            if baseline is None:
                if session.stopped:
                    return
                continue
            run = _PointRun(session, point, baseline, others)
            if _harmless_is_plain(baseline):
                run.plain_word_fails = False  # the harmless baseline was a plain word, and got no 5xx
            if not await _probe(run):
                return


async def _original(session: ProbeSession, endpoint: Endpoint, originals: dict[str, RawResponse]) -> bool:
    """The request as the journey sent it (without the parameters it did not send), once per
    endpoint: False when it failed (said in a note, or a finding) or the budget is spent."""
    if not any(_injectable(point) for point in endpoint.points()):
        return False
    sent = Sent(endpoint.method, endpoint.target(), endpoint.headers, endpoint.body)
    original = await session.send(sent, endpoint.label)
    if original is None:
        return False
    if original.status is not None and original.status < 500:
        originals[endpoint.label] = original
        return True
    what = (
        "its journey's request sent again" if endpoint.from_journey else "the request made from the document"
    )
    session.result.notes.append(f"injection: {endpoint.label} not probed: {what} answers {outcome(original)}")
    if endpoint.from_journey and original.status is not None:
        session.add(
            "input.server-error",
            f"{endpoint.label} answers {original.status} to {what}",
            "high",
            "input",
            endpoint.label,
            sent,
            original,
            FIX_SERVER_ERROR,
            {"parameter": "(the journey's values)"},
        )
    return False


def _harmless(point: Point) -> tuple[str, str]:
    """A value the service should take and that matches nothing, and where it comes from."""
    declared = example_of(_declared_schema(point))
    if declared is not None:
        return declared, "a value the OpenAPI document gives"
    if point.value.isdigit():
        return ("2" if point.value == "1" else "1"), "a small number, as the journey sent a number"
    return _plain_word(), PLAIN_WORD


def _plain_word() -> str:
    return f"gonogo{secrets.token_hex(4)}"


def _harmless_is_plain(baseline: _Baseline) -> bool:
    return baseline.harmless_source == PLAIN_WORD


def _declared_schema(point: Point) -> Mapping[str, Any]:
    """The schema the document declares for the point's value ({} when it says nothing): a
    parameter's, or a top-level field's of the body."""
    endpoint = point.endpoint
    if point.location in ("path", "query"):
        return endpoint.schema(point.name, point.location)
    if point.location == "json":
        if len(point.where) != 1:
            return {}
        name = str(point.where[0])
    else:
        name = point.name
    properties = (endpoint.body_schema or {}).get("properties")
    part = properties.get(name) if isinstance(properties, Mapping) else None
    return part if isinstance(part, Mapping) else {}


async def _baseline(
    session: ProbeSession, point: Point, originals: dict[str, RawResponse]
) -> _Baseline | None:
    endpoint = point.endpoint
    value, source = _harmless(point)
    target, body = point.request(value)
    sent = Sent(endpoint.method, target, endpoint.headers, body)
    harmless = await session.send(sent, endpoint.label)
    if harmless is None:
        return None
    if harmless.status is not None and harmless.status < 500:
        return _Baseline(originals[endpoint.label], harmless, source)
    session.result.notes.append(
        f"injection: {endpoint.label} {point.label} not probed: with {value!r} ({source}) it answers "
        f"{outcome(harmless)}"
    )
    if endpoint.from_journey and harmless.status is not None:
        session.add(
            "input.server-error",
            f"{endpoint.label} answers {harmless.status} when {point.label} is {value!r} ({source}), the "
            "other values as the journey sent them",
            "high",
            "input",
            endpoint.label,
            sent,
            harmless,
            FIX_SERVER_ERROR,
            {"parameter": point.label, "value": value},
        )
    return None


async def _probe(run: _PointRun) -> bool:
    """Every payload on one point; False when the budget is spent."""
    session = run.session
    method = run.point.endpoint.method
    for payload in payloads(session.settings.timing):
        if payload.family in run.done or (payload.tautology and method not in SAFE_METHODS):
            continue
        delayed = payload.family.endswith("-time")
        timeout = max(session.target.request_timeout, run.baseline.elapsed + 2 * session.settings.timing + 5)
        value = payload.value(run.point.value)
        sent = run.sent(value)
        response = await session.send(
            sent, run.operation, payload=True, parameter=run.point.label, what=repr(value), timeout=timeout
        )
        if response is None:
            return False
        if (
            (response.status or 0) >= 500
            and run.plain_word_fails is None
            and not await _plain_word_tried(run)
        ):
            return False
        if delayed:
            if not await _judge_delay(run, payload, sent, response, timeout):
                return False
        else:
            _judge(run, payload, sent, response)
    return True


async def _plain_word_tried(run: _PointRun) -> bool:
    """A plain word in the value's place, to tell a payload's special characters from a value of
    the wrong shape as the cause of a 5xx; False when the budget is spent."""
    value = _plain_word()
    sent = run.sent(value)
    response = await run.session.send(
        sent, run.operation, payload=True, parameter=run.point.label, what=repr(value)
    )
    if response is None:
        return False
    run.plain_word_fails = response.status is not None and response.status >= 500
    if run.plain_word_fails:
        run.plain_word = (value, sent, response)
    return True


def _judge(run: _PointRun, payload: Payload, sent: Sent, response: RawResponse) -> None:
    where = f"{run.point.label} is {payload.value(run.point.value)!r}"
    operation = run.operation
    if response.status is None:
        if response.error and response.error.startswith("timeout"):
            title = f"{operation} gives no response in time when {where}"
            run.report("input.hang", title, "high", "input", payload, sent, response, FIX_HANG)
        return
    text = response.text()
    if response.status >= 500:
        if DATABASE_ERRORS.search(text) and not run.baseline.holds(DATABASE_ERRORS):
            run.done |= {"sql", "sql-time"}
            title = f"{operation} answers {response.status} with a database error when {where}"
            run.report(
                "injection.sql-error", title, "critical", "injection", payload, sent, response, FIX_SQL
            )
        elif not run.server_error_reported:
            run.server_error_reported = True
            _server_error(run, payload, sent, response)
        return
    if payload.family == "command" and COMMAND_OUTPUT.search(text) and not run.baseline.holds(COMMAND_OUTPUT):
        run.done |= {"command", "command-time"}
        title = f"{operation} runs a shell command from its input: the output of `id` comes back when {where}"
        run.report("injection.command", title, "critical", "injection", payload, sent, response, FIX_COMMAND)
    elif (
        payload.family == "template" and TEMPLATE_PRODUCT in text and not run.baseline.holds(TEMPLATE_PRODUCT)
    ):
        run.done.add("template")
        title = (
            f"{operation} evaluates its input as a template: 1337*1337 comes back computed "
            f"({TEMPLATE_PRODUCT}) when {where}"
        )
        run.report(
            "injection.template", title, "critical", "injection", payload, sent, response, FIX_TEMPLATE
        )
    elif payload.tautology and 200 <= response.status < 300:
        evidence = _tautology(run, response)
        if evidence:
            run.done |= {"sql", "sql-time"}
            title = f"{operation} returns {evidence} when {where}"
            run.report(
                "injection.sql-tautology",
                title,
                "critical",
                "injection",
                payload,
                sent,
                response,
                FIX_SQL,
                evidence=evidence,
            )


def _server_error(run: _PointRun, payload: Payload, sent: Sent, response: RawResponse) -> None:
    operation, label = run.operation, run.point.label
    if run.plain_word is not None:  # any value of the wrong shape: the plain word's request shows it best
        value, plain_sent, plain = run.plain_word
        declared = run.point.endpoint.parameter_type(run.point.name, run.point.location)
        expected = f", where the document declares {declared}" if declared and declared != "string" else ""
        title = f"{operation} answers {plain.status} when {label} is {value!r}, a plain word{expected}"
        run.report("input.server-error", title, "high", "input", payload, plain_sent, plain, FIX_SERVER_ERROR)
        return
    title = f"{operation} answers {response.status} when {label} is {payload.value(run.point.value)!r}"
    category: Category = "input" if payload.family == "input" else "injection"
    run.report(f"{category}.server-error", title, "high", category, payload, sent, response, FIX_SERVER_ERROR)


def _tautology(run: _PointRun, response: RawResponse) -> str | None:
    """What shows that a tautology widened the query: more rows, or the second user's values."""
    text = response.text()
    leaked = [value for value in run.others if value in text and not run.baseline.holds(value)]
    if leaked:
        return f"the second user's data ({', '.join(repr(value) for value in leaked[:3])})"
    rows = _rows(response)
    before = [_rows(run.baseline.original), _rows(run.baseline.harmless)]
    if rows is not None and all(count is not None for count in before):
        most = max(count for count in before if count is not None)
        if rows > most:
            return f"{rows} rows where the harmless values return at most {most}"
    return None


async def _judge_delay(
    run: _PointRun, payload: Payload, sent: Sent, response: RawResponse, timeout: float
) -> bool:
    """A delay payload answered late: sent again, reported when late again. False when the
    budget is spent."""
    session = run.session
    threshold = run.baseline.elapsed + session.settings.timing
    if response.status is not None and response.status >= 500:
        _judge(run, payload, sent, response)
    if response.elapsed < threshold:
        return True
    again = await session.send(
        sent, run.operation, payload=True, parameter=run.point.label, what=repr(payload.text), timeout=timeout
    )
    if again is None:
        return False
    if again.elapsed >= threshold:
        run.done.add(payload.family)
        title = (
            f"{run.operation} answers {again.elapsed:.1f}s late (twice) when {run.point.label} is "
            f"{payload.text!r}; {run.baseline.elapsed:.2f}s with a harmless value"
        )
        elapsed = [round(response.elapsed, 3), round(again.elapsed, 3)]
        run.report(
            "injection.timing", title, "high", "injection", payload, sent, again, FIX_TIMING, elapsed=elapsed
        )
    return True


def _rows(response: RawResponse) -> int | None:
    """How many items a JSON response holds: a list's length, the longest list among an
    object's values (`{"items": [...]}`), 1 for another object; None when not JSON."""
    if not response.complete or response.status is None or not 200 <= response.status < 300:
        return None
    try:
        document = json.loads(response.body)
    except ValueError:
        return None
    if isinstance(document, list):
        return len(document)
    if isinstance(document, dict):
        lists = [len(value) for value in document.values() if isinstance(value, list)]
        return max(lists) if lists else 1
    return None


def _second_user_values(session: ProbeSession) -> list[str]:
    """The second user's own values (not the first user's, not secrets): seen in a response to
    the first user's tautology, they show rows of another user."""
    users = session.target.users
    if len(users) < 2:
        return []
    first, second = users[0].variables, users[1].variables
    return sorted(
        str(value)
        for name, value in second.items()
        if isinstance(value, str)
        and len(value) >= 6
        and not value.isdigit()
        and not is_secret_name(name)
        and first.get(name) != value
        and str(value) not in session.secrets
    )
