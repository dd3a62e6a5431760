"""Response headers and what responses give away: security headers, cookie flags, CORS, TRACE,
versions, stack traces.

Looked at on every response of the journeys, on a GET of `/`, and on requests of its own: a
GET of `/` and of the first authenticated GET with `Origin: https://evil.example`, the CORS
preflight of the latter, and TRACE with a marker header on `/` and on the first paths the
journeys requested (a framework may route TRACE to `/` apart from the application's routes,
so `/` alone says little), until one echoes it. (Every response a probe of another family gets
is searched for stack traces as it arrives.) One finding per rule and operation, however many
responses show it; one TRACE finding per service.

Severities (docs/security.md): CORS allowing any origin (`*` or the origin reflected) with
credentials, high; a session cookie without HttpOnly and a stack trace, medium; missing
X-Content-Type-Options, CSP and frame protection on HTML, HSTS on https, a version in
Server or X-Powered-By, TRACE echoing the request, a cookie without SameSite (or without
Secure on https), low.
"""

from __future__ import annotations

__all__ = ["run_headers"]

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from gonogo.checks.security.findings import Severity
from gonogo.checks.security.probes._session import (
    EXCERPT,
    ProbeSession,
    Sent,
    response_excerpt,
    stack_trace_in,
)
from gonogo.checks.security.probes.surface import Endpoint
from gonogo.checks.security.target import Exchange
from gonogo.journey.raw import RawResponse

EVIL_ORIGIN = "https://evil.example"
VERSION = re.compile(r"\d+\.\d+")
VERSION_HEADERS = ("server", "x-powered-by", "x-aspnet-version", "x-aspnetmvc-version")
TRACE_PATHS = 3  # paths of the journeys TRACE is tried on, besides `/`
SESSION_COOKIE = re.compile(r"(?i)sess|sid$|^sid|auth|token|jwt|login|remember|^id$")
NOT_SESSION_COOKIE = re.compile(r"(?i)csrf|xsrf")
FIX_NOSNIFF = "send `X-Content-Type-Options: nosniff` on every response"
FIX_CSP = (
    "send a Content-Security-Policy on HTML responses (at least `default-src 'self'; frame-ancestors 'none'`)"
)
FIX_FRAMES = (
    "send `X-Frame-Options: DENY` or a Content-Security-Policy with `frame-ancestors` on HTML responses"
)
FIX_HSTS = "send `Strict-Transport-Security: max-age=31536000; includeSubDomains` on https responses"
FIX_VERSION = (
    "do not say which server or framework version answers: drop the version from Server and X-Powered-By"
)
FIX_HTTPONLY = "set HttpOnly on session cookies, so that a script injected in a page cannot read them"
FIX_SAMESITE = "set SameSite=Lax (or Strict) on cookies, so that other sites' requests do not carry them"
FIX_SECURE = "set Secure on cookies served over https"
FIX_CORS = (
    "allow only the origins you trust, by an exact list; never reflect the Origin header or answer `*` "
    "together with Access-Control-Allow-Credentials: true"
)
FIX_TRACE = "turn off the TRACE method (answer 405)"
FIX_TRACES = (
    "answer errors with a generic message (and an id to find the details in the logs); turn off debug "
    "mode and error pages that print the exception"
)


@dataclass(frozen=True)
class _Seen:
    """One response, from a journey or from this family's own requests."""

    operation: str
    sent: Sent
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    response: RawResponse | None  # None for a journey's response
    excerpt: str

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key.lower() == name), None)

    def header_values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name]


async def run_headers(session: ProbeSession, endpoints: Sequence[Endpoint]) -> None:
    https = session.target.base_url.startswith("https://")
    seen = [_from_exchange(session, exchange) for exchange in session.target.exchanges]
    root_path = urlsplit(session.target.base_url).path.rstrip("/") + "/"
    root_operation = _operation(session, "GET", root_path)
    accept = ("Accept", "text/html,application/json;q=0.9,*/*;q=0.8")
    root = Sent("GET", root_path, (accept,), authenticated=False)
    response = await session.send(root, root_operation)
    if response is not None and response.status is not None:
        seen.append(_from_response(root_operation, root, response))
    for item in seen:
        _judge(session, item, https)
    if not session.stopped:
        await _cors(session, endpoints, root_path, root_operation)
    if not session.stopped:
        await _trace(session, root_path)


