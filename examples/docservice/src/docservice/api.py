"""The docservice HTTP API (FastAPI, served by uvicorn).

    python -m docservice.api --port 8000 --db data/docservice.db --storage data/files

Every flag has an environment variable (DOCSERVICE_PORT, DOCSERVICE_DB, ...; see
`--help`). Users register and log in for a bearer token; documents are uploaded as
multipart (`file`, optional `title`), streamed to disk, and queued for the worker.

An upload is acknowledged (201) only once its file is fsynced and its row committed. The
database not answering is a 503, a full disk a 507; both pass without a restart. The one
route that calls the external enricher synchronously (`GET /documents/{id}/summary`) has
a deadline and a fallback, so a dead or hanging enricher never holds the API.

What a request may cost is bounded before any route sees it (`RequestLimits`): headers
over 16 KiB are a 431, a body over its limit a 413 (64 KiB, or the upload limit for
`POST /documents`), a body that stops coming or trickles a 408. Validation errors never
echo the input back (it may be a password). The DOCSERVICE_* switches that break the API
on purpose are listed in the README.
"""

from __future__ import annotations

__all__ = ["create_app", "main", "parse_args"]

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import sys
import time
import unicodedata
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, MutableMapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, BinaryIO, Literal, NoReturn, cast
from urllib.parse import quote

import httpx
from fastapi import BackgroundTasks, Depends, FastAPI, HTTPException, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, field_validator
from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from docservice import __version__
from docservice.auth import TokenIssuer, hash_password, normalize_email, valid_email
from docservice.config import ApiSettings, check_database_url, env_flag, setup_logging
from docservice.db import (
    Database,
    DatabaseFull,
    DatabaseUnavailable,
    Document,
    NewDocument,
    StatementFailed,
    User,
)
from docservice.defects import Defects, FlushBeforeReads, Slowdown, WriteBehind
from docservice.monitoring import CONTENT_TYPE, ApiMetrics, DependencyProbe, HealthReport
from docservice.processing import EXCERPT_BYTES
from docservice.storage import Storage, TooLarge, UploadWriter, is_disk_full
from docservice.worker import EnricherClient, EnricherError

log = logging.getLogger("docservice.api")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_TITLE = 200
MAX_FILENAME = 255
MAX_HEADER_BYTES = 16 * 1024  # all the request's header lines together
MAX_BODY_BYTES = 64 * 1024  # any request body but an upload's
UPLOAD_OVERHEAD = 64 * 1024  # an upload's body may exceed its file limit by this much (boundaries, title)
# A request body may take `--body-timeout` seconds plus one second per this many bytes received.
BODY_MIN_RATE = 1024
HELP_DIR = Path(__file__).resolve().parent / "help"
# After an upload goes over the limit, the rest of the body is read and discarded (so the
# client sees the 413 rather than a reset connection), but only up to this much more.
DRAIN_LIMIT = 64 * 1024 * 1024
DOWNLOAD_CHUNK = 256 * 1024
STREAM_TOKENS = 8  # GET /documents/{id}/stream: words streamed, one event each
STREAM_INTERVAL = 0.005  # seconds between two of them
# /health asks the enricher with this deadline, at most once a second (monitoring.DependencyProbe)
HEALTH_PROBE_TIMEOUT = 0.5
CONTENT_TYPE_PATTERN = re.compile(r"^[\w.+-]{1,64}/[\w.+-]{1,128}$")
DOCS_PATHS = ("/docs", "/redoc", "/openapi.json")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]
API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
# Swagger UI and ReDoc load their scripts, styles and fonts from CDNs and run an inline script.
DOCS_CSP = (
    b"content-security-policy",
    b"default-src 'none'; script-src 'unsafe-inline' https://cdn.jsdelivr.net; "
    b"style-src 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    b"font-src https://fonts.gstatic.com; img-src data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    b"connect-src 'self'; worker-src blob:; frame-ancestors 'none'",
)


# -- request and response models ---------------------------------------------------------


def _without_controls(text: str) -> str:
    """The text without control characters (PostgreSQL refuses NUL in text)."""
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cc")


class Credentials(BaseModel):
    email: str = Field(max_length=254, examples=["ada@example.test"], json_schema_extra={"format": "email"})
    password: str = Field(min_length=8, max_length=256, examples=["correct horse battery"])


class RegisterRequest(Credentials):
    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        value = normalize_email(value)
        if not valid_email(value):
            raise ValueError("not a valid email address")
        return value


class LoginRequest(BaseModel):
    email: str = Field(max_length=254)
    password: str = Field(max_length=256)


class UserOut(BaseModel):
    id: str
    email: str


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


DocumentStatus = Literal["pending", "processing", "processed", "failed"]


class UploadOut(BaseModel):
    id: str
    status: DocumentStatus
    sha256: str
    size: int
    title: str | None
    filename: str | None
    content_type: str | None


class DocumentOut(UploadOut):
    result: dict[str, Any] | None = Field(description="the worker's processing result, once processed")
    error: str | None = Field(description="why processing failed, or the last retried error")
    attempts: int = Field(description="how many times a worker claimed the job (crashed workers included)")
    processing_runs: int = Field(
        description="how many times a processing result was stored: 1 once processed, more is a duplicate"
    )
    degraded: bool = Field(description="processed without the enricher (it was unavailable)")
    job_status: Literal["queued", "running", "done", "failed"] | None
    created_at: datetime
    updated_at: datetime


class SummaryOut(BaseModel):
    id: str
    language: str
    category: str
    confidence: float
    degraded: bool = Field(description="true when the enricher could not answer in time")
    source: Literal["enricher", "worker_result", "none"] = Field(
        description="enricher: asked just now; worker_result: the classification stored at "
        "processing; none: no classification available"
    )
    reason: str | None = Field(default=None, description="why the answer is degraded")


class DocumentPage(BaseModel):
    items: list[DocumentOut]
    total: int
    limit: int
    offset: int


class Health(BaseModel):
    status: str = Field(
        description="ok; degraded: the enricher does not answer; error: the database does not (503)"
    )
    db: str = Field(description='"ok" or "error: <why>"')
    enricher: str | None = Field(default=None, description='"ok" or "error: <why>"')


