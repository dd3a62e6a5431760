"""HTTP/1.1 message heads and bodies as the HTTP fault proxy sees them on the wire.

Heads are parsed only for what a proxy needs (method, target, status, body framing, connection
persistence) and forwarded byte for byte. Bodies are copied in bounded pieces with their own framing
(Content-Length, chunked with trailers, or until close), so a 50 MB upload never sits in memory.
"""

from __future__ import annotations

import asyncio
from typing import Final
from urllib.parse import urlsplit

from gonogo.errors import GonogoError

__all__ = [
    "CHUNKED",
    "LENGTH",
    "NO_BODY",
    "UNTIL_CLOSE",
    "HttpProtocolError",
    "RequestHead",
    "ResponseHead",
    "copy_body",
    "discard_body",
    "parse_request_head",
    "parse_response_head",
]

# body framings
NO_BODY: Final = 0
LENGTH: Final = 1
CHUNKED: Final = 2
UNTIL_CLOSE: Final = 3

# bodies up to this size are read whole and written with their head in one send
SMALL_BODY: Final = 64 * 1024
_PIECE: Final = 64 * 1024
_HEX_DIGITS: Final = b"0123456789abcdefABCDEF"


class HttpProtocolError(GonogoError):
    """A malformed HTTP message; the message says what was wrong."""


class RequestHead:
    __slots__ = (
        "close",
        "expect_continue",
        "framing",
        "length",
        "method",
        "path",
        "raw",
        "target",
        "version",
    )

    def __init__(
        self,
        raw: bytes,
        method: str,
        target: str,
        version: str,
        framing: int,
        length: int,
        close: bool,
        expect_continue: bool,
    ) -> None:
        self.raw = raw
        self.method = method
        self.target = target
        self.version = version
        self.framing = framing
        self.length = length
        self.close = close  # the client asked for the connection to end after this exchange
        self.expect_continue = expect_continue
        self.path = _path_of(target)


class ResponseHead:
    __slots__ = ("close", "framing", "length", "raw", "status")

    def __init__(self, raw: bytes, status: int, framing: int, length: int, close: bool) -> None:
        self.raw = raw
        self.status = status
        self.framing = framing
        self.length = length
        self.close = close


def _path_of(target: str) -> str:
    if target.startswith("/"):
        return target.partition("?")[0]
    if "://" in target:  # absolute form: http://host/path?query
        return urlsplit(target).path or "/"
    return target  # "*" (OPTIONS) or an authority


def _split_head(head: bytes) -> tuple[str, list[tuple[bytes, bytes]]]:
    """The start line and the (lower-cased name, value) of every header we care about."""
    lines = head.split(b"\r\n")
    while lines and not lines[0]:  # RFC 9112: ignore empty lines before the request line
        del lines[0]
    if not lines:
        raise HttpProtocolError("empty message head")
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(b":")
        if not sep or not name or name[-1:] in (b" ", b"\t") or name[:1] in (b" ", b"\t"):
            raise HttpProtocolError(f"malformed header line {line[:80]!r}")
        name = name.lower()
        if name in _FRAMING_HEADERS:
            headers.append((name, value.strip()))
    return lines[0].decode("latin-1"), headers


_FRAMING_HEADERS = frozenset((b"content-length", b"transfer-encoding", b"connection", b"expect"))


def _framing(headers: list[tuple[bytes, bytes]]) -> tuple[int, int, bool, set[bytes], bool]:
    """(framing, length, has Transfer-Encoding, Connection tokens, Expect: 100-continue)."""
    length: int | None = None
    codings: list[bytes] = []
    tokens: set[bytes] = set()
    expect = False
    for name, value in headers:
        if name == b"content-length":
            for part in value.split(b","):
                text = part.strip()
                if not text.isdigit():
                    raise HttpProtocolError(f"invalid Content-Length {value[:40]!r}")
                if length is not None and int(text) != length:
                    raise HttpProtocolError("conflicting Content-Length headers")
                length = int(text)
        elif name == b"transfer-encoding":
            codings.extend(c.strip().lower() for c in value.split(b",") if c.strip())
        elif name == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b","))
        elif value.lower() == b"100-continue":
            expect = True
    if codings:
        if length is not None:
            raise HttpProtocolError("both Content-Length and Transfer-Encoding")
        return (CHUNKED if codings[-1] == b"chunked" else UNTIL_CLOSE), 0, True, tokens, expect
    if length is not None:
        return LENGTH, length, False, tokens, expect
    return NO_BODY, 0, False, tokens, expect


def parse_request_head(raw: bytes) -> RequestHead:
    start, headers = _split_head(raw)
    parts = start.split(" ")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise HttpProtocolError(f"malformed request line {start[:80]!r}")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise HttpProtocolError(f"unsupported HTTP version {version[:20]!r}")
    framing, length, chunked_te, tokens, expect = _framing(headers)
    if chunked_te and framing != CHUNKED:
        raise HttpProtocolError("a request's Transfer-Encoding must end with chunked")
    if framing == LENGTH and length == 0:
        framing = NO_BODY
    close = b"close" in tokens or (version == "HTTP/1.0" and b"keep-alive" not in tokens)
    return RequestHead(raw, method, target, version, framing, length, close, expect)


