"""What every probe family shares: the raw client, the shared budget and the tally, the first
user's credentials, and turning a request and its response into a finding whose excerpts hold
no secret and whose reproduction uses `$TOKEN` (or `$COOKIE`) for the credential.

Every response a probe gets is also searched for a stack trace (when the headers family is
on): a crafted request is the likeliest to make one show. And a 5xx answered to any payload is
kept: at the end, each (operation, parameter) whose 5xx no finding of a family explains (a
database error, an oversized body, …) becomes an `input.server-error` (high).
"""

from __future__ import annotations

__all__ = ["EXCERPT", "ProbeSession", "Sent", "outcome", "request_excerpt", "response_excerpt"]

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gonogo.checks.security.findings import Category, Finding, PartResult, Severity
from gonogo.checks.security.settings import ProbeSettings
from gonogo.checks.security.target import Target
from gonogo.journey.raw import RawClient, RawResponse
from gonogo.journey.redact import redact

EXCERPT = 1024  # body bytes shown in a finding's request and response excerpts
MAX_LINE = 512  # characters of one request line or header shown in an excerpt
KEEP = 64 * 1024  # body bytes of each response kept for the probes to look at
PLACEHOLDERS = ("TOKEN", "COOKIE")
FIX_SERVER_ERROR = (
    "validate the value and answer 400 (or 404, 422) with what was expected; catch what the handler can "
    "raise on bad input instead of letting it become a 500"
)

# Stack traces and exception text of the common runtimes, as they appear in a response body.
STACK_TRACES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Python", re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+, in ")),
    ("Werkzeug debugger", re.compile(r"Werkzeug Debugger|__debugger__\?")),
    (
        "Java",
        re.compile(r"Exception in thread \"|\bat (?:com|org|java|javax|jdk|sun)\.[\w.$]+\([\w.]+:\d+\)"),
    ),
    (".NET", re.compile(r"\bat System\.[\w.`]+\(|System\.\w+Exception:")),
    ("Node.js", re.compile(r"\bat (?:\S+ )?\(?(?:/|[A-Z]:\\|node:)[^\s()]+\.m?js:\d+:\d+\)?")),
    ("Go", re.compile(r"goroutine \d+ \[running\]:")),
    ("PHP", re.compile(r"(?:Fatal error|Stack trace):.*? on line \d+|PHP (?:Fatal|Parse) error")),
    ("Ruby", re.compile(r"\.rb:\d+:in `")),
)


@dataclass(frozen=True)
class Sent:
    """A request as a finding shows it (credentials are added by the session)."""

    method: str
    target: str  # the request-target as sent
    headers: tuple[tuple[str, str], ...] = ()  # without the credentials
    body: bytes | None = None
    body_note: str = ""  # how a streamed body is described in the excerpt ("50,000,000 bytes of 'a'")
    authenticated: bool = True
    reproduction: str = ""  # a reproduction other than the curl line of the above (a streamed body's)


@dataclass(frozen=True)
class _ServerError:
    """The first 5xx a payload got on one (operation, parameter)."""

    sent: Sent
    response: RawResponse
    what: str  # the payload as the title says it: "a traversal payload (%5c)"