class ErrorOut(BaseModel):
    detail: Any


def _iso(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _document_out(doc: Document) -> DocumentOut:
    return DocumentOut(
        id=doc.id,
        status=cast(DocumentStatus, doc.status),  # the table's CHECK constraint holds it
        sha256=doc.sha256,
        size=doc.size,
        title=doc.title,
        filename=doc.filename,
        content_type=doc.content_type,
        result=doc.result,
        error=doc.error,
        attempts=doc.attempts,
        processing_runs=doc.processing_runs,
        degraded=bool(doc.result and doc.result.get("degraded")),
        job_status=cast(Any, doc.job_status),
        created_at=_iso(doc.created_at),
        updated_at=_iso(doc.updated_at),
    )


# -- streaming multipart upload ----------------------------------------------------------


class UploadError(Exception):
    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


class MultipartUpload:
    """Feeds a multipart/form-data body, chunk by chunk, straight into the storage.

    Only the `file` part's bytes go to disk (hashed on the way); `title` is kept in memory
    up to MAX_TITLE characters; other fields are ignored. Nothing is buffered whole.
    """

    def __init__(self, boundary: bytes, storage: Storage, max_bytes: int) -> None:
        self.storage = storage
        self.max_bytes = max_bytes
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
            },
        )
        self.writer: UploadWriter | None = None
        self.file_done = False
        self.filename: str | None = None
        self.content_type: str | None = None
        self.title: bytearray | None = None
        self.too_large = False
        self.error: str | None = None
        self._headers: dict[bytes, bytes] = {}
        self._field = bytearray()
        self._value = bytearray()
        self._part: str | None = None  # "file", "title" or None (ignored)

    # parser callbacks

    def _part_begin(self) -> None:
        self._headers = {}
        self._part = None

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[bytes(self._field).strip().lower()] = bytes(self._value).strip()
        self._field.clear()
        self._value.clear()

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = params.get(b"name", b"").decode("utf-8", errors="replace")
        if name == "file" and self.error is None:
            if self.writer is not None:
                self.error = "only one `file` part is allowed"
                return
            self._part = "file"
            raw_name = params.get(b"filename")
            if raw_name is not None:
                self.filename = _clean_filename(raw_name.decode("utf-8", errors="replace"))
            self.content_type = _clean_content_type(self._headers.get(b"content-type", b"").decode("latin-1"))
            self.writer = self.storage.new_upload(self.max_bytes)
        elif name == "title":
            self._part = "title"
            self.title = bytearray()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._part == "file" and self.writer is not None and not self.too_large:
            try:
                self.writer.write(memoryview(data)[start:end])
            except TooLarge:
                self.too_large = True
        elif self._part == "title" and self.title is not None:
            self.title += data[start:end]
            if len(self.title) > 4 * MAX_TITLE:
                self.error = f"title is longer than {MAX_TITLE} characters"
                self._part = None

    def _part_end(self) -> None:
        if self._part == "file":
            self.file_done = True
        self._part = None

    # driving

    def feed(self, chunk: bytes) -> None:
        if not self.too_large:
            self.parser.write(chunk)

    def finish(self) -> tuple[UploadWriter, str | None]:
        """The completed file and the title; raises UploadError for a bad upload."""
        if self.too_large:
            raise UploadError(413, f"the file is larger than the limit of {self.max_bytes} bytes")
        self.parser.finalize()
        if self.error is not None:
            raise UploadError(422, self.error)
        if self.writer is None or not self.file_done:
            raise UploadError(422, "a multipart `file` part is required")
        title = None
        if self.title is not None:
            title = self.title.decode("utf-8", errors="replace")
            if len(title) > MAX_TITLE:  # as sent, as the OpenAPI document's maxLength counts
                raise UploadError(422, f"title is longer than {MAX_TITLE} characters")
            title = _without_controls(title).strip()
        return self.writer, title or self.filename

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()


def _clean_filename(name: str) -> str | None:
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name[:MAX_FILENAME] or None


def _clean_content_type(value: str) -> str:
    value = value.split(";", 1)[0].strip().lower()
    return value if CONTENT_TYPE_PATTERN.match(value) else "application/octet-stream"


UPLOAD_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "title": {"type": "string", "maxLength": MAX_TITLE},
                    },
                }
            }
        },
    }
}


# -- request limits ----------------------------------------------------------------------


class BodyReader:
    """The request body as the application reads it, within a size limit and a deadline.

    The body may take `timeout` seconds plus one second per BODY_MIN_RATE bytes received:
    a client that stops sending, or trickles a byte at a time, is answered 408 instead of
    holding a request open forever. Once the body is complete, `receive` is passed through
    untouched (a streaming response waits on it for the client to disconnect).
    """

    def __init__(self, receive: Receive, headers: Headers, *, limit: int | None, timeout: float) -> None:
        self._receive = receive
        self.limit = limit
        self.timeout = timeout
        self.expects_continue = headers.get("expect", "").lower() == "100-continue"
        length = headers.get("content-length", "")
        self.declared_size = int(length) if length.isdigit() else None
        self.received = 0
        self.started: float | None = None
        self.complete = False
        self.refusal: HTTPException | None = None

    async def receive(self) -> Message:
        if self.refusal is not None:
            raise self.refusal
        if self.complete:
            return await self._receive()
        if self.started is None:
            self.started = time.monotonic()
            if self.limit is not None and self.declared_size is not None and self.declared_size > self.limit:
                await self._refuse_too_large()
        message = await self._next()
        if self.limit is not None and self.received > self.limit:
            await self._refuse_too_large()
        return message

    async def _next(self) -> Message:
        assert self.started is not None
        allowed = self.started + self.timeout + self.received / BODY_MIN_RATE - time.monotonic()
        try:
            async with asyncio.timeout(max(allowed, 0.001)):
                message = await self._receive()
        except TimeoutError:
            self.refusal = HTTPException(
                status.HTTP_408_REQUEST_TIMEOUT,
                "the request body did not arrive in time",
                headers={"Connection": "close"},
            )
            raise self.refusal from None
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            self.complete = not message.get("more_body", False)
        else:  # http.disconnect
            self.complete = True
        return message

    async def _refuse_too_large(self) -> NoReturn:
        # Read and drop what the client sends anyway, so that it gets to read the answer; a
        # client that asked `Expect: 100-continue` is answered before it sends anything.
        if not self.expects_continue:
            drained = 0
            while not self.complete and drained < DRAIN_LIMIT:
                drained += len((await self._next()).get("body", b""))
        self.refusal = HTTPException(
            413,
            f"the request body is larger than the limit of {self.limit} bytes",
            headers={"Connection": "close"},
        )
        raise self.refusal


