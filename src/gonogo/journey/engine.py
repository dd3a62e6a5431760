"""Running journeys: `iterations` of each journey, `concurrency` of them in flight at once.

One `httpx.AsyncClient` per check run (HTTP/1.1, pooled connections, no redirects
followed, no proxy from the environment), so traffic goes only to the base URL. Each
iteration has its own variables and its own cookie jar, so concurrent iterations never
see each other's sessions. An iteration stops at its first failing step; that failure is
kept with the step, the request, the status and an excerpt of the response.

Timing: a step's latency runs from sending the request (upload included) to having read
the whole response; for a poll step, from the first attempt to the response on which the
condition held. An iteration's duration covers all its steps.

A step whose request says `raw: true` is sent by `RawClient` instead (a new connection per
request): its path and headers go on the wire exactly as written once filled in, which httpx
does not do (it removes dot segments, refuses a header value with a trailing space). Its reply
goes through the same `expect`, `extract` and `poll` as any other.

Other kinds drive iterations themselves (the `load` check's journeys): `client()`,
`start_iteration()` and `run_step()` are the parts `run()` is made of.
"""

from __future__ import annotations

__all__ = [
    "Engine",
    "Failure",
    "FailureKind",
    "IterationResult",
    "IterationState",
    "JourneyResult",
    "Sent",
    "StepResult",
]

import asyncio
import hashlib
import mimetypes
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from typing import IO, Any, Literal, cast
from urllib.parse import urlsplit

import httpx

from gonogo import __version__
from gonogo.errors import GonogoError
from gonogo.journey.assertions import check_expect, check_poll
from gonogo.journey.auth import AuthError, authorization
from gonogo.journey.payload import BLOCK, FilePayload, GeneratedPayload, Payload, generated_seed
from gonogo.journey.raw import RawClient
from gonogo.journey.reply import EXCERPT_BYTES, MAX_KEPT_BODY, Reply
from gonogo.journey.settings import (
    BodySource,
    Journey,
    JourneysSettings,
    RequestSpec,
    Step,
    client_header_problem,
    client_path_problem,
)
from gonogo.journey.shape import SHAPE_BODY_BYTES, body_shape, media_type
from gonogo.journey.variables import (
    ExtractionError,
    VariableError,
    render,
    render_value,
)
from gonogo.units import format_value

Expand = Callable[[str], str]
PROGRESS_EVERY = 0.5  # seconds between progress messages for one journey
POLL_ATTEMPT_GRACE = 1.0  # a poll attempt started before the deadline may run this far past it
RAW_TIMEOUT_GRACE = 1.0  # seconds the raw client has past a step's timeout to report it itself
USER_AGENT = f"gonogo-journeys/{__version__}"
# timeout: no complete response in time; connection: the exchange itself failed; assertion: a
# response came but `expect`, `poll` or `extract` failed on it (or the request could not be built)
FailureKind = Literal["assertion", "timeout", "connection"]


@dataclass(frozen=True)
class StepResult:
    step: str
    ok: bool
    latency: float  # seconds
    status: int | None
    attempts: int
    # the body's type skeleton (journey/shape.py), with `Engine(shapes=True)` and a response
    shape: str | None = None


@dataclass(frozen=True)
class Failure:
    journey: str
    iteration: int
    step: str
    method: str
    url: str
    status: int | None  # None: no response
    message: str
    response_excerpt: str  # at most EXCERPT_BYTES of the body
    response_size: int | None
    attempts: int
    at: str  # ISO 8601, UTC
    kind: FailureKind = "assertion"

    def summary(self) -> str:
        status = self.status if self.status is not None else "no response"
        return (
            f"{self.journey} #{self.iteration} step {self.step}: {self.method} {self.url} → "
            f"{status}: {self.message}"
        )


@dataclass(frozen=True)
class IterationResult:
    iteration: int
    started_at: datetime
    duration: float  # seconds
    steps: list[StepResult]
    failure: Failure | None
    variables: dict[str, Any] = field(default_factory=dict)  # as they stood after the last step

    @property
    def ok(self) -> bool:
        return self.failure is None