def _operation(session: ProbeSession, method: str, path: str) -> str:
    spec = session.target.openapi
    operation = spec.operation_for(method, path) if spec is not None else None
    return operation.label if operation is not None else f"{method} {path}"


def _from_exchange(session: ProbeSession, exchange: Exchange) -> _Seen:
    parts = urlsplit(exchange.url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    operation = exchange.operation or _operation(session, exchange.method, parts.path)
    kept = tuple(
        (name, value)
        for name, value in exchange.headers
        if name.lower() not in ("authorization", "cookie", "host", "content-length", "connection")
    )
    body = exchange.body if exchange.body and exchange.body_complete and len(exchange.body) <= 2048 else None
    sent = Sent(exchange.method, target, kept, body, authenticated=exchange.authenticated)
    lines = [
        f"HTTP/1.1 {exchange.status}",
        *(f"{name}: {value}" for name, value in exchange.response_headers),
    ]
    text = exchange.response_body[:EXCERPT].decode("utf-8", errors="replace")
    excerpt = "\n".join(lines) + (f"\n\n{text}" if text else "")
    return _Seen(
        operation, sent, exchange.status, exchange.response_headers, exchange.response_body, None, excerpt
    )


def _from_response(operation: str, sent: Sent, response: RawResponse) -> _Seen:
    assert response.status is not None
    return _Seen(
        operation,
        sent,
        response.status,
        response.headers,
        response.body,
        response,
        response_excerpt(response),
    )


def _report(
    session: ProbeSession, rule: str, title: str, severity: Severity, item: _Seen, fix: str, **details: str
) -> None:
    session.add(
        rule,
        title,
        severity,
        "headers",
        item.operation,
        item.sent,
        item.response,
        fix,
        dict(details),
        response_text=item.excerpt,
    )


def _judge(session: ProbeSession, item: _Seen, https: bool) -> None:
    operation = item.operation
    has_body = item.status not in (204, 304) and bool(item.body)
    if has_body and (item.header("x-content-type-options") or "").strip().lower() != "nosniff":
        _report(
            session,
            "headers.nosniff",
            f"{operation} answers without X-Content-Type-Options: nosniff",
            "low",
            item,
            FIX_NOSNIFF,
        )
    if (item.header("content-type") or "").lower().startswith("text/html"):
        policy = item.header("content-security-policy")
        if policy is None:
            _report(
                session,
                "headers.csp",
                f"{operation} serves HTML without a Content-Security-Policy",
                "low",
                item,
                FIX_CSP,
            )
        if item.header("x-frame-options") is None and "frame-ancestors" not in (policy or ""):
            _report(
                session,
                "headers.frame-options",
                f"{operation} serves HTML that any site may frame (no X-Frame-Options, no frame-ancestors)",
                "low",
                item,
                FIX_FRAMES,
            )
    if https and item.header("strict-transport-security") is None:
        _report(
            session,
            "headers.hsts",
            f"{operation} answers over https without Strict-Transport-Security",
            "low",
            item,
            FIX_HSTS,
        )
    for name in VERSION_HEADERS:
        value = item.header(name)
        if value is not None and VERSION.search(value):
            _report(
                session,
                "headers.server-version",
                f"{operation} says which version answers: {name.title()}: {value}",
                "low",
                item,
                FIX_VERSION,
            )
            break
    for cookie in item.header_values("set-cookie"):
        _judge_cookie(session, item, cookie, https)
    runtime = stack_trace_in(item.body.decode("utf-8", errors="replace"))
    if runtime is not None:
        _report(
            session,
            "headers.stack-trace",
            f"{operation} answers {item.status} with a {runtime} stack trace in its body",
            "medium",
            item,
            FIX_TRACES,
            runtime=runtime,
        )


def _judge_cookie(session: ProbeSession, item: _Seen, cookie: str, https: bool) -> None:
    pair, _, rest = cookie.partition(";")
    name, _, value = pair.partition("=")
    name, value = name.strip(), value.strip()
    attributes = {part.split("=", 1)[0].strip().lower() for part in rest.split(";")}
    if not value or "max-age=0" in cookie.lower().replace(" ", ""):
        return  # a cookie being deleted
    operation = item.operation
    # A session cookie: named like one and holding a token (`session_lang=en` is no session), or
    # holding a credential of the run.
    named = bool(SESSION_COOKIE.search(name)) and not NOT_SESSION_COOKIE.search(name)
    is_session = (named and len(value) >= 16) or value in session.secrets
    if is_session and "httponly" not in attributes:
        _report(
            session,
            "headers.cookie-httponly",
            f"{operation} sets the session cookie {name!r} without HttpOnly",
            "medium",
            item,
            FIX_HTTPONLY,
            cookie=name,
        )
    if "samesite" not in attributes:
        _report(
            session,
            "headers.cookie-samesite",
            f"{operation} sets the cookie {name!r} without SameSite",
            "low",
            item,
            FIX_SAMESITE,
            cookie=name,
        )
    if https and "secure" not in attributes:
        _report(
            session,
            "headers.cookie-secure",
            f"{operation} sets the cookie {name!r} without Secure over https",
            "low",
            item,
            FIX_SECURE,
            cookie=name,
        )


async def _cors(
    session: ProbeSession, endpoints: Sequence[Endpoint], root_path: str, root_operation: str
) -> None:
    origin = ("Origin", EVIL_ORIGIN)
    tries = [(Sent("GET", root_path, (origin,), authenticated=False), root_operation)]
    endpoint = next(
        (e for e in endpoints if e.method == "GET" and e.from_journey and session.credentials), None
    )
    if endpoint is not None:
        tries.append((Sent("GET", endpoint.target(), (*endpoint.headers, origin)), endpoint.label))
        preflight = (
            origin,
            ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Headers", "authorization,content-type"),
        )
        tries.append((Sent("OPTIONS", endpoint.target(), preflight, authenticated=False), endpoint.label))
    for sent, operation in tries:
        response = await session.send(sent, operation)
        if response is None:
            return
        allowed = response.header("access-control-allow-origin")
        credentials = (response.header("access-control-allow-credentials") or "").strip().lower() == "true"
        if allowed is not None and allowed.strip() in ("*", EVIL_ORIGIN) and credentials:
            how = "any origin (`*`)" if allowed.strip() == "*" else f"the origin it is sent ({EVIL_ORIGIN})"
            session.add(
                "headers.cors-credentials",
                f"{operation} allows {how} with credentials: another site can read the user's responses",
                "high",
                "headers",
                operation,
                sent,
                response,
                FIX_CORS,
                {"allow_origin": allowed},
            )


async def _trace(session: ProbeSession, root_path: str) -> None:
    """TRACE on `/` and on the journeys' first paths, until one answers 200 with the request."""
    journeys = [urlsplit(exchange.url).path or "/" for exchange in session.target.exchanges]
    paths = list(dict.fromkeys(path for path in journeys if path != root_path))[:TRACE_PATHS]
    marker = f"gonogo-trace-{secrets.token_hex(6)}"
    for path in [root_path, *paths]:
        sent = Sent("TRACE", path, (("X-Gonogo-Trace", marker),), authenticated=False)
        operation = f"TRACE {path}"
        response = await session.send(sent, operation)
        if response is None:
            return
        if response.status == 200 and marker in response.text():
            session.add(
                "headers.trace",
                f"{operation} answers 200 and echoes the request (headers included)",
                "low",
                "headers",
                operation,
                sent,
                response,
                FIX_TRACE,
            )
            return