class RequestLimits:
    """Pure ASGI middleware bounding what one request may hold before any route sees it.

    Headers over MAX_HEADER_BYTES are answered 431. A body over its limit is answered 413
    (at once when Content-Length says so, else as soon as the count passes it): an upload's
    limit is the file limit plus UPLOAD_OVERHEAD (`upload_limit`, None for no limit), any
    other body's MAX_BODY_BYTES. A slow body is answered 408 (`BodyReader`). Starlette's own
    body limit would not do: it answers before the client has finished sending (which may
    then never read the 413), in plain text, and has no deadline.
    """

    def __init__(self, app: ASGIApp, *, upload_limit: int | None, body_timeout: float) -> None:
        self.app = app
        self.upload_limit = upload_limit
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if sum(len(name) + len(value) + 4 for name, value in scope["headers"]) > MAX_HEADER_BYTES:
            response = JSONResponse(
                {"detail": f"the request headers are larger than {MAX_HEADER_BYTES} bytes"},
                status_code=status.HTTP_431_REQUEST_HEADER_FIELDS_TOO_LARGE,
                headers={"Connection": "close"},
            )
            await response(scope, receive, send)
            return
        is_upload = scope["method"] == "POST" and scope["path"] == "/documents"
        reader = BodyReader(
            receive,
            Headers(scope=scope),
            limit=self.upload_limit if is_upload else MAX_BODY_BYTES,
            timeout=self.body_timeout,
        )
        await self.app(scope, reader.receive, send)


# -- access log, metrics and security headers --------------------------------------------


class AccessLog:
    """Pure ASGI middleware: one log line per request, request metrics for /metrics, and the
    security headers on every response. (Pure ASGI so streaming bodies stay streamed.)"""

    def __init__(
        self,
        app: ASGIApp,
        metrics: ApiMetrics,
        slow_route: str | None = None,
        slow_seconds: float = 0.0,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.slow_route = slow_route  # "METHOD /path": slowed on purpose (DOCSERVICE_SLOW_ROUTE)
        self.slow_seconds = slow_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_code = 500
        path: str = scope["path"]
        is_docs = path.startswith(DOCS_PATHS)

        async def send_with_headers(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
                headers = list(message.get("headers", []))
                headers.extend(SECURITY_HEADERS)
                headers.append(DOCS_CSP if is_docs else API_CSP)
                message["headers"] = headers
            await send(message)

        try:
            if self.slow_route == f"{scope['method']} {path}":
                await asyncio.sleep(self.slow_seconds)
            await self.app(scope, receive, send_with_headers)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            elapsed = time.perf_counter() - started
            self.metrics.observe_request(scope["method"], route, status_code, elapsed)
            log.info(
                '%s "%s %s" %d %.1fms',
                scope["client"][0] if scope.get("client") else "-",
                scope["method"],
                _printable(path),
                status_code,
                elapsed * 1000,
            )


def _printable(text: str) -> str:
    """The text with control characters escaped: a decoded path may hold a newline (`%0a`),
    which must not start a forged log line."""
    return "".join(ch if unicodedata.category(ch) != "Cc" else ascii(ch)[1:-1] for ch in text)


# -- authentication and ownership (dependencies) -----------------------------------------

BEARER = HTTPBearer(auto_error=False, description="a token from POST /login")


def current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
) -> User:
    issuer: TokenIssuer = request.app.state.issuer
    user = issuer.authenticate(credentials.credentials) if credentials else None
    if user is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing, invalid or expired bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def owned_document(doc_id: str, request: Request, user: CurrentUser) -> Document:
    db: Database = request.app.state.db
    settings: ApiSettings = request.app.state.settings
    # DOCSERVICE_NO_OWNER_CHECK=1, broken on purpose: any user's document, by its id
    owner_id = None if settings.no_owner_check else user.id
    doc = db.get_document(doc_id, owner_id=owner_id)
    if doc is None:  # someone else's document is indistinguishable from none
        raise HTTPException(status.HTTP_404_NOT_FOUND, "document not found")
    return doc


OwnedDocument = Annotated[Document, Depends(owned_document)]


def downloadable_document(
    doc_id: str,
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
) -> Document:
    """The caller's document, as `owned_document` (and the same OpenAPI)."""
    settings: ApiSettings = request.app.state.settings
    if not settings.no_auth_check:
        return owned_document(doc_id, request, current_user(request, credentials))
    # DOCSERVICE_NO_AUTH_CHECK=1, broken on purpose: authentication made optional. A valid
    # token still limits the lookup to its user's documents, but a request with no token
    # (or a bad one) gets any document by its id.
    issuer: TokenIssuer = request.app.state.issuer
    user = issuer.authenticate(credentials.credentials) if credentials else None
    doc = request.app.state.db.get_document(doc_id, owner_id=user.id if user else None)
    if doc is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "document not found")
    return cast(Document, doc)


DownloadableDocument = Annotated[Document, Depends(downloadable_document)]


# -- the application ---------------------------------------------------------------------


def _initialize(db: Database) -> bool:
    try:
        db.initialize()
    except DatabaseUnavailable as exc:
        log.warning("%s; answering 503 until it is back", exc)
        return False
    return True


