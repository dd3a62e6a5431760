"""Oversized and slow requests: are they refused without the service holding them in memory?

- An oversized body (`body_size`, 50 MB by default; streamed, never held by gonogo) to every
  POST, PUT and PATCH of the journeys and the OpenAPI document, whether or not it declares a
  body (a Swagger 2.0 document often does not), shaped as the operation expects (multipart with
  a file part, a JSON object or a form whose first string field is the filler, raw bytes; a
  JSON object when nothing says), while the resident memory of every process of the watched
  services is sampled. RSS growing by half the body or
  more is high, whatever the status (`dos.body-in-memory`). Otherwise: 413 or the connection
  closed is right; 2xx is right for an upload route (streamed to disk) and low elsewhere; 400 or
  422 is low (`dos.oversized-status`: say 413); a 5xx or no response in time is high.
- An oversized header (`header_size`, 64 KiB by default) on a GET: 431 (or 413, or the
  connection closed) is right; 400 is low; accepted is low; a 5xx or no response is high.
- A slow body (`slow_body`): a 1 MB Content-Length sent at 128 bytes/s for up to 30 s (or what the
  budget has left) to the same operations, at most 8 of them (uploads first), all at once (so
  the window is paid once), with a normal request sent half-way through. The server should
  time each body out (408, or close). Never timed out is medium (`dos.slow-body`, one finding
  naming every operation that did not); if the normal request got no answer meanwhile, a few
  slow clients hold the service and it is high.

Notes say which operations each probe was sent to, and which not and why.

A watched process that is gone after a probe is the service crashing: critical (`dos.crash`).
"""

from __future__ import annotations

__all__ = ["RssWatch", "run_oversized"]

import asyncio
import json
import re
import shlex
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import psutil

from gonogo.checks.security.probes._session import ProbeSession, Sent, outcome
from gonogo.checks.security.probes.surface import Endpoint
from gonogo.checks.security.target import Target

MEMORY_SHARE = 0.5  # RSS growth, as a share of the body, that means the body is held in memory
SAMPLE_EVERY = 0.005  # seconds between RSS samples
SETTLE = 0.5  # seconds of sampling after the response (a handler may still be working)
SLOW_BODY_BYTES = 1_000_000
# Bytes per second: steady enough that no idle timeout fires, far below the minimum rates servers
# enforce (Apache's mod_reqtimeout: 500 B/s; a minimum of 1 KiB/s is common).
SLOW_RATE = 128.0
SLOW_WINDOW = 30.0  # seconds the slow body is kept going at most
SLOW_AT_ONCE = 8  # operations given a slow body at the same time, at most
_NO_BODY = "neither the journeys nor the OpenAPI document have a POST, PUT or PATCH"
PIECE = 64 * 1024
REFUSED = frozenset({408, 413, 431})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
UPLOAD_WORDS = re.compile(r"(?i)upload|file|attachment|import|image|media|blob|content")
BOUNDARY = "gonogo-oversized-7f3a9c"
FIX_MEMORY = (
    "bound what a request may send before reading it: refuse a Content-Length over the limit with 413, "
    "count the bytes of a chunked body as they come, and stream uploads to disk instead of into memory"
)
FIX_STATUS = "refuse a body over the limit with 413 Content Too Large (431 for headers), before reading it"
FIX_HANG = (
    "bound the time and the bytes one request may take: a size limit, and a deadline for reading the body"
)
FIX_SLOW = (
    "give the request body a deadline (a minimum transfer rate, or a total read timeout; a reverse "
    "proxy such as nginx with client_body_timeout), so that a slow client cannot hold a connection forever"
)
FIX_CRASH = "find why the process exited in its log; bound request sizes so that no request can bring it down"