def parse_response_head(raw: bytes, request_method: str) -> ResponseHead:
    start, headers = _split_head(raw)
    version, _, rest = start.partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise HttpProtocolError(f"malformed status line {start[:80]!r}")
    status = int(code)
    framing, length, _, tokens, _ = _framing(headers)
    if request_method == "HEAD" or status < 200 or status in (204, 304):
        framing, length = NO_BODY, 0
    elif framing == NO_BODY:  # neither Content-Length nor Transfer-Encoding: the body ends at close
        framing = UNTIL_CLOSE
    close = b"close" in tokens or (version == "HTTP/1.0" and b"keep-alive" not in tokens)
    return ResponseHead(raw, status, framing, length, close or framing == UNTIL_CLOSE)


async def _send(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(data)
    await writer.drain()


async def copy_body(
    framing: int,
    length: int,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter | None,
    keep: int | None = None,
    first: bytes = b"",
) -> tuple[int, bool]:
    """Copy one body from ``reader`` to ``writer`` (``None``: discard it) in its own framing.

    ``first`` (the message head) is sent with the first piece. With ``keep``, at most that many
    payload bytes are forwarded, cut mid-chunk if need be. Returns (payload bytes forwarded, whether
    the body was cut). Raises ``asyncio.IncompleteReadError`` if the reader ends early and
    ``HttpProtocolError`` on bad chunked framing.
    """
    if framing == NO_BODY:
        if first and writer is not None:
            await _send(writer, first)
        return 0, False
    if framing == LENGTH:
        return await _copy_length(length, reader, writer, keep, first)
    if framing == CHUNKED:
        return await _copy_chunked(reader, writer, keep, first)
    return await _copy_until_close(reader, writer, keep, first)


async def _copy_length(
    length: int,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter | None,
    keep: int | None,
    first: bytes,
) -> tuple[int, bool]:
    wanted = length if keep is None else min(length, keep)
    if wanted <= SMALL_BODY:
        data = await reader.readexactly(wanted) if wanted else b""
        if writer is not None:
            await _send(writer, first + data)
        return wanted, wanted < length
    if first and writer is not None:
        writer.write(first)
    remaining = wanted
    while remaining:
        data = await reader.read(min(remaining, _PIECE))
        if not data:
            raise asyncio.IncompleteReadError(b"", remaining)
        remaining -= len(data)
        if writer is not None:
            await _send(writer, data)
    return wanted, wanted < length


async def _read_line(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readuntil(b"\r\n")
    except asyncio.LimitOverrunError:
        raise HttpProtocolError("chunk header or trailer line too long") from None


async def _copy_chunked(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter | None,
    keep: int | None,
    first: bytes,
) -> tuple[int, bool]:
    sent = 0
    pending = first  # the message head goes out with the first chunk
    while True:
        line = await _read_line(reader)
        size_text = line.partition(b";")[0].strip()
        if not size_text or size_text.strip(_HEX_DIGITS) or len(size_text) > 16:
            raise HttpProtocolError(f"invalid chunk size {size_text[:20]!r}")
        size = int(size_text, 16)
        if size == 0:
            trailer = [pending, line]
            while True:
                field = await _read_line(reader)
                trailer.append(field)
                if field == b"\r\n":
                    break
            if writer is not None:
                await _send(writer, b"".join(trailer))
            return sent, False
        if keep is not None and sent + size > keep:
            # forward the chunk header and only what is left of the allowance: the client sees a short chunk
            remaining = keep - sent
            data = await reader.readexactly(remaining) if remaining else b""
            if writer is not None:
                await _send(writer, pending + line + data)
            return keep, True
        if size <= SMALL_BODY:
            data = await reader.readexactly(size + 2)
            if data[-2:] != b"\r\n":
                raise HttpProtocolError("chunk data not followed by CRLF")
            if writer is not None:  # each chunk at once: a streaming upstream's chunks arrive when sent
                await _send(writer, pending + line + data)
            pending = b""
        else:
            if writer is not None:
                writer.write(pending + line)
            pending = b""
            await _copy_length(size, reader, writer, None, b"")
            if await reader.readexactly(2) != b"\r\n":
                raise HttpProtocolError("chunk data not followed by CRLF")
            if writer is not None:
                writer.write(b"\r\n")
        sent += size


async def _copy_until_close(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter | None,
    keep: int | None,
    first: bytes,
) -> tuple[int, bool]:
    if first and writer is not None:
        writer.write(first)
    sent = 0
    while True:
        data = await reader.read(_PIECE)
        if not data:
            if writer is not None:
                await writer.drain()
            return sent, False
        if keep is not None and sent + len(data) > keep:
            data = data[: keep - sent]
            if writer is not None:
                await _send(writer, data)
            return keep, True
        sent += len(data)
        if writer is not None:
            await _send(writer, data)


async def discard_body(head: RequestHead, reader: asyncio.StreamReader) -> None:
    """Read a request's body and drop it, so the connection can carry the next request."""
    await copy_body(head.framing, head.length, reader, None)