@dataclass(frozen=True)
class JourneyResult:
    name: str
    journey: Journey
    started_at: datetime
    ended_at: datetime
    iterations: list[IterationResult]  # in iteration order

    @property
    def failures(self) -> list[Failure]:
        return [result.failure for result in self.iterations if result.failure is not None]


def _seconds(seconds: float) -> str:
    """A duration in a failure message, in gonogo's units (`5.00 s`, `300.0 ms`)."""
    return format_value(seconds, "seconds")


class _StepFailed(GonogoError):
    def __init__(self, message: str, reply: Reply | None = None, kind: FailureKind = "assertion") -> None:
        super().__init__(message)
        self.message = message
        self.reply = reply
        self.kind: FailureKind = kind


class _NoSharedCookies(DefaultCookiePolicy):
    """The client's own jar keeps nothing: each iteration has its own."""

    def set_ok(self, cookie: Any, request: Any) -> bool:
        return False


@dataclass
class IterationState:
    """One iteration in progress: its variables, cookie jar and the hashes of what it sent."""

    journey: str
    number: int
    variables: dict[str, Any]
    cookies: httpx.Cookies = field(default_factory=httpx.Cookies)
    sent: dict[tuple[str, str | None], str] = field(default_factory=dict)  # sha256 of bodies