class RssWatch:
    """The resident memory of each watched service (its processes summed), sampled in a thread
    while a probe runs. `stop` gives the largest growth of one service over its level before,
    and which service it was: one service's growth is not added to another's unrelated one."""

    def __init__(self, target: Target) -> None:
        self.processes: dict[str, list[psutil.Process]] = {}
        if target.services is not None:
            for name in target.service_names:
                try:
                    found = target.services.processes(name)
                except Exception:  # a service already gone: its crash is seen by the check
                    continue
                for process in found:
                    try:
                        self.processes.setdefault(name, []).append(psutil.Process(process.pid))
                    except psutil.Error:
                        continue
        self.before: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def available(self) -> bool:
        return any(self.processes.values())

    def rss(self) -> dict[str, int]:
        totals = {}
        for name, processes in self.processes.items():
            total = 0
            for process in processes:
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    continue
            totals[name] = total
        return totals

    def gone(self) -> list[tuple[str, int]]:
        """The watched processes that exited (a zombie not yet reaped has exited too)."""
        return [
            (name, process.pid)
            for name, processes in self.processes.items()
            for process in processes
            if not _alive(process)
        ]

    def forget(self, gone: list[tuple[str, int]]) -> None:
        pids = {pid for _, pid in gone}
        self.processes = {
            name: [process for process in processes if process.pid not in pids]
            for name, processes in self.processes.items()
        }

    def start(self) -> None:
        self.before = self.rss()
        self.peak = dict(self.before)
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, name="gonogo-rss-watch", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY):
            self._record()

    def _record(self) -> None:
        for name, total in self.rss().items():
            self.peak[name] = max(self.peak.get(name, 0), total)

    async def stop(self) -> tuple[int, str]:
        """Sample a little longer, stop, and give the largest growth (bytes) and its service."""
        await asyncio.sleep(SETTLE)
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5)
        self._record()
        growths = {name: max(0, peak - self.before.get(name, peak)) for name, peak in self.peak.items()}
        if not growths:
            return 0, ""
        service = max(growths, key=lambda name: growths[name])
        return growths[service], service


@dataclass(frozen=True)
class _Filler:
    """A body of `size` bytes: `prefix`, filler bytes, `suffix`, streamed piece by piece."""

    prefix: bytes
    suffix: bytes
    size: int
    content_type: str

    @property
    def filler(self) -> int:
        return max(0, self.size - len(self.prefix) - len(self.suffix))

    def pieces(self) -> Iterator[bytes]:
        yield self.prefix
        chunk = b"a" * PIECE
        left = self.filler
        while left > 0:
            yield chunk[: min(left, PIECE)]
            left -= PIECE
        yield self.suffix

    def note(self) -> str:
        return (
            f"{self.size:,} bytes: {self.prefix[:80]!r} + {self.filler:,} bytes of 'a' + {self.suffix[:40]!r}"
        )

    def prelude(self) -> str:
        """A shell command that writes the body to body.bin, for the reproduction."""
        code = (
            f"import sys; sys.stdout.buffer.write({self.prefix!r} + b'a' * {self.filler} + {self.suffix!r})"
        )
        return f"python3 -c {shlex.quote(code)} > body.bin && "


def _filler(endpoint: Endpoint, size: int) -> _Filler:
    # the journey's or the document's media type; a body of unknown type stays raw, and with
    # nothing to go by, a JSON object is what most APIs read
    media = endpoint.media or ("application/octet-stream" if endpoint.body else "application/json")
    if media.startswith("multipart/"):
        field = _file_field(endpoint)
        prefix = (
            f"--{BOUNDARY}\r\n"
            f'Content-Disposition: form-data; name="{field}"; filename="gonogo-oversized.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        return _Filler(
            prefix, f"\r\n--{BOUNDARY}--\r\n".encode(), size, f"multipart/form-data; boundary={BOUNDARY}"
        )
    marker = "\0gonogo-filler\0"
    if "json" in media:
        document = _json_object(endpoint.body)
        key = next((name for name, value in document.items() if isinstance(value, str)), "data")
        text = json.dumps({**document, key: marker})
        before, _, after = text.partition(json.dumps(marker))
        return _Filler((before + '"').encode(), ('"' + after).encode(), size, "application/json")
    if media == "application/x-www-form-urlencoded":
        form = parse_qsl((endpoint.body or b"").decode("utf-8", errors="replace"), keep_blank_values=True)
        index = 0
        if not form:
            form = [("data", "")]
        form[index] = (form[index][0], marker)
        text = urlencode(form, quote_via=quote)
        before, _, after = text.partition(quote(marker, safe=""))
        return _Filler(before.encode(), after.encode(), size, media)
    return _Filler(b"", b"", size, media or "application/octet-stream")