def create_app(settings: ApiSettings) -> FastAPI:
    db = Database(settings.database)
    schema_ready = _initialize(db)
    storage = Storage(settings.storage_dir)
    storage.initialize()
    issuer = TokenIssuer(db, ttl=settings.token_ttl, scrypt_n=settings.scrypt_n)
    metrics = ApiMetrics(db)
    # DOCSERVICE_WRITE_BEHIND=1: uploads acknowledged before they are committed
    write_behind = WriteBehind(settings.flush_interval) if settings.write_behind else None
    # DOCSERVICE_NO_DEPENDENCY_TIMEOUT=1: a blocking client without any timeout
    blocking_enricher = EnricherClient(settings.enricher_url, timeout=None)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # every phase (connect, each read, pool wait) is bounded; the summary route also
        # puts one deadline on the whole call
        async with httpx.AsyncClient(
            base_url=settings.enricher_url, timeout=settings.enricher_timeout, trust_env=False
        ) as client:
            app.state.enricher = client

            async def probe_enricher() -> None:
                try:
                    async with asyncio.timeout(min(settings.enricher_timeout, HEALTH_PROBE_TIMEOUT)):
                        (await client.get("/health")).raise_for_status()
                except TimeoutError:
                    metrics.dependency_failed("enricher")
                    raise TimeoutError(f"no answer within {HEALTH_PROBE_TIMEOUT}s") from None
                except Exception:
                    metrics.dependency_failed("enricher")
                    raise
                metrics.dependency_answered("enricher")

            app.state.enricher_health = DependencyProbe(probe_enricher)
            flusher = asyncio.create_task(write_behind.run(flush_pending)) if write_behind else None
            try:
                yield
            finally:
                if flusher is not None and write_behind is not None:
                    flusher.cancel()
                    await flush_pending()  # a clean stop loses nothing
        db.close()

    async def flush_pending() -> int:
        assert write_behind is not None
        return await run_in_threadpool(write_behind.flush)

    app = FastAPI(
        title="docservice",
        version=__version__,
        description="gonogo's example system under test: users, tokens and documents "
        "processed asynchronously by a worker.",
        lifespan=lifespan,
    )

    @app.exception_handler(DatabaseUnavailable)
    def database_unavailable(request: Request, exc: DatabaseUnavailable) -> JSONResponse:
        log.error("%s %s: %s", request.method, request.url.path, exc)
        metrics.dependency_failed("database")
        return JSONResponse(
            {"detail": "the database is unavailable; try again shortly"},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(DatabaseFull)
    def database_full(request: Request, exc: DatabaseFull) -> JSONResponse:
        log.error("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse(
            {"detail": "insufficient storage: the database's disk is full"},
            status_code=status.HTTP_507_INSUFFICIENT_STORAGE,
        )

    @app.exception_handler(RequestValidationError)
    def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default answer echoes the input, and the input may be a password
        errors = [{"loc": error["loc"], "msg": error["msg"], "type": error["type"]} for error in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
            # Starlette's `Allow` names the methods of the first route on the path only
            # (GET /documents hides POST /documents): name those of every route on it
            allowed = {
                method
                for route in app.routes
                if isinstance(route, APIRoute) and route.path_regex.match(request.url.path)
                for method in route.methods or ()
            }
            exc = StarletteHTTPException(
                exc.status_code, exc.detail, headers={"Allow": ", ".join(sorted(allowed))}
            )
        return await http_exception_handler(request, exc)

    @app.exception_handler(StatementFailed)
    def statement_failed(request: Request, exc: StatementFailed) -> JSONResponse:
        # Only DOCSERVICE_SQL_CONCAT=1 raises this; passing the driver's message on is part
        # of that defect (a careless debugging aid)
        return JSONResponse({"detail": str(exc)}, status_code=500)

    app.add_middleware(
        RequestLimits,
        upload_limit=None if settings.unbounded_upload else settings.max_upload_bytes + UPLOAD_OVERHEAD,
        body_timeout=settings.body_timeout,
    )
    if write_behind is not None:
        app.add_middleware(FlushBeforeReads, write_behind=write_behind)
    app.add_middleware(
        AccessLog, metrics=metrics, slow_route=settings.slow_route, slow_seconds=settings.slow_seconds
    )
    if settings.leak_memory_kib or settings.leak_fds or settings.crash_after:
        # outermost: a crash comes after the access log line of the request that triggered it
        app.add_middleware(
            Defects,
            leak_memory_kib=settings.leak_memory_kib,
            leak_fds=settings.leak_fds,
            crash_after=settings.crash_after,
        )
    if settings.slowdown:
        # outermost: the time it slows by is the whole time the request took
        app.add_middleware(Slowdown, fraction=settings.slowdown)
    app.state.settings = settings
    app.state.db = db
    app.state.storage = storage
    app.state.issuer = issuer
    app.state.metrics = metrics
    app.state.write_behind = write_behind

    Responses = dict[int | str, dict[str, Any]]
    unauthorized: Responses = {401: {"model": ErrorOut, "description": "missing, invalid or expired token"}}
    not_found: Responses = {404: {"model": ErrorOut, "description": "no such document of yours"}}
    # what any route may answer before it runs, or when the database is down
    headers_too_large: Responses = {431: {"model": ErrorOut, "description": "request headers over 16 KiB"}}
    unavailable: Responses = {
        **headers_too_large,
        503: {"model": ErrorOut, "description": "the database is unavailable; try again shortly"},
    }
    # what a route that reads a body may answer
    body_refused: Responses = {
        400: {"model": ErrorOut, "description": "a body that cannot be parsed"},
        408: {"model": ErrorOut, "description": "the body did not arrive in time"},
        413: {"model": ErrorOut, "description": "the body is larger than the limit"},
    }

    @app.get(
        "/health",
        response_model=Health,
        tags=["operations"],
        responses={**headers_too_large, 503: {"model": Health, "description": "not ready"}},
    )
    async def health(request: Request) -> JSONResponse:
        """The database (every time: 503 without it) and the enricher (at most once a second:
        200 `degraded` without it, as the API still serves)."""
        if settings.never_ready:
            return JSONResponse(
                {"status": "unavailable", "db": "not checked (DOCSERVICE_NEVER_READY=1)"},
                status_code=503,
            )
        if settings.lying_health:  # broken on purpose: nothing is checked
            return JSONResponse({"status": "ok", "db": "ok", "enricher": "ok"})
        enricher_health: DependencyProbe = request.app.state.enricher_health
        report = HealthReport(
            database=await run_in_threadpool(database_state), enricher=await enricher_health.state()
        )
        return JSONResponse(report.as_json(), status_code=report.status_code)

    def database_state() -> str:
        nonlocal schema_ready
        try:
            if not schema_ready:  # the database was down when the API started
                db.initialize()
                schema_ready = True
            db.ping()
        except Exception as exc:
            log.error("health check: database error: %s", exc)
            metrics.dependency_failed("database")
            return f"error: {exc}"
        metrics.dependency_answered("database")
        return "ok"

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        tags=["operations"],
        responses=headers_too_large,
    )
    def prometheus_metrics() -> Response:
        """Prometheus text format: the process (memory, fds, CPU), HTTP requests and 5xx
        answers by route, failed dependency calls, dependencies up, documents and jobs by
        status, queue age. Answers while the database is gone (without the queue gauges)."""
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.post(
        "/register",
        status_code=status.HTTP_201_CREATED,
        response_model=UserOut,
        tags=["users"],
        responses={
            **unavailable,
            **body_refused,
            409: {"model": ErrorOut, "description": "email already registered"},
        },
    )
    def register(body: RegisterRequest) -> UserOut:
        if settings.non_ascii_500:
            _log_as_ascii("registering", body.email)
        password_hash = hash_password(body.password, n=settings.scrypt_n)
        user = db.create_user(uuid.uuid4().hex, body.email, password_hash, time.time())
        if user is None:
            raise HTTPException(status.HTTP_409_CONFLICT, "email already registered")
        return UserOut(id=user.id, email=user.email)

    @app.post(
        "/login",
        response_model=TokenOut,
        tags=["users"],
        responses={
            **unavailable,
            **body_refused,
            401: {"model": ErrorOut, "description": "wrong email or password"},
        },
    )
    def login(body: LoginRequest) -> TokenOut:
        # an email with a control character was never registered (and PostgreSQL refuses NUL)
        email_possible = _without_controls(body.email) == body.email
        token = issuer.login(body.email, body.password) if email_possible else None
        if token is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "wrong email or password",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return TokenOut(access_token=token, expires_in=int(settings.token_ttl))

    @app.post(
        "/documents",
        status_code=status.HTTP_201_CREATED,
        response_model=UploadOut,
        tags=["documents"],
        openapi_extra=UPLOAD_OPENAPI,
        responses={
            **unauthorized,
            **headers_too_large,
            400: {"model": ErrorOut, "description": "malformed multipart body"},
            408: {"model": ErrorOut, "description": "the body did not arrive in time"},
            413: {"model": ErrorOut, "description": "file larger than the configured limit"},
            415: {"model": ErrorOut, "description": "not multipart/form-data"},
            422: {"model": ErrorOut, "description": "no `file` part, or an invalid title"},
            503: {"model": ErrorOut, "description": "the database is unavailable; nothing was stored"},
            507: {"model": ErrorOut, "description": "the disk is full; nothing was stored"},
        },
    )
    async def upload_document(request: Request, user: CurrentUser, background: BackgroundTasks) -> UploadOut:
        """Upload a document (multipart `file`, optional `title`); it is streamed to disk
        and queued for processing: poll `GET /documents/{id}` until it is `processed`.

        The 201 comes only after the file is fsynced and the document row committed: an
        acknowledged upload survives a crash of the API right after it."""
        if settings.fail_uploads:
            await _drain(request, DRAIN_LIMIT)
            log.error("upload refused: DOCSERVICE_FAIL_UPLOADS=1")
            raise HTTPException(500, "uploads are failing on purpose (DOCSERVICE_FAIL_UPLOADS=1)")
        if settings.unbounded_upload:
            # Broken on purpose (DOCSERVICE_UNBOUNDED_UPLOAD): the whole body in memory, with
            # no limit, whatever it is, and kept there (as the last upload) after the answer
            request.app.state.last_upload_body = await request.body()
        media_type, params = parse_options_header(request.headers.get("content-type", ""))
        boundary = params.get(b"boundary")
        if media_type != b"multipart/form-data" or not boundary:
            await _drain(request, DRAIN_LIMIT)
            raise HTTPException(
                status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "expected multipart/form-data with a boundary"
            )
        upload = MultipartUpload(
            boundary, storage, sys.maxsize if settings.unbounded_upload else settings.max_upload_bytes
        )
        committed = False
        try:
            if settings.unbounded_upload:
                upload.feed(request.app.state.last_upload_body)
            else:
                drained = 0
                async for chunk in request.stream():
                    if upload.too_large:
                        drained += len(chunk)
                        if drained > DRAIN_LIMIT:
                            break
                        continue
                    upload.feed(chunk)
            writer, title = upload.finish()
            if settings.non_ascii_500 and title:
                _log_as_ascii("uploading", title)
            doc_id = uuid.uuid4().hex
            key = storage.key_for(doc_id)
            new = NewDocument(
                id=doc_id,
                owner_id=user.id,
                title=title,
                filename=upload.filename,
                content_type=upload.content_type,
                size=writer.size,
                sha256=writer.sha256,
                storage_key=key,
            )

            def store() -> None:
                """The file, durably, then the row: a crash in between leaves no row."""
                storage.commit(writer, key)
                try:
                    db.create_document(new, max_attempts=settings.max_attempts, now=time.time())
                except BaseException:
                    storage.delete(key)
                    raise

            if settings.ack_before_commit:
                # Broken on purpose: answer first, store later (a crash meanwhile loses it).
                background.add_task(_store_later, store, writer, settings.ack_delay)
            elif write_behind is not None:
                # Broken on purpose: answer now, commit at the next read or flush.
                write_behind.add(store, writer.abort)
            else:
                await run_in_threadpool(store)
            committed = True
        except UploadError as exc:
            raise HTTPException(exc.status_code, exc.detail) from None
        except ClientDisconnect:
            log.info("upload abandoned: the client disconnected")
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "client disconnected") from None
        except MultipartParseError as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"malformed multipart body: {exc}") from None
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            log.error("upload refused: %s", exc)
            raise HTTPException(
                status.HTTP_507_INSUFFICIENT_STORAGE, "insufficient storage: the disk is full"
            ) from None
        finally:
            if not committed:
                upload.abort()
        return UploadOut(
            id=new.id,
            status="pending",
            sha256=new.sha256,
            size=new.size,
            title=new.title,
            filename=new.filename,
            content_type=new.content_type,
        )

    @app.get(
        "/documents",
        response_model=DocumentPage,
        tags=["documents"],
        responses={**unauthorized, **unavailable},
    )
    def list_documents(
        user: CurrentUser,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
        title: Annotated[
            str | None,
            Query(
                max_length=MAX_TITLE, description="only documents whose title contains this (ignoring case)"
            ),
        ] = None,
    ) -> DocumentPage:
        """The caller's documents, newest first."""
        if title is not None:
            if settings.non_ascii_500:
                _log_as_ascii("searching", title)
            title = title if settings.sql_concat else _without_controls(title)  # titles have none
        docs, total = db.list_documents(
            user.id, limit=limit, offset=offset, title=title, concatenate_title=settings.sql_concat
        )
        return DocumentPage(
            items=[_document_out(doc) for doc in docs], total=total, limit=limit, offset=offset
        )

    @app.get(
        "/documents/{doc_id}",
        response_model=DocumentOut,
        tags=["documents"],
        responses={**unauthorized, **not_found, **unavailable},
    )
    def get_document(doc: OwnedDocument) -> DocumentOut:
        return _document_out(doc)

    @app.get(
        "/documents/{doc_id}/content",
        tags=["documents"],
        response_class=StreamingResponse,
        responses={
            **unauthorized,
            **not_found,
            **unavailable,
            200: {
                "description": "the exact bytes uploaded, with the content type they were uploaded with",
                "content": {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                    "*/*": {"schema": {"type": "string", "format": "binary"}},
                },
            },
        },
    )
    def download_document(doc: DownloadableDocument) -> StreamingResponse:
        try:
            stream = storage.path_for(doc.storage_key).open("rb")
        except FileNotFoundError:  # deleted between the lookup and now
            raise HTTPException(status.HTTP_404_NOT_FOUND, "document not found") from None
        headers = {
            "Content-Length": str(os.fstat(stream.fileno()).st_size),
            "X-Content-SHA256": doc.sha256,
            "Content-Disposition": _content_disposition(doc.filename),
        }
        return StreamingResponse(
            _iter_file(stream),
            media_type=doc.content_type or "application/octet-stream",
            headers=headers,
        )

    @app.get(
        "/documents/{doc_id}/stream",
        tags=["documents"],
        response_class=StreamingResponse,
        responses={
            **unauthorized,
            **not_found,
            **unavailable,
            200: {
                "description": f"server-sent events: the document's first {STREAM_TOKENS} words, one "
                'per event (`data: {"token": WORD}`), then `event: done`',
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
        },
    )
    async def stream_document(doc: OwnedDocument) -> StreamingResponse:
        """The document's first words as a token stream, one every few milliseconds, as an
        LLM server streams a completion (the demo's load check times each event)."""
        excerpt = await run_in_threadpool(_read_excerpt, storage, doc)
        words = excerpt.split()[:STREAM_TOKENS]

        async def events() -> AsyncIterator[bytes]:
            for i, word in enumerate(words):
                if i:
                    await asyncio.sleep(STREAM_INTERVAL)
                yield b"data: " + json.dumps({"token": word}).encode() + b"\n\n"
            yield b"event: done\ndata: {}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")  # Cache-Control: the middleware's

    @app.get(
        "/documents/{doc_id}/summary",
        response_model=SummaryOut,
        tags=["documents"],
        responses={
            **unauthorized,
            **not_found,
            **unavailable,
            502: {"model": ErrorOut, "description": "only with DOCSERVICE_NO_DEPENDENCY_TIMEOUT=1"},
        },
    )
    async def document_summary(doc: OwnedDocument, request: Request) -> SummaryOut:
        """Classify the document now, asking the enricher. When the enricher is down, slow
        or resets the connection, answers anyway within the deadline (`degraded: true`),
        with the classification the worker stored if there is one."""
        if settings.no_dependency_timeout:
            # Broken on purpose: a blocking call with no timeout, right in the event loop.
            try:
                answer = blocking_enricher.classify(_read_excerpt(storage, doc))
            except EnricherError as exc:
                raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(exc)) from None
            return _summary(doc.id, answer, source="enricher")
        excerpt = await run_in_threadpool(_read_excerpt, storage, doc)
        client: httpx.AsyncClient = request.app.state.enricher
        try:
            async with asyncio.timeout(settings.enricher_timeout):
                response = await client.post("/classify", json={"text": excerpt})
            response.raise_for_status()
            answer = response.json()
            if not isinstance(answer, dict):
                raise ValueError("the enricher answered a non-object")
            summary = _summary(doc.id, answer, source="enricher")
            metrics.dependency_answered("enricher")
            return summary
        except TimeoutError:
            reason = f"the enricher did not answer within {settings.enricher_timeout}s"
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            reason = f"the enricher failed: {type(exc).__name__}: {exc}"
        metrics.dependency_failed("enricher")
        log.warning("summary of %s degraded: %s", doc.id, reason)
        stored = doc.result.get("enrichment") if doc.result else None
        if isinstance(stored, dict):
            return _summary(doc.id, stored, source="worker_result", reason=reason)
        return SummaryOut(
            id=doc.id,
            language="unknown",
            category="unknown",
            confidence=0.0,
            degraded=True,
            source="none",
            reason=reason,
        )

    @app.delete(
        "/documents/{doc_id}",
        status_code=status.HTTP_204_NO_CONTENT,
        tags=["documents"],
        responses={**unauthorized, **not_found, **unavailable},
    )
    def delete_document(doc_id: str, user: CurrentUser) -> Response:
        # DOCSERVICE_NO_OWNER_CHECK=1, broken on purpose: anyone's document, by its id
        doc = db.delete_document(doc_id, None if settings.no_owner_check else user.id)
        if doc is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "document not found")
        storage.delete(doc.storage_key)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @app.get(
        "/help/{name:path}",
        tags=["help"],
        response_class=Response,
        responses={
            **headers_too_large,
            200: {"description": "a help page", "content": {"text/markdown": {"schema": {"type": "string"}}}},
            404: {"model": ErrorOut, "description": "no such help page"},
        },
    )
    def help_page(name: str) -> Response:
        """A help page of the service (Markdown): `index.md` lists them."""
        content = _read_help_naively(name) if settings.traversal else _read_help(name)
        if content is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such help page")
        return Response(content, media_type="text/markdown; charset=utf-8")

    return app