class ProbeSession:
    def __init__(self, settings: ProbeSettings, target: Target) -> None:
        self.settings = settings
        self.target = target
        self.client = RawClient(target.base_url, timeout=target.request_timeout, keep=KEEP)
        self.result = PartResult("probes")
        self.stopped = False
        first = target.users[0] if target.users else None
        self.credentials: tuple[tuple[str, str], ...] = tuple(first.auth_headers.items()) if first else ()
        self.shown_credentials = tuple((name, _placeholder(name, value)) for name, value in self.credentials)
        self.secrets = frozenset(
            target.secrets
            | {secret for name, value in self.credentials for secret in _credentials(name, value)}
        )
        self.findings: dict[tuple[str, str, str], Finding] = {}
        self.server_errors: dict[tuple[str, str], _ServerError] = {}
        self.explained: set[tuple[str, str]] = set()  # (operation, parameter) whose 5xx a finding explains

    # -- sending ------------------------------------------------------------------------------

    def take(self) -> bool:
        """One request from the shared budget; False (and a note, once) when it is spent."""
        if self.stopped:
            return False
        if not self.target.budget.take():
            self.stopped = True
            self.result.notes.append(f"probes stopped early: {self.target.budget.exhausted}")
            return False
        self.result.tally.add("requests")
        return True

    async def send(
        self,
        sent: Sent,
        operation: str,
        *,
        payload: bool = False,
        parameter: str = "",
        what: str = "",
        stream: Iterable[bytes] | None = None,
        **options: Any,
    ) -> RawResponse | None:
        """Send `sent` (with the first user's credentials when `authenticated`), counted; None
        when the budget is spent. A `payload` is counted as one, and a 5xx it gets is kept
        under (`operation`, `parameter`), described by `what`. `stream` replaces `sent.body`
        with a streamed one; `options` go to `RawClient.request` (content_length, body_rate,
        timeout, …)."""
        if not self.take():
            return None
        self.result.tally.operations.add(operation)
        if payload:
            self.result.tally.add("payloads")
        headers = list(sent.headers) + (list(self.credentials) if sent.authenticated else [])
        body = stream if stream is not None else sent.body
        response = await self.client.request(sent.method, sent.target, headers=headers, body=body, **options)
        if self.settings.headers:
            self.look_for_stack_trace(sent, operation, response)
        if payload and response.status is not None and response.status >= 500:
            self.server_errors.setdefault((operation, parameter), _ServerError(sent, response, what))
        return response

    def look_for_stack_trace(self, sent: Sent, operation: str, response: RawResponse) -> None:
        runtime = stack_trace_in(response.text())
        if runtime is not None:
            self.add(
                "headers.stack-trace",
                f"{operation} answers {response.status} with a {runtime} stack trace in its body",
                "medium",
                "headers",
                operation,
                sent,
                response,
                "answer errors with a generic message (and an id to find the details in the logs); "
                "turn off debug mode and error pages that print the exception",
                {"runtime": runtime},
            )

    # -- findings -----------------------------------------------------------------------------

    def has(self, rule: str, operation: str, parameter: str = "") -> bool:
        return (rule, operation, parameter) in self.findings

    def add(
        self,
        rule: str,
        title: str,
        severity: Severity,
        category: Category,
        operation: str,
        sent: Sent,
        response: RawResponse | None,
        fix: str,
        details: dict[str, Any] | None = None,
        *,
        response_text: str | None = None,
    ) -> None:
        """Keep a finding (the first of its rule, operation and parameter), with the request
        and response excerpts redacted and a reproduction that holds no credential."""
        details = dict(details or {})
        parameter = str(details.get("parameter", ""))
        key = (rule, operation, parameter)
        if key in self.findings:
            return
        if response is not None and (response.status or 0) >= 500 and severity in ("critical", "high"):
            self.explained.add((operation, parameter))
        if response_text is None:
            response_text = response_excerpt(response) if response is not None else ""
        self.findings[key] = Finding(
            rule=rule,
            title=redact(title, self.secrets),
            severity=severity,
            category=category,
            operation=operation,
            request=redact(self.request_text(sent, response), self.secrets),
            response=redact(response_text, self.secrets),
            reproduction=sent.reproduction or self.curl(sent),
            fix=fix,
            details=details,
        )

    def request_text(self, sent: Sent, response: RawResponse | None) -> str:
        if response is not None and response.sent_head:
            head = response.sent_head.decode("latin-1")
        else:
            lines = [f"{sent.method} {sent.target} HTTP/1.1"]
            headers = list(sent.headers) + (list(self.credentials) if sent.authenticated else [])
            lines += [f"{name}: {value}" for name, value in headers]
            head = "\r\n".join(lines)
        return request_excerpt(head, sent.body, sent.body_note)

    def curl(
        self,
        sent: Sent,
        *,
        options: Sequence[str] = (),
        body_file: bool = False,
        variables: Sequence[str] = (),
    ) -> str:
        """The curl line of `sent`, credentials as `$TOKEN`/`$COOKIE` (and `$NAME` for each of
        `variables`) for the shell to fill in, secrets redacted. `body_file`: the body is read
        from body.bin (a large one the reproduction writes first); `options` go after `curl`."""
        shown = [(name, value) for name, value in sent.headers if name.lower() != "host"]
        if sent.authenticated:
            shown += self.shown_credentials
        line = self.client.curl(
            sent.method,
            redact(sent.target, self.secrets),
            [(name, redact(value, self.secrets)) for name, value in shown],
            redact(sent.body.decode("utf-8", errors="replace"), self.secrets).encode() if sent.body else None,
            expand=(*PLACEHOLDERS, *variables),
        )
        if body_file:
            command, _, url = line.rpartition(" ")
            line = f"{command} --data-binary @body.bin {url}"
        return line.replace("curl ", "curl " + " ".join(options) + " ", 1) if options else line

    def finish(self) -> PartResult:
        for (operation, parameter), error in self.server_errors.items():
            if (operation, parameter) in self.explained:
                continue
            what = error.what or "a crafted value"
            status = error.response.status
            title = (
                f"{operation} answers {status} when {parameter} is {what}"
                if parameter
                else f"{operation} answers {status} to {what}"
            )
            self.add(
                "input.server-error",
                title,
                "high",
                "input",
                operation,
                error.sent,
                error.response,
                FIX_SERVER_ERROR,
                {"parameter": parameter} if parameter else None,
            )
        self.result.findings = list(self.findings.values())
        return self.result