def _file_field(endpoint: Endpoint) -> str:
    """The multipart field the document declares as a file (`format: binary`), else `file`."""
    schema: Any = endpoint.body_schema
    properties = schema.get("properties") if isinstance(schema, Mapping) else None
    if isinstance(properties, Mapping):
        for name, part in properties.items():
            if isinstance(part, dict) and part.get("format") in ("binary", "base64"):
                return str(name)
    return "file"


def _json_object(body: bytes | None) -> dict[str, Any]:
    try:
        document = json.loads(body or b"")
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def _with_content_type(endpoint: Endpoint, filler: _Filler) -> tuple[tuple[str, str], ...]:
    kept = tuple((name, value) for name, value in endpoint.headers if name.lower() != "content-type")
    return (*kept, ("Content-Type", filler.content_type))


def _is_upload(endpoint: Endpoint) -> bool:
    media = endpoint.media or ""
    return (
        bool(UPLOAD_WORDS.search(endpoint.label)) or media.startswith("multipart/") or "octet-stream" in media
    )


def _body_endpoints(endpoints: list[Endpoint]) -> list[Endpoint]:
    """Every operation a body can be sent to: its method takes one, declared or not."""
    return [endpoint for endpoint in endpoints if endpoint.method in BODY_METHODS]


def _labels(endpoints: list[Endpoint]) -> str:
    return ", ".join(endpoint.label for endpoint in endpoints)


async def run_oversized(session: ProbeSession, endpoints: list[Endpoint], *, slow_window: float) -> None:
    watch = RssWatch(session.target)
    if not watch.available:
        session.result.notes.append(
            "oversized: no process of the watched services to sample, so memory growth was not measured; "
            "only the statuses were judged"
        )
    settings = session.settings
    bodies = _body_endpoints(endpoints)
    if settings.oversized:
        what = f"oversized body ({settings.body_size / 1e6:,.1f} MB)"
        if not bodies:
            session.result.notes.append(f"{what}: not tried, {_NO_BODY}")
        sent: list[Endpoint] = []
        for endpoint in bodies:
            if not await _oversized_body(session, endpoint, watch):
                break
            sent.append(endpoint)
        if sent:
            note = f"{what}: sent to {_labels(sent)}"
            if len(sent) < len(bodies):
                note += f"; not to {_labels(bodies[len(sent) :])}: {session.target.budget.exhausted}"
            session.result.notes.append(note)
        if session.stopped or not await _oversized_header(session, endpoints, watch):
            return
    if settings.slow_body:
        await _slow_body(session, bodies, endpoints, watch, slow_window)


async def _oversized_body(session: ProbeSession, endpoint: Endpoint, watch: RssWatch) -> bool:
    size = session.settings.body_size
    filler = _filler(endpoint, size)
    headers = _with_content_type(endpoint, filler)
    shown = Sent(endpoint.method, endpoint.target(), headers)
    reproduction = filler.prelude() + session.curl(shown, body_file=True)
    sent = Sent(endpoint.method, endpoint.target(), headers, None, filler.note(), reproduction=reproduction)
    if watch.available:
        watch.start()
    timeout = max(session.target.request_timeout, 30.0)
    response = await session.send(
        sent,
        endpoint.label,
        payload=True,
        what=f"a {size / 1e6:,.1f} MB body",
        stream=filler.pieces(),
        content_length=size,
        timeout=timeout,
    )
    growth, service = await watch.stop() if watch.available else (0, "")
    if response is None:
        return False
    operation = endpoint.label
    details: dict[str, Any] = {"body_size": size, "rss_growth": growth, "body_sent": response.body_sent}
    said = outcome(response)
    if _crashed(session, watch, sent, operation, response):
        return True
    if growth >= MEMORY_SHARE * size:
        details["service"] = service
        title = (
            f"{operation} holds an oversized body in memory: the RSS of {service} grew by "
            f"{growth / 1e6:,.1f} MB for a {size / 1e6:,.1f} MB body ({said})"
        )
        session.add(
            "dos.body-in-memory", title, "high", "dos", operation, sent, response, FIX_MEMORY, details
        )
    elif response.status is None:
        if response.error and response.error.startswith("timeout"):
            title = f"{operation} gives no response in {timeout:g}s to a {size / 1e6:,.1f} MB body"
            session.add(
                "dos.oversized-hang", title, "high", "dos", operation, sent, response, FIX_HANG, details
            )
        # the connection closed or reset while sending: refused
    elif response.status >= 500:
        title = f"{operation} answers {response.status} to a {size / 1e6:,.1f} MB body"
        session.add(
            "dos.oversized-server-error", title, "high", "dos", operation, sent, response, FIX_STATUS, details
        )
    elif response.status in (400, 422):
        if not endpoint.from_journey and await _small_refused(session, endpoint, response.status):
            return True  # the request made up from the document is refused whatever its size
        title = f"{operation} refuses a {size / 1e6:,.1f} MB body with {response.status}, not 413"
        session.add(
            "dos.oversized-status", title, "low", "dos", operation, sent, response, FIX_STATUS, details
        )
    elif 200 <= response.status < 300 and not _is_upload(endpoint):
        title = f"{operation} accepts a {size / 1e6:,.1f} MB body ({response.status})"
        session.add(
            "dos.oversized-accepted", title, "low", "dos", operation, sent, response, FIX_STATUS, details
        )
    return True


