"""The Toxiproxy 2.x HTTP API of the fault proxy, served on the proxy's own event loop.

Same paths, JSON shapes, status codes and error bodies (``{"error": "...", "status": 404}``) as
Toxiproxy 2.x, so unmodified Toxiproxy clients drive it. One gonogo extension:
``GET /proxies/{name}/stats`` returns connection, byte and per-toxic counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote, urlsplit

from gonogo.errors import GonogoError
from gonogo.faults.addresses import AddressError
from gonogo.faults.proxy import ProxyState, Registry
from gonogo.faults.toxics import ToxicError, parse_toxic, update_toxic

__all__ = ["TOXIPROXY_VERSION", "ApiError", "handle_http", "route"]

# the Toxiproxy version whose API this implements
TOXIPROXY_VERSION = "2.9.0-gonogo"

_MAX_BODY = 1024 * 1024


class ApiError(GonogoError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _decode(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "bad request body") from None
    if not isinstance(value, dict):
        raise ApiError(400, "bad request body")
    return value


def _proxy(registry: Registry, name: str) -> ProxyState:
    proxy = registry.proxies.get(name)
    if proxy is None:
        raise ApiError(404, "proxy not found")
    return proxy


def _optional(body: dict[str, Any], key: str, kind: type) -> Any:
    value = body.get(key)
    if value is not None and not isinstance(value, kind):
        raise ApiError(400, f"{key} must be a {kind.__name__}")
    return value


async def route(registry: Registry, method: str, path: str, body: bytes) -> tuple[int, Any]:
    """(HTTP status, JSON-able response or None) for one API request."""
    parts = [unquote(p) for p in path.strip("/").split("/")]
    try:
        return await _route(registry, method, parts, body)
    except (AddressError, ToxicError) as exc:
        raise ApiError(400, str(exc)) from None


async def _route(registry: Registry, method: str, parts: list[str], body: bytes) -> tuple[int, Any]:
    match parts, method:
        case ["version"], "GET":
            return 200, {"version": TOXIPROXY_VERSION}
        case ["reset"], "POST":
            await registry.reset()
            return 204, None
        case ["proxies"], "GET":
            return 200, {name: p.to_json() for name, p in registry.proxies.items()}
        case ["proxies"], "POST":
            data = _decode(body)
            name = _optional(data, "name", str)
            upstream = _optional(data, "upstream", str)
            if not name:
                raise ApiError(400, "missing required field: name")
            if not upstream:
                raise ApiError(400, "missing required field: upstream")
            if name in registry.proxies:
                raise ApiError(409, "proxy already exists")
            listen = _optional(data, "listen", str) or "127.0.0.1:0"
            enabled = _optional(data, "enabled", bool)
            try:
                proxy = await registry.create(name, listen, upstream, True if enabled is None else enabled)
            except OSError as exc:
                raise ApiError(500, f"listen {listen}: {exc.strerror or exc}") from None
            return 201, proxy.to_json()
        case ["proxies", name], "GET":
            return 200, _proxy(registry, name).to_json()
        case ["proxies", name], "POST" | "PATCH":
            proxy = _proxy(registry, name)
            data = _decode(body)
            try:
                await registry.update(
                    proxy,
                    listen=_optional(data, "listen", str),
                    upstream=_optional(data, "upstream", str),
                    enabled=_optional(data, "enabled", bool),
                )
            except OSError as exc:
                raise ApiError(500, f"listen: {exc.strerror or exc}") from None
            return 200, proxy.to_json()
        case ["proxies", name], "DELETE":
            await registry.delete(_proxy(registry, name))
            return 204, None
        case ["proxies", name, "stats"], "GET":
            return 200, _proxy(registry, name).stats()
        case ["proxies", name, "toxics"], "GET":
            return 200, [t.to_json() for t in _proxy(registry, name).toxics]
        case ["proxies", name, "toxics"], "POST":
            proxy = _proxy(registry, name)
            toxic = parse_toxic(_decode(body))
            if proxy.find_toxic(toxic.name) is not None:
                raise ApiError(409, "toxic already exists")
            proxy.add_toxic(toxic)
            return 200, toxic.to_json()
        case ["proxies", name, "toxics", toxic_name], "GET" | "POST" | "PATCH" | "DELETE":
            proxy = _proxy(registry, name)
            found = proxy.find_toxic(toxic_name)
            if found is None:
                raise ApiError(404, "toxic not found")
            if method == "GET":
                return 200, found.to_json()
            if method == "DELETE":
                proxy.remove_toxic(found)
                return 204, None
            update_toxic(found, _decode(body))
            return 200, found.to_json()
        case (
            (
                ["version"]
                | ["reset"]
                | ["proxies"]
                | ["proxies", _]
                | ["proxies", _, _]
                | ["proxies", _, _, _]
            ),
            _,
        ):
            raise ApiError(405, "method not allowed")
    raise ApiError(404, "not found")


def _response(status: int, payload: Any) -> bytes:
    reason = HTTPStatus(status).phrase
    body = b"" if payload is None else json.dumps(payload).encode()
    head = [f"HTTP/1.1 {status} {reason}", "Connection: close", f"Content-Length: {len(body)}"]
    if payload is not None:
        head.append("Content-Type: application/json")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


async def handle_http(registry: Registry, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Serve one HTTP/1.1 request (``Connection: close``) on an accepted API connection."""
    try:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=30)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            return
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, _version = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if line:
                    key, _, value = line.partition(":")
                    headers[key.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if not 0 <= length <= _MAX_BODY or "chunked" in headers.get("transfer-encoding", ""):
                raise ValueError
        except ValueError:
            writer.write(_response(400, {"error": "bad request", "status": 400}))
            await writer.drain()
            return
        body = await reader.readexactly(length) if length else b""
        try:
            status, payload = await route(registry, method.upper(), urlsplit(target).path, body)
        except ApiError as exc:
            status, payload = exc.status, {"error": exc.message, "status": exc.status}
        writer.write(_response(status, payload))
        await writer.drain()
    except (ConnectionError, OSError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()