def _read_help(name: str) -> bytes | None:
    """The help page's bytes, if `name` is a file inside HELP_DIR once resolved (no `..`,
    absolute path or symlink leads out of it)."""
    root = HELP_DIR.resolve()
    try:
        path = (root / name).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            return None
        return path.read_bytes()
    except (OSError, ValueError):  # a NUL in the name, a name too long
        return None


def _read_help_naively(name: str) -> bytes | None:
    """DOCSERVICE_TRAVERSAL=1, broken on purpose: the name is joined to the folder as given,
    so `../api.py`, `../../../../etc/passwd` or `/etc/passwd` read files outside it."""
    try:
        with open(os.path.join(HELP_DIR, name), "rb") as stream:
            return stream.read()
    except (OSError, ValueError):
        return None


def _log_as_ascii(action: str, value: str) -> None:
    """DOCSERVICE_NON_ASCII_500=1, broken on purpose: the value goes to an ASCII-only audit
    line, encoded without `errors=`, so any non-ASCII character raises (a 500)."""
    log.info("%s %s", action, value.encode("ascii").decode("ascii"))


async def _store_later(store: Callable[[], None], writer: UploadWriter, delay: float) -> None:
    """DOCSERVICE_ACK_BEFORE_COMMIT=1: the deferred store of an already acknowledged upload."""
    await asyncio.sleep(delay)
    try:
        await run_in_threadpool(store)
    except Exception:
        writer.abort()
        log.exception("an acknowledged upload was lost: storing it failed")