async def _small_refused(session: ProbeSession, endpoint: Endpoint, status: int) -> bool:
    """Whether the same request with a small body is refused with `status` too (its made-up
    values are, not its size)."""
    filler = _filler(endpoint, 0)
    body = filler.prefix + b"gonogo" + filler.suffix
    sent = Sent(endpoint.method, endpoint.target(), _with_content_type(endpoint, filler), body)
    response = await session.send(sent, endpoint.label)
    return response is None or response.status == status


async def _oversized_header(session: ProbeSession, endpoints: list[Endpoint], watch: RssWatch) -> bool:
    size = session.settings.header_size
    endpoint = next((endpoint for endpoint in endpoints if endpoint.method == "GET"), None)
    target, operation = (endpoint.target(), endpoint.label) if endpoint else ("/", "GET /")
    headers = (*(endpoint.headers if endpoint else ()), ("X-Gonogo-Padding", "a" * size))
    shown = Sent("GET", target, (*headers[:-1], ("X-Gonogo-Padding", "$PADDING")))
    prelude = f"PADDING=$(head -c {size} /dev/zero | tr '\\0' a) && "
    reproduction = prelude + session.curl(shown, variables=["PADDING"])
    sent = Sent("GET", target, headers, body_note="", reproduction=reproduction)
    if watch.available:
        watch.start()
    response = await session.send(sent, operation, payload=True, what=f"a {size / 1024:,.0f} KiB header")
    if watch.available:
        await watch.stop()
    if response is None:
        return False
    if _crashed(session, watch, sent, operation, response):
        return True
    details = {"header_size": size}
    what = f"a {size / 1024:,.0f} KiB header"
    if response.status is None:
        if response.error and response.error.startswith("timeout"):
            title = f"{operation} gives no response in time to {what}"
            session.add(
                "dos.oversized-hang", title, "high", "dos", operation, sent, response, FIX_HANG, details
            )
    elif response.status >= 500:
        title = f"{operation} answers {response.status} to {what}"
        session.add(
            "dos.oversized-server-error", title, "high", "dos", operation, sent, response, FIX_STATUS, details
        )
    elif response.status == 400:
        title = f"{operation} refuses {what} with 400, not 431"
        session.add(
            "dos.oversized-status", title, "low", "dos", operation, sent, response, FIX_STATUS, details
        )
    elif response.status not in REFUSED:
        title = f"{operation} accepts {what} ({response.status})"
        session.add(
            "dos.oversized-header-accepted",
            title,
            "low",
            "dos",
            operation,
            sent,
            response,
            FIX_STATUS,
            details,
        )
    return True