def stack_trace_in(text: str) -> str | None:
    """The runtime whose stack trace or exception text `text` holds, if any."""
    return next((runtime for runtime, pattern in STACK_TRACES if pattern.search(text)), None)


def request_excerpt(head: str, body: bytes | None, body_note: str = "") -> str:
    lines = head.rstrip("\r\n").split("\r\n")
    head = "\n".join(
        line if len(line) <= MAX_LINE else f"{line[:MAX_LINE]}… ({len(line):,} characters)" for line in lines
    )
    if body_note:
        return f"{head}\n\n<{body_note}>"
    if not body:
        return head
    text = body[:EXCERPT].decode("utf-8", errors="replace")
    more = f"\n… ({len(body):,} bytes in all)" if len(body) > EXCERPT else ""
    return f"{head}\n\n{text}{more}"


def response_excerpt(response: RawResponse) -> str:
    if response.status is None:
        return f"(no response: {response.error})"
    lines = [f"HTTP/1.1 {response.status} {response.reason}".rstrip()]
    lines += [f"{name}: {value}" for name, value in response.headers]
    text = response.body[:EXCERPT].decode("utf-8", errors="replace")
    more = f"\n… ({response.size:,} bytes in all)" if response.size > EXCERPT else ""
    problem = _problem(response)
    tail = f"\n({problem})" if problem else ""
    return "\n".join(lines) + (f"\n\n{text}{more}" if text else "") + tail


def outcome(response: RawResponse) -> str:
    """What came back, in a few words: `500 Internal Server Error`, `no response (timeout after
    10s)`, `200 OK, but the response was cut short (1 of 10 bytes)`."""
    if response.status is None:
        return f"no response ({_plain(response.error or 'the connection closed')})"
    said = f"{response.status} {response.reason}".strip()
    problem = _problem(response)
    return f"{said}, but {problem}" if problem else said


def _problem(response: RawResponse) -> str:
    """Why a response that has a status is not whole, as a reader says it."""
    if response.error is None:
        return ""
    length = (response.header("content-length") or "").strip()
    if length.isdigit() and response.size < int(length):
        return f"the response was cut short ({response.size:,} of {int(length):,} bytes)"
    if response.error.startswith("timeout"):
        return f"the rest of the response did not come in time ({response.error})"
    return f"the response was cut short ({response.size:,} bytes, then {_plain(response.error)})"


def _plain(error: str) -> str:
    """An error as a reader says it: without the `[Errno 104] ` of an OSError."""
    return re.sub(r"\[Errno -?\d+\]\s*", "", error)


def _credentials(name: str, value: str) -> set[str]:
    """The secrets of a credential header: the credential after an Authorization scheme (so that
    an excerpt still shows `Bearer <redacted>`), each cookie's value, or the whole value."""
    value = value.strip()
    _, space, rest = value.partition(" ")
    if name.lower() == "authorization" and space and rest.strip():
        return {rest.strip()}
    if name.lower() == "cookie":
        return {pair.partition("=")[2].strip() for pair in value.split(";")} - {""}
    return {value} if value else set()


def _placeholder(name: str, value: str) -> str:
    """How a reproduction writes a credential header: `Bearer $TOKEN`, `$COOKIE`, `$TOKEN`."""
    if name.lower() == "cookie":
        return "$COOKIE"
    scheme, space, rest = value.strip().partition(" ")
    if name.lower() == "authorization" and space and rest.strip():
        return f"{scheme} $TOKEN"
    return "$TOKEN"