def _read_excerpt(storage: Storage, doc: Document) -> str:
    try:
        with storage.path_for(doc.storage_key).open("rb") as stream:
            return stream.read(EXCERPT_BYTES).decode("utf-8", errors="replace")
    except FileNotFoundError:  # deleted between the lookup and now
        raise HTTPException(status.HTTP_404_NOT_FOUND, "document not found") from None


def _summary(doc_id: str, answer: dict[str, Any], *, source: str, reason: str | None = None) -> SummaryOut:
    return SummaryOut(
        id=doc_id,
        language=str(answer["language"]),
        category=str(answer["category"]),
        confidence=float(answer["confidence"]),
        degraded=reason is not None,
        source=cast(Any, source),
        reason=reason,
    )


async def _drain(request: Request, limit: int) -> None:
    """Read and discard up to `limit` bytes of the body, so the client gets our answer."""
    drained = 0
    async for chunk in request.stream():
        drained += len(chunk)
        if drained > limit:
            break


def _iter_file(stream: BinaryIO) -> Iterator[bytes]:
    with stream:
        while chunk := stream.read(DOWNLOAD_CHUNK):
            yield chunk


def _content_disposition(filename: str | None) -> str:
    if not filename:
        return "attachment"
    ascii_name = filename.encode("ascii", errors="replace").decode("ascii").replace('"', "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"


# -- command line ------------------------------------------------------------------------

SECURITY_SWITCHES = {
    "no_owner_check": "any user's document is served by its id (broken object-level authorization)",
    "no_auth_check": "GET /documents/{doc_id}/content needs no token (missing authentication)",
    "sql_concat": "the title filter of GET /documents is concatenated into the SQL (injection)",
    "traversal": "GET /help/{name} reads any file the name leads to (path traversal)",
    "unbounded_upload": "uploads are read whole into memory, with no size limit",
    "non_ascii_500": "a non-ASCII title or email answers 500",
}


def _stability_warnings(settings: ApiSettings) -> list[str]:
    warnings = []
    if settings.leak_memory_kib:
        warnings.append(f"DOCSERVICE_LEAK_MEMORY={settings.leak_memory_kib}: leaks KiB per request")
    if settings.leak_fds:
        warnings.append("DOCSERVICE_LEAK_FDS=1: every request leaks a file descriptor")
    if settings.lying_health:
        warnings.append("DOCSERVICE_LYING_HEALTH=1: /health answers 200 without checking anything")
    if settings.crash_after:
        warnings.append(f"DOCSERVICE_CRASH_AFTER={settings.crash_after}: the API exits after that many")
    if settings.slowdown:
        warnings.append(f"DOCSERVICE_SLOWDOWN={settings.slowdown:g}: every response is that much slower")
    if settings.write_behind:
        warnings.append(
            "DOCSERVICE_WRITE_BEHIND=1: uploads are acknowledged before they are committed"
            f" (at the next read, or within {settings.flush_interval:g}s)"
        )
    return warnings


def parse_args(argv: Sequence[str] | None = None) -> ApiSettings:
    env = os.environ
    parser = argparse.ArgumentParser(prog="python -m docservice.api", description=__doc__)
    parser.add_argument("--host", default=env.get("DOCSERVICE_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env.get("DOCSERVICE_PORT", "8000")))
    parser.add_argument("--db", default=env.get("DOCSERVICE_DB", "data/docservice.db"))
    parser.add_argument(
        "--database-url",
        default=env.get("DOCSERVICE_DATABASE_URL") or None,
        help="postgresql://... to use PostgreSQL instead of the SQLite file --db",
    )
    parser.add_argument("--storage", default=env.get("DOCSERVICE_STORAGE", "data/files"))
    parser.add_argument("--enricher-url", default=env.get("DOCSERVICE_ENRICHER_URL", "http://127.0.0.1:8001"))
    parser.add_argument(
        "--enricher-timeout",
        type=float,
        default=float(env.get("DOCSERVICE_API_ENRICHER_TIMEOUT", "1")),
        help="the summary route's deadline for the enricher, in seconds",
    )
    parser.add_argument(
        "--max-upload-bytes",
        type=int,
        default=int(env.get("DOCSERVICE_MAX_UPLOAD_BYTES", str(100 * 1024 * 1024))),
    )
    parser.add_argument(
        "--body-timeout",
        type=float,
        default=float(env.get("DOCSERVICE_BODY_TIMEOUT", "5")),
        help="a request body may take this many seconds plus one per KiB received, else 408",
    )
    parser.add_argument("--token-ttl", type=float, default=float(env.get("DOCSERVICE_TOKEN_TTL", "3600")))
    parser.add_argument("--max-attempts", type=int, default=int(env.get("DOCSERVICE_MAX_ATTEMPTS", "5")))
    parser.add_argument("--scrypt-n", type=int, default=int(env.get("DOCSERVICE_SCRYPT_N", str(2**14))))
    args = parser.parse_args(argv)
    check_database_url(parser, args.database_url)
    if args.enricher_timeout <= 0:
        parser.error("--enricher-timeout must be positive")
    if args.body_timeout <= 0:
        parser.error("--body-timeout must be positive")
    if float(env.get("DOCSERVICE_FLUSH_INTERVAL", "2")) <= 0:
        parser.error("DOCSERVICE_FLUSH_INTERVAL must be positive")
    slowdown = _fraction(parser, "DOCSERVICE_SLOWDOWN", env)
    return ApiSettings(
        db_path=Path(args.db),
        storage_dir=Path(args.storage),
        database_url=args.database_url,
        enricher_url=args.enricher_url,
        enricher_timeout=args.enricher_timeout,
        host=args.host,
        port=args.port,
        max_upload_bytes=args.max_upload_bytes,
        body_timeout=args.body_timeout,
        token_ttl=args.token_ttl,
        max_attempts=args.max_attempts,
        scrypt_n=args.scrypt_n,
        fail_uploads=env_flag("DOCSERVICE_FAIL_UPLOADS"),
        never_ready=env_flag("DOCSERVICE_NEVER_READY"),
        slow_route=env.get("DOCSERVICE_SLOW_ROUTE") or None,
        slow_seconds=float(env.get("DOCSERVICE_SLOW_SECONDS", "0.5")),
        ack_before_commit=env_flag("DOCSERVICE_ACK_BEFORE_COMMIT"),
        ack_delay=float(env.get("DOCSERVICE_ACK_DELAY", "1.0")),
        no_dependency_timeout=env_flag("DOCSERVICE_NO_DEPENDENCY_TIMEOUT"),
        no_owner_check=env_flag("DOCSERVICE_NO_OWNER_CHECK"),
        no_auth_check=env_flag("DOCSERVICE_NO_AUTH_CHECK"),
        sql_concat=env_flag("DOCSERVICE_SQL_CONCAT"),
        traversal=env_flag("DOCSERVICE_TRAVERSAL"),
        unbounded_upload=env_flag("DOCSERVICE_UNBOUNDED_UPLOAD"),
        non_ascii_500=env_flag("DOCSERVICE_NON_ASCII_500"),
        leak_memory_kib=_count(parser, "DOCSERVICE_LEAK_MEMORY", env, flag_means=64),
        leak_fds=env_flag("DOCSERVICE_LEAK_FDS"),
        lying_health=env_flag("DOCSERVICE_LYING_HEALTH"),
        crash_after=_count(parser, "DOCSERVICE_CRASH_AFTER", env, flag_means=3000),
        write_behind=env_flag("DOCSERVICE_WRITE_BEHIND"),
        flush_interval=float(env.get("DOCSERVICE_FLUSH_INTERVAL", "2")),
        slowdown=slowdown,
    )


def _fraction(parser: argparse.ArgumentParser, name: str, env: Mapping[str, str]) -> float:
    """A switch given as a fraction (`DOCSERVICE_SLOWDOWN=0.2` for 20%); unset or empty is 0."""
    value = env.get(name, "").strip()
    if not value:
        return 0.0
    try:
        fraction = float(value)
    except ValueError:
        fraction = -1.0
    if not 0 <= fraction <= 100:
        parser.error(f"{name} must be a fraction such as 0.2 (20% slower), not {value!r}")
    return fraction


def _count(parser: argparse.ArgumentParser, name: str, env: Mapping[str, str], *, flag_means: int) -> int:
    """A switch given as a count (`DOCSERVICE_CRASH_AFTER=3000`); `true`/`yes`/`on` mean
    `flag_means`, unset or empty means 0 (off)."""
    value = env.get(name, "").strip()
    if value.lower() in {"true", "yes", "on"}:
        return flag_means
    if not value:
        return 0
    if not value.isdigit():
        parser.error(f"{name} must be a whole number (or true), not {value!r}")
    return int(value)


def main(argv: Sequence[str] | None = None) -> int:
    import uvicorn

    settings = parse_args(argv)
    setup_logging("api")
    if settings.fail_uploads:
        log.warning("DOCSERVICE_FAIL_UPLOADS=1: every upload will answer 500")
    if settings.never_ready:
        log.warning("DOCSERVICE_NEVER_READY=1: /health will never answer 200")
    if settings.slow_route:
        log.warning("DOCSERVICE_SLOW_ROUTE: %s is %.3fs slow", settings.slow_route, settings.slow_seconds)
    if settings.ack_before_commit:
        log.warning(
            "DOCSERVICE_ACK_BEFORE_COMMIT=1: uploads are acknowledged %.1fs before they are stored",
            settings.ack_delay,
        )
    if settings.no_dependency_timeout:
        log.warning(
            "DOCSERVICE_NO_DEPENDENCY_TIMEOUT=1: the summary route calls the enricher without a timeout,"
            " blocking the whole API while it hangs"
        )
    for switch, what in SECURITY_SWITCHES.items():
        if getattr(settings, switch):
            log.warning("DOCSERVICE_%s=1: %s", switch.upper(), what)
    for warning in _stability_warnings(settings):
        log.warning("%s", warning)
    app = create_app(settings)
    # uvicorn handles SIGTERM/SIGINT itself (graceful shutdown), then re-raises the signal
    # to the handler that was installed before it: make that a no-op so we exit 0.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: None)
    signal.signal(signal.SIGINT, lambda _signum, _frame: None)
    where = Database(settings.database).describe()
    log.info("listening on http://%s:%d (db=%s)", settings.host, settings.port, where)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
        server_header=False,
        # h11 would answer a header block arriving in pieces past 16 KiB with a bare 400;
        # buffering up to 1 MiB lets RequestLimits give the specific 431
        h11_max_incomplete_event_size=1024 * 1024,
    )
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