async def _slow_body(
    session: ProbeSession,
    bodies: list[Endpoint],
    endpoints: list[Endpoint],
    watch: RssWatch,
    slow_window: float,
) -> None:
    if not bodies:
        session.result.notes.append(f"slow body: not tried, {_NO_BODY}")
        return
    window = min(slow_window, session.target.budget.remaining())
    if window < 2 * session.target.request_timeout:
        session.result.notes.append(f"slow body: not tried, {window:.0f}s of the time budget left")
        return
    chosen = sorted(bodies, key=lambda endpoint: not _is_upload(endpoint))[:SLOW_AT_ONCE]
    slow = [(endpoint, _slow_sent(session, endpoint)) for endpoint in chosen]
    tasks = [
        asyncio.create_task(
            session.send(
                sent,
                endpoint.label,
                payload=True,
                what=f"a slow body ({SLOW_RATE:,.0f} bytes/s)",
                stream=_filler(endpoint, SLOW_BODY_BYTES).pieces(),
                content_length=SLOW_BODY_BYTES,
                body_rate=SLOW_RATE,
                timeout=window,
            )
        )
        for endpoint, sent in slow
    ]
    blocked = await _meanwhile(session, endpoints, tasks, window)
    responses = await asyncio.gather(*tasks)
    note = f"slow body ({window:.0f}s at {SLOW_RATE:,.0f} bytes/s): sent to {_labels(chosen)}, all at once"
    if len(chosen) < len(bodies):
        note += f"; not to {_labels(bodies[len(chosen) :])} (at most {SLOW_AT_ONCE} at once, uploads first)"
    session.result.notes.append(note)
    never = [
        (endpoint, sent, response)
        for (endpoint, sent), response in zip(slow, responses, strict=True)
        if response is not None and response.status is None and (response.error or "").startswith("timeout")
    ]
    answered = [(pair, response) for pair, response in zip(slow, responses, strict=True) if response]
    if answered:
        (endpoint, sent), response = answered[0]
        if _crashed(session, watch, sent, endpoint.label, response):
            return
    if not never:
        return  # every body was timed out (408, or closed) as it should be, or the budget was spent
    endpoint, sent, response = never[0]
    operation = endpoint.label
    others = [other.label for other, _, _ in never[1:]]
    details: dict[str, Any] = {"window": round(window, 1), "body_sent": response.body_sent}
    title = f"{operation} never times out a slow body ({window:.0f}s at {SLOW_RATE:,.0f} bytes/s)"
    if others:
        details["operations"] = [operation, *others]
        named = ", ".join(others[:3]) + (", …" if len(others) > 3 else "")
        title += f", nor do {len(others)} other operation(s) ({named})"
    if blocked:
        details["blocked"] = blocked
        lasting = "the slow body lasts" if len(slow) == 1 else f"{len(slow)} slow bodies last"
        title += f"; while {lasting}, the service answers nothing else ({blocked})"
        session.add("dos.slow-body", title, "high", "dos", operation, sent, response, FIX_SLOW, details)
    else:
        session.add("dos.slow-body", title, "medium", "dos", operation, sent, response, FIX_SLOW, details)


def _slow_sent(session: ProbeSession, endpoint: Endpoint) -> Sent:
    filler = _filler(endpoint, SLOW_BODY_BYTES)
    headers = _with_content_type(endpoint, filler)
    shown = Sent(endpoint.method, endpoint.target(), headers)
    reproduction = filler.prelude() + session.curl(
        shown, body_file=True, options=["--limit-rate", f"{SLOW_RATE:.0f}"]
    )
    note = f"{filler.note()}, sent at {SLOW_RATE:,.0f} bytes/s"
    return Sent(endpoint.method, endpoint.target(), headers, None, note, reproduction=reproduction)


async def _meanwhile(
    session: ProbeSession, endpoints: list[Endpoint], slow: list[asyncio.Task[Any]], window: float
) -> str | None:
    """Half-way through the slow bodies, a normal GET: what went wrong with it, if anything."""
    _, pending = await asyncio.wait(slow, timeout=window / 2)
    if not pending:
        return None  # every slow body ended (refused, timed out) before
    endpoint = next((endpoint for endpoint in endpoints if endpoint.method == "GET"), None)
    target, operation = (endpoint.target(), endpoint.label) if endpoint else ("/", "GET /")
    started = time.monotonic()
    response = await session.send(Sent("GET", target, endpoint.headers if endpoint else ()), operation)
    if response is None or response.status is not None:
        return None
    waited = time.monotonic() - started
    return f"{operation} got no response in {waited:.1f}s: {response.error}"


def _crashed(session: ProbeSession, watch: RssWatch, sent: Sent, operation: str, response: Any) -> bool:
    gone = watch.gone() if watch.available else []
    if not gone:
        return False
    processes = ", ".join(f"{name} (pid {pid})" for name, pid in gone)
    title = f"the service process exited on a request to {operation}: {processes}"
    details = {"exited": [{"service": name, "pid": pid} for name, pid in gone]}
    session.add("dos.crash", title, "critical", "dos", operation, sent, response, FIX_CRASH, details)
    watch.forget(gone)
    return True


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