class _Kept:
    """The first `limit` bytes of a request body as it goes out, and its size."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.kept = bytearray()
        self.size = 0

    def add(self, chunk: bytes) -> bytes:
        self.size += len(chunk)
        if len(self.kept) < self.limit:
            self.kept += chunk[: self.limit - len(self.kept)]
        return chunk

    def tee(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            yield self.add(chunk)


@dataclass
class _RawRequest:
    method: str
    target: str  # the request-target as it goes on the wire
    headers: list[tuple[str, str | bytes]]
    body: bytes | Iterable[bytes] | None
    content_length: int | None  # of an iterable body (a bytes body's the client counts)
    chunked: bool
    expect_continue: bool
    cookie_request: httpx.Request  # stands for this request in the iteration's cookie jar
    kept: _Kept | None  # with `record`: what went out of the body


@dataclass
class _Prepared:
    url: str
    payloads: dict[str | None, Payload]
    request: httpx.Request | None = None  # sent by httpx
    raw: _RawRequest | None = None  # or by the raw client


@dataclass(frozen=True)
class _Outgoing:
    """What one request put on the wire, for `record`."""

    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    body_complete: bool


@dataclass(frozen=True)
class Sent:
    """A step's request as it went on the wire, and its reply: what `Engine(record=...)` is given
    (the security check replays these with other credentials)."""

    journey: str
    iteration: int
    step: str
    method: str
    url: str
    headers: tuple[tuple[str, str], ...]  # in order, as sent (cookies included)
    body: bytes  # the first RECORDED_BODY bytes of the body
    body_complete: bool  # `body` is the whole body
    reply: Reply
    variables: dict[str, Any]  # the iteration's variables once the step's extractions are done
    raw: bool = False  # sent by the raw client: `url` holds the request-target exactly as sent


RECORDED_BODY = 1024 * 1024


class _Tee(httpx.AsyncByteStream):
    """A request body passed through unchanged, its first `limit` bytes kept."""

    def __init__(self, stream: httpx.AsyncByteStream, limit: int) -> None:
        self._stream = stream
        self.kept = _Kept(limit)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield self.kept.add(chunk)

    async def aclose(self) -> None:
        await self._stream.aclose()


class Engine:
    """Runs every journey of the settings against `base_url`, one journey after another."""

    def __init__(
        self,
        settings: JourneysSettings,
        base_url: str,
        *,
        files: Mapping[str, Path],
        expand: Expand,
        progress: Callable[[str], None],
        record: Callable[[Sent], None] | None = None,
        shapes: bool = False,
    ) -> None:
        self._settings = settings
        self._record = record
        # the shape of every response body in StepResult (the journeys check: `gonogo compare`)
        self._shapes = shapes
        self._base = base_url.rstrip("/")
        self._origin = _origin(httpx.URL(self._base))
        self._files = files  # a BodySource.path as written → the file
        self._expand = expand
        self._progress = progress
        self._raw_clients: dict[int, RawClient] = {}  # by how much of a body each keeps
        # per journey: the (step, field) bodies a later `body_sha256_of` compares with
        self._hashed = {
            name: {
                journey.body_source_key(step.expect.body_sha256_of)
                for step in journey.steps
                if step.expect.body_sha256_of is not None
            }
            for name, journey in settings.journeys.items()
        }

    async def run(self, on_journey_done: Callable[[JourneyResult], None]) -> list[JourneyResult]:
        results = []
        async with self.client() as client:
            for name, journey in self._settings.journeys.items():
                result = await self._journey(client, name, journey)
                on_journey_done(result)
                results.append(result)
        return results

    def client(self, connections: int | None = None) -> httpx.AsyncClient:
        """The HTTP client for a run: at most `connections` (default: the largest
        `concurrency`) connections, no shared cookies, no redirects, no proxy."""
        most = connections or max(journey.concurrency for journey in self._settings.journeys.values())
        return httpx.AsyncClient(
            http1=True,
            http2=False,
            verify=self._settings.verify_tls,
            follow_redirects=False,
            trust_env=False,
            timeout=httpx.Timeout(self._settings.request_timeout),
            limits=httpx.Limits(max_connections=most, max_keepalive_connections=most),
            cookies=CookieJar(policy=_NoSharedCookies()),
            headers={"User-Agent": USER_AGENT},
        )

    async def _journey(self, client: httpx.AsyncClient, name: str, journey: Journey) -> JourneyResult:
        started_at = datetime.now(UTC)
        total = journey.iterations
        self._progress(f"{name}: {total} iterations, {journey.concurrency} at a time")
        numbers: Iterator[int] = iter(range(1, total + 1))
        results: list[IterationResult] = []
        last_report = time.monotonic()

        async def worker() -> None:
            nonlocal last_report
            for number in numbers:
                results.append(await self._iteration(client, name, journey, number))
                now = time.monotonic()
                if now - last_report >= PROGRESS_EVERY or len(results) == total:
                    last_report = now
                    failed = sum(1 for result in results if not result.ok)
                    self._progress(f"{name}: {len(results)}/{total} iterations, {failed} failed")

        async with asyncio.TaskGroup() as group:
            for _ in range(min(journey.concurrency, total)):
                group.create_task(worker())
        results.sort(key=lambda result: result.iteration)
        return JourneyResult(name, journey, started_at, datetime.now(UTC), results)

    async def _iteration(
        self,
        client: httpx.AsyncClient,
        name: str,
        journey: Journey,
        number: int,
    ) -> IterationResult:
        started_at = datetime.now(UTC)
        started = time.perf_counter()
        state = self.start_iteration(name, number)
        steps: list[StepResult] = []
        failure: Failure | None = None
        for step in journey.steps:
            result, failure = await self.run_step(client, state, step)
            steps.append(result)
            if failure is not None:
                break
        return IterationResult(
            number, started_at, time.perf_counter() - started, steps, failure, dict(state.variables)
        )

    def start_iteration(self, name: str, number: int) -> IterationState:
        """A new iteration of journey `name`: built-in and journey variables set, empty cookie jar."""
        journey = self._settings.journeys[name]
        variables: dict[str, Any] = {"iteration": number, "uuid": str(uuid.uuid4()), "journey": name}
        for key, value in journey.variables.items():
            variables[key] = render_value(value, variables, self._expand)
        return IterationState(name, number, variables)

    async def run_step(
        self, client: httpx.AsyncClient, state: IterationState, step: Step
    ) -> tuple[StepResult, Failure | None]:
        """Run one step of the iteration; its extractions update `state.variables`."""
        hashed = self._hashed[state.journey]
        started = time.perf_counter()
        attempts = 0
        method, url = step.request.method, step.request.path
        reply: Reply | None = None
        outgoing: _Outgoing | None = None

        def fill(value: Any) -> Any:
            return render_value(value, state.variables, self._expand)

        try:
            base_timeout = step.request_timeout or self._settings.request_timeout
            poll = step.poll
            deadline = started + poll.timeout if poll is not None else None
            last_kind: FailureKind = "assertion"  # a poll's last attempt: its failure's kind
            while True:
                attempts += 1
                timeout = base_timeout
                if deadline is not None:
                    timeout = min(base_timeout, max(deadline - time.perf_counter(), POLL_ATTEMPT_GRACE))
                prepared = self._prepare(client, state, step, timeout)
                url = prepared.url
                try:
                    reply = None
                    reply, outgoing = await self._transmit(client, prepared, state, timeout, step)
                    problems = []
                    if poll is not None:
                        problems = check_poll(poll, reply, fill)
                        last_kind = "assertion"
                except _StepFailed as error:
                    if poll is None:
                        raise
                    problems = [error.message]
                    last_kind = error.kind
                finally:
                    for key, payload in prepared.payloads.items():
                        if (step.name, key) in hashed:
                            state.sent[(step.name, key)] = payload.sha256()
                        payload.close()
                if not problems:
                    break
                assert poll is not None and deadline is not None
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    # a poll whose last attempt got no response (timeout, connection) failed
                    # as that attempt did, as on the C engine: not as an unmet condition
                    raise _StepFailed(
                        f"the poll condition did not hold within {_seconds(poll.timeout)} "
                        f"({attempts} attempt{'s' if attempts != 1 else ''}); last: {'; '.join(problems)}",
                        reply,
                        last_kind,
                    )
                await asyncio.sleep(min(poll.interval, remaining))
            latency = time.perf_counter() - started
            assert reply is not None
            sent = None
            if step.expect.body_sha256_of is not None:
                sent = state.sent.get(self._source_key(state, step))
            problems = check_expect(step.expect, reply, fill, sent)
            if problems:
                raise _StepFailed("; ".join(problems), reply)
            for variable, extractor in step.extract.items():
                try:
                    state.variables[variable] = extractor.extract(reply)
                except ExtractionError as error:
                    raise _StepFailed(f"cannot extract {variable} ({extractor}): {error}", reply) from None
            if self._record is not None and outgoing is not None:
                self._record(
                    Sent(
                        state.journey,
                        state.number,
                        step.name,
                        step.request.method,
                        outgoing.url,
                        outgoing.headers,
                        outgoing.body,
                        outgoing.body_complete,
                        reply,
                        dict(state.variables),
                        raw=step.request.raw,
                    )
                )
        except (_StepFailed, VariableError) as error:
            failed_reply = error.reply if isinstance(error, _StepFailed) else None
            message = error.message if isinstance(error, _StepFailed) else str(error)
            kind: FailureKind = error.kind if isinstance(error, _StepFailed) else "assertion"
            failure = Failure(
                journey=state.journey,
                iteration=state.number,
                step=step.name,
                method=method,
                url=url,
                status=failed_reply.status if failed_reply else None,
                message=message,
                response_excerpt=failed_reply.excerpt() if failed_reply else "",
                response_size=failed_reply.size if failed_reply else None,
                attempts=attempts,
                at=datetime.now(UTC).isoformat(),
                kind=kind,
            )
            status = failed_reply.status if failed_reply else None
            elapsed = time.perf_counter() - started
            shape = self._shape(failed_reply)
            return StepResult(step.name, False, elapsed, status, attempts, shape), failure
        return StepResult(step.name, True, latency, reply.status, attempts, self._shape(reply)), None

    def _shape(self, reply: Reply | None) -> str | None:
        if not self._shapes or reply is None:
            return None
        content_type = reply.headers.get("content-type", "")
        return body_shape(reply.body, reply.size, reply.complete, content_type, reply.parsed_json())

    def _source_key(self, state: IterationState, step: Step) -> tuple[str, str | None]:
        journey = self._settings.journeys[state.journey]
        assert step.expect.body_sha256_of is not None
        return journey.body_source_key(step.expect.body_sha256_of)

    # -- building a request -------------------------------------------------------------

    def _prepare(
        self, client: httpx.AsyncClient, state: IterationState, step: Step, timeout: float
    ) -> _Prepared:
        spec = step.request
        variables = state.variables

        def text(template: str) -> str:
            return render(template, variables, self._expand)

        path = text(spec.path)
        if not spec.raw:
            problem = client_path_problem(path)
            if problem:
                raise _StepFailed(f"request.path, once filled in: {problem}")
        params = [
            (text(key), _field_text(item, text))
            for key, value in spec.query.items()
            for item in (value if isinstance(value, list) else [value])
        ]
        headers = self._headers(spec, text)
        if spec.raw:
            return self._prepare_raw(state, step, path, params, headers, text)
        for name, value in headers:
            problem = client_header_problem(name, value)
            if problem:
                raise _StepFailed(f"request headers, once filled in: {problem}")
        url = self._url(path)
        if params:  # added to a query the path may have (httpx's `params=` would replace it)
            url = str(httpx.URL(url).copy_merge_params(httpx.QueryParams(tuple(params))))
        # Values go out as UTF-8 (httpx would refuse anything but ASCII in a str).
        client_headers = httpx.Headers([(name.encode(), value.encode()) for name, value in headers])
        payloads: dict[str | None, Payload] = {}
        try:
            arguments = self._body(state, step, text, payloads)
            if isinstance(spec.body, BodySource):
                payload = self._payload(spec.body, state, step, None)
                payloads[None] = payload
                arguments["content"] = payload.chunks()
                client_headers["Content-Length"] = str(payload.size)
                if "content-type" not in client_headers:
                    client_headers["Content-Type"] = self._content_type(spec.body, payload, text)
            request = client.build_request(
                spec.method, url, headers=client_headers, timeout=timeout, **arguments
            )
        except BaseException:
            for payload in payloads.values():
                payload.close()
            raise
        state.cookies.set_cookie_header(request)
        if self._record is not None:
            request.stream = _Tee(cast(httpx.AsyncByteStream, request.stream), RECORDED_BODY)
        return _Prepared(str(request.url), payloads, request=request)

    def _headers(self, spec: RequestSpec, text: Callable[[str], str]) -> list[tuple[str, str]]:
        """The check's headers and auth, replaced by the step's own of the same name (any case);
        the step's are kept as written, even two that differ only in case."""
        try:  # a step's own auth or Authorization header replaces the check's
            common = [(text(key), text(value)) for key, value in self._settings.headers.items()]
            if self._settings.auth is not None:
                common.append(("Authorization", authorization(self._settings.auth, text)))
            own = [(text(key), text(value)) for key, value in spec.headers.items()]
            if spec.auth is not None:
                own.append(("Authorization", authorization(spec.auth, text)))
        except AuthError as error:
            raise _StepFailed(str(error)) from None
        replaced = {name.lower() for name, _ in own}
        kept: dict[str, tuple[str, str]] = {}
        for name, value in common:
            if name.lower() not in replaced:
                kept[name.lower()] = (name, value)
        return [*kept.values(), *own]

    def _body(
        self,
        state: IterationState,
        step: Step,
        text: Callable[[str], str],
        payloads: dict[str | None, Payload],
    ) -> dict[str, Any]:
        """httpx's arguments for a `json`, `form`, `multipart` or text body (a body file: none)."""
        spec = step.request
        arguments: dict[str, Any] = {}
        if spec.has_json:
            arguments["json"] = render_value(spec.json_body, state.variables, self._expand)
        elif spec.form is not None:
            arguments["data"] = {
                text(key): [_field_text(item, text) for item in value]
                if isinstance(value, list)
                else _field_text(value, text)
                for key, value in spec.form.items()
            }
        elif spec.multipart is not None:
            files: list[tuple[str, Any]] = []
            for key, value in spec.multipart.items():
                if isinstance(value, BodySource):
                    payload = self._payload(value, state, step, key)
                    payloads[key] = payload
                    filename = self._filename(value, key, payload, text)
                    content_type = value.content_type or _guess_type(filename)
                    files.append((text(key), (filename, cast(IO[bytes], payload), content_type)))
                else:
                    for item in value if isinstance(value, list) else [value]:
                        files.append((text(key), (None, _field_text(item, text).encode())))
            arguments["files"] = files
        elif isinstance(spec.body, str):
            arguments["content"] = text(spec.body).encode()
            if (step.name, None) in self._hashed[state.journey]:  # a later step compares with it
                state.sent[(step.name, None)] = hashlib.sha256(arguments["content"]).hexdigest()
        return arguments

    def _prepare_raw(
        self,
        state: IterationState,
        step: Step,
        path: str,
        params: list[tuple[str, str]],
        headers: list[tuple[str, str]],
        text: Callable[[str], str],
    ) -> _Prepared:
        """A raw-mode request: the path and headers as written, the body encoded as httpx would."""
        spec = step.request
        target = self._raw_target(path)
        if params:
            target += ("&" if "?" in target else "?") + str(httpx.QueryParams(tuple(params)))
        url = self._raw_client(EXCERPT_BYTES).url(target)
        given = {name.lower() for name, _ in headers}
        added: list[tuple[str, str]] = []
        if "user-agent" not in given:
            added.append(("User-Agent", USER_AGENT))
        try:  # the cookie jar matches on a URL; one httpx cannot parse gets the base URL's cookies
            cookie_request = httpx.Request(spec.method, url)
        except (httpx.InvalidURL, ValueError):
            cookie_request = httpx.Request(spec.method, self._base + "/")
        state.cookies.set_cookie_header(cookie_request)
        if "cookie" in cookie_request.headers and "cookie" not in given:
            added.append(("Cookie", cookie_request.headers["cookie"]))
        payloads: dict[str | None, Payload] = {}
        body: bytes | Iterable[bytes] | None = None
        length: int | None = None
        try:
            if isinstance(spec.body, BodySource):
                payload = self._payload(spec.body, state, step, None)
                payloads[None] = payload
                body, length = _blocks(payload), payload.size
                if "content-type" not in given:
                    added.append(("Content-Type", self._content_type(spec.body, payload, text)))
            else:
                arguments = self._body(state, step, text, payloads)
                if arguments:
                    encoded = httpx.Request(spec.method, self._base + "/", **arguments)
                    if "content-type" in encoded.headers and "content-type" not in given:
                        added.append(("Content-Type", encoded.headers["content-type"]))
                    stream = cast(Iterable[bytes], encoded.stream)
                    if spec.multipart is not None:  # streamed: its files are read as they are sent
                        body, length = stream, int(encoded.headers.get("content-length", 0)) or None
                    else:
                        body = b"".join(stream)
        except BaseException:
            for payload in payloads.values():
                payload.close()
            raise
        kept = _Kept(RECORDED_BODY) if self._record is not None else None
        if kept is not None and body is not None:
            body = kept.add(body) if isinstance(body, bytes) else kept.tee(body)
        chunked = spec.chunked or (body is not None and not isinstance(body, bytes) and length is None)
        request = _RawRequest(
            spec.method,
            target,
            [*((name, value.encode()) for name, value in headers), *((n, v.encode()) for n, v in added)],
            body,
            None if chunked else length,
            chunked,
            spec.expect_continue,
            cookie_request,
            kept,
        )
        return _Prepared(url, payloads, raw=request)

    def _raw_target(self, path: str) -> str:
        """The request-target for a raw step's path: appended to the base URL's path, or the path
        and query of a same-origin URL, with no normalisation either way."""
        base = urlsplit(self._base)
        if path.startswith("/"):
            return base.path + path
        parts = urlsplit(path)
        try:
            origin = (
                parts.scheme,
                parts.hostname,
                parts.port or {"http": 80, "https": 443}.get(parts.scheme),
            )
        except ValueError:
            origin = None
        if not parts.scheme or not parts.netloc:
            raise _StepFailed(
                f"the path {path!r} must start with / (it is appended to the base URL) "
                "or be a URL under the base URL"
            )
        if origin != self._origin:
            raise _StepFailed(
                f"{path} is not under the base URL {self._base}; journeys only send requests there"
            )
        after = path[len(parts.scheme) + 3 + len(parts.netloc) :]
        return after if after.startswith("/") else "/" + after

    def _raw_client(self, keep: int) -> RawClient:
        if keep not in self._raw_clients:
            self._raw_clients[keep] = RawClient(
                self._base,
                timeout=self._settings.request_timeout,
                keep=keep,
                verify_tls=self._settings.verify_tls,
            )
        return self._raw_clients[keep]

    def _url(self, path: str) -> str:
        url = self._base + path if path.startswith("/") else path
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as error:
            raise _StepFailed(f"{url!r} is not a valid URL: {error}") from None
        if not parsed.is_absolute_url:
            raise _StepFailed(
                f"the path {path!r} must start with / (it is appended to the base URL) "
                "or be a URL under the base URL"
            )
        if _origin(parsed) != self._origin:
            raise _StepFailed(
                f"{url} is not under the base URL {self._base}; journeys only send requests there"
            )
        return url

    def _payload(self, source: BodySource, state: IterationState, step: Step, key: str | None) -> Payload:
        if source.generate is not None:
            seed = generated_seed(state.journey, state.number, step.name, key)
            return GeneratedPayload(source.generate, seed)
        assert source.path is not None
        path = self._files[source.path]
        try:
            return FilePayload(path)
        except OSError as error:
            raise _StepFailed(f"cannot read {path}: {error.strerror or error}") from None

    def _content_type(self, source: BodySource, payload: Payload, text: Callable[[str], str]) -> str:
        return source.content_type or _guess_type(self._filename(source, "body", payload, text))

    @staticmethod
    def _filename(source: BodySource, key: str, payload: Payload, text: Callable[[str], str]) -> str:
        if source.filename is not None:
            return text(source.filename)
        if isinstance(payload, FilePayload):
            return payload.path.name
        return f"{key}.bin"

    # -- sending --------------------------------------------------------------------------

    async def _transmit(
        self,
        client: httpx.AsyncClient,
        prepared: _Prepared,
        state: IterationState,
        timeout: float,
        step: Step,
    ) -> tuple[Reply, _Outgoing | None]:
        """Send the request, read the reply; with `record`, also what went out."""
        if prepared.raw is not None:
            return await self._send_raw(prepared.raw, prepared.url, state.cookies, timeout, step)
        assert prepared.request is not None
        reply = await self._send(client, prepared.request, state.cookies, timeout, step)
        outgoing = None
        if isinstance(prepared.request.stream, _Tee):
            request, tee = prepared.request, prepared.request.stream
            outgoing = _Outgoing(
                prepared.url,
                tuple((key.decode("latin-1"), value.decode("latin-1")) for key, value in request.headers.raw),
                bytes(tee.kept.kept),
                tee.kept.size <= RECORDED_BODY,
            )
        return reply, outgoing

    async def _send(
        self,
        client: httpx.AsyncClient,
        request: httpx.Request,
        cookies: httpx.Cookies,
        timeout: float,
        step: Step,
    ) -> Reply:
        keep = MAX_KEPT_BODY if step.needs_body else EXCERPT_BYTES
        try:
            async with asyncio.timeout(timeout):
                response = await client.send(request, stream=True)
                if self._shapes and keep < SHAPE_BODY_BYTES and _is_json(response.headers):
                    keep = SHAPE_BODY_BYTES  # enough of a JSON body to read its shape
                try:
                    digest = hashlib.sha256()
                    kept = bytearray()
                    size = 0
                    async for chunk in response.aiter_bytes():
                        digest.update(chunk)
                        size += len(chunk)
                        if len(kept) < keep:
                            kept += chunk[: keep - len(kept)]
                finally:
                    await response.aclose()
        except (TimeoutError, httpx.TimeoutException):
            raise _StepFailed(f"no complete response within {_seconds(timeout)}", kind="timeout") from None
        except httpx.ConnectError as error:
            raise _StepFailed(
                f"could not connect to {self._base}: {error or 'connection failed'}", kind="connection"
            ) from None
        except httpx.HTTPError as error:
            raise _StepFailed(
                f"{type(error).__name__}: {error or 'the exchange failed'}", kind="connection"
            ) from None
        except OSError as error:  # reading a file to upload
            raise _StepFailed(f"could not send the request body: {error}") from None
        cookies.extract_cookies(response)
        return Reply(
            status=response.status_code,
            headers=response.headers,
            body=bytes(kept),
            size=size,
            sha256=digest.hexdigest(),
            complete=len(kept) == size,
        )

    async def _send_raw(
        self, request: _RawRequest, url: str, cookies: httpx.Cookies, timeout: float, step: Step
    ) -> tuple[Reply, _Outgoing | None]:
        # A body compared by sha256 is kept whole (up to MAX_KEPT_BODY): the raw client does not hash.
        keep = MAX_KEPT_BODY if step.needs_body or step.expect.needs_hash else EXCERPT_BYTES
        try:
            # The raw client bounds the exchange itself; this only guards against it not doing so.
            async with asyncio.timeout(timeout + RAW_TIMEOUT_GRACE):
                response = await self._raw_client(keep).request(
                    request.method,
                    request.target,
                    headers=request.headers,
                    body=request.body,
                    content_length=request.content_length,
                    chunked=request.chunked,
                    expect_continue=request.expect_continue,
                    timeout=timeout,
                )
        except TimeoutError:
            raise _StepFailed(f"no complete response within {_seconds(timeout)}", kind="timeout") from None
        if response.status is None or response.error is not None:
            partial = Reply.from_raw(response) if response.status is not None else None
            error = response.error or "no response"
            if error.startswith("timeout"):
                raise _StepFailed(
                    f"no complete response within {_seconds(timeout)} ({error})", partial, "timeout"
                )
            raise _StepFailed(f"the exchange failed: {error}", partial, "connection")
        reply = Reply.from_raw(response)
        received = httpx.Response(
            response.status,
            headers=[(name.encode("latin-1"), value.encode("latin-1")) for name, value in response.headers],
            request=request.cookie_request,
        )
        cookies.extract_cookies(received)
        outgoing = None
        if request.kept is not None:
            outgoing = _Outgoing(
                url,
                _head_fields(response.sent_head),
                bytes(request.kept.kept),
                request.kept.size <= RECORDED_BODY,
            )
        return reply, outgoing


def _head_fields(head: bytes) -> tuple[tuple[str, str], ...]:
    """The header fields of a request head as sent (the request line left out)."""
    fields = []
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, colon, value = line.partition(":")
        if colon:  # the raw client writes `Name: value`; the value's own spaces are kept
            fields.append((name, value.removeprefix(" ")))
    return tuple(fields)


def _blocks(payload: Payload) -> Iterator[bytes]:
    """A body file read block by block as the raw client sends it (hashed on the way)."""
    payload.seek(0)
    while chunk := payload.read(BLOCK):
        yield chunk


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host, url.port or default


def _field_text(value: Any, text: Callable[[str], str]) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return text(value)
    return str(value)


def _is_json(headers: httpx.Headers) -> bool:
    kind = media_type(headers.get("content-type", ""))
    return kind.endswith(("/json", "+json"))


def _guess_type(filename: str) -> str:
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"
