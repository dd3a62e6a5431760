"""A raw HTTP/1.1 client that puts exactly the given bytes on the wire.

The journeys' client (httpx) normalises what it sends: it removes dot segments from paths
(`/files/../x` goes out as `/x`) and refuses some header values (`Bearer ` with its trailing
space). Probes, the authorization matrix and the journeys' raw mode need the opposite: the
request-target, every header and the body sent byte for byte, chunked framing and
`Expect: 100-continue` on demand, a slow body, and the status of a server that answers 413
and closes while the body is still being sent.

Each request opens its own socket (plain, or TLS through `ssl.SSLObject` over memory BIOs)
and runs a sender and a reader side by side. The socket is ours rather than an asyncio
transport's: asyncio streams drop the response they hold when a write fails (the reader
raises the write's error before its buffered data), which is exactly when a server refused
an upload; here the reader keeps reading until the peer closes. The response parser is
lenient on purpose (h11 refuses malformed responses, and a probe wants to see them).
"""

from __future__ import annotations

__all__ = ["RawClient", "RawResponse"]

import asyncio
import contextlib
import shlex
import socket
import ssl
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from gonogo.errors import GonogoError

MAX_HEAD = 256 * 1024  # a response head larger than this is not a response we read
SEND_PIECE = 64 * 1024  # body bytes handed to the socket at once: the sender checks for a response between
CONTINUE_WAIT = 1.0  # how long `Expect: 100-continue` waits for the server's word before sending the body
CURL_INLINE_BODY = 2048  # a larger (or binary) body goes to a file in the reproduction


@dataclass(frozen=True)
class RawResponse:
    """What came back, or why nothing usable did."""

    status: int | None  # None: no parsable response; `error` says why
    reason: str
    headers: tuple[tuple[str, str], ...]  # in order, as received (Set-Cookie may repeat)
    body: bytes  # the first `keep` bytes of the body (de-chunked, not decompressed)
    size: int  # the whole body's size (as far as it was read)
    complete: bool  # `body` is the whole body
    elapsed: float  # seconds from the first byte sent to the response read
    error: str | None  # why the exchange did not end with a whole response: timeout, reset, …
    sent_head: bytes  # the request line and headers exactly as sent
    body_sent: int = 0  # request body bytes handed to the socket (framing excluded)

    def header(self, name: str) -> str | None:
        """The first value of header `name` (any case), or None."""
        values = self.header_values(name)
        return values[0] if values else None

    def header_values(self, name: str) -> list[str]:
        lower = name.lower()
        return [value for key, value in self.headers if key.lower() == lower]

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


class _Closed(GonogoError):
    """The peer closed the connection (or reset it) before the response was whole."""


class _Connection:
    """One socket, plain or TLS, with `send` and `recv` that a sender and a reader task may
    use at the same time."""

    def __init__(self, sock: socket.socket, tls: ssl.SSLObject | None = None) -> None:
        self.sock = sock
        self._loop = asyncio.get_running_loop()
        self._tls = tls
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._flush_lock = asyncio.Lock()

    @classmethod
    async def open(cls, host: str, port: int, context: ssl.SSLContext | None) -> _Connection:
        loop = asyncio.get_running_loop()
        addresses = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        error: OSError = OSError(f"no address for {host}")
        for family, kind, proto, _, address in addresses:
            sock = socket.socket(family, kind, proto)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, address)
            except OSError as failure:
                sock.close()
                error = failure
                continue
            except BaseException:
                sock.close()
                raise
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = cls(sock)
            if context is not None:
                try:
                    await connection._start_tls(context, host)
                except BaseException:
                    sock.close()
                    raise
            return connection
        raise error

    async def _start_tls(self, context: ssl.SSLContext, host: str) -> None:
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_hostname=host)
        while True:
            try:
                self._tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                await self._flush()
                if not await self._pull():
                    raise ssl.SSLError("the server closed the connection during the TLS handshake") from None
        await self._flush()

    async def _flush(self) -> None:
        # TLS records must go out in the order they were made, whichever task made them.
        async with self._flush_lock:
            data = self._outgoing.read()
            if data:
                await self._loop.sock_sendall(self.sock, data)

    async def _pull(self) -> bool:
        data = await self._loop.sock_recv(self.sock, 65536)
        if not data:
            self._incoming.write_eof()
            return False
        self._incoming.write(data)
        return True

    async def send(self, data: bytes) -> None:
        if self._tls is None:
            await self._loop.sock_sendall(self.sock, data)
            return
        self._tls.write(data)
        await self._flush()

    async def recv(self) -> bytes:
        """The next bytes received; b"" at the end of the stream."""
        if self._tls is None:
            return await self._loop.sock_recv(self.sock, 65536)
        while True:
            try:
                return self._tls.read(65536)
            except ssl.SSLWantReadError:
                await self._flush()
                if not await self._pull():
                    return b""
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""

    def close(self) -> None:
        self.sock.close()


class _Exchange:
    """The state the sender and the reader of one request share, and the response parsed so far."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.status: int | None = None
        self.reason = ""
        self.headers: list[tuple[str, str]] = []
        self.body = bytearray()
        self.size = 0
        self.complete = False  # the response (head and framed body) was read whole
        self.problem: str | None = None  # why the reader stopped short
        self.interim = asyncio.Event()  # a 100 Continue (or the final response) arrived
        self.first_sent: float | None = None
        self.finished: float | None = None
        self.body_sent = 0
        self.send_error: str | None = None
        self._buffer = bytearray()

    def take_body(self, data: bytes) -> None:
        room = self.keep - len(self.body)
        if room > 0:
            self.body += data[:room]
        self.size += len(data)

    async def more(self, connection: _Connection) -> None:
        try:
            data = await connection.recv()
        except ConnectionResetError:
            raise _Closed("connection reset by the peer") from None
        except (ssl.SSLError, OSError) as error:
            raise _Closed(f"connection failed while reading: {error}") from None
        if not data:
            raise _Closed("connection closed by the peer")
        self._buffer += data

    async def until(self, connection: _Connection, marker: bytes, limit: int) -> bytes:
        """The buffered bytes up to and including `marker`, reading more as needed."""
        while True:
            index = self._buffer.find(marker)
            if index >= 0:
                end = index + len(marker)
                line = bytes(self._buffer[:end])
                del self._buffer[:end]
                return line
            if len(self._buffer) > limit:
                raise _Closed(f"no end of line within {limit:,} bytes")
            await self.more(connection)

    async def exactly(self, connection: _Connection, count: int) -> None:
        """Read `count` body bytes into the body."""
        while count > 0:
            if not self._buffer:
                await self.more(connection)
            piece = bytes(self._buffer[:count])
            del self._buffer[: len(piece)]
            self.take_body(piece)
            count -= len(piece)

    async def rest(self, connection: _Connection) -> None:
        """Read the body until the peer closes (a response with no framing)."""
        while True:
            if self._buffer:
                self.take_body(bytes(self._buffer))
                self._buffer.clear()
            try:
                await self.more(connection)
            except _Closed:
                return

    async def read(self, connection: _Connection, method: str) -> None:
        """Read the response: interim 1xx responses skipped, then the final one."""
        try:
            while True:
                head = await self.until(connection, b"\r\n\r\n", MAX_HEAD)
                if not self._parse_head(head):
                    return
                assert self.status is not None
                if 100 <= self.status < 200 and self.status != 101:
                    self.interim.set()
                    self.status, self.reason, self.headers = None, "", []
                    continue
                break
            self.interim.set()
            await self._read_body(connection, method)
            self.complete = True
        except _Closed as closed:
            self.problem = str(closed)
        finally:
            self.finished = time.monotonic()
            self.interim.set()

    def _parse_head(self, head: bytes) -> bool:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            self.problem = f"not an HTTP response: {head[:80]!r}"
            return False
        self.status = int(parts[1])
        self.reason = parts[2] if len(parts) > 2 else ""
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if colon:
                self.headers.append((name.strip(), value.strip()))
        return True

    def _header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key.lower() == name), None)

    async def _read_body(self, connection: _Connection, method: str) -> None:
        assert self.status is not None
        if method.upper() == "HEAD" or self.status in (204, 304) or self.status < 200:
            return
        encoding = (self._header("transfer-encoding") or "").lower()
        length = self._header("content-length")
        if encoding.split(",")[-1].strip() == "chunked":
            await self._read_chunks(connection)
        elif length is not None and length.strip().isdigit():
            await self.exactly(connection, int(length.strip()))
        else:
            await self.rest(connection)

    async def _read_chunks(self, connection: _Connection) -> None:
        while True:
            line = await self.until(connection, b"\r\n", 4096)
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise _Closed(f"bad chunk size line {line[:40]!r}") from None
            if size == 0:
                break
            await self.exactly(connection, size)
            await self.until(connection, b"\r\n", 4096)
        # Trailers, up to the empty line; a server that closes instead has still sent the body.
        try:
            while await self.until(connection, b"\r\n", MAX_HEAD) != b"\r\n":
                pass
        except _Closed:
            pass


def _encode(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


def _seconds(value: float) -> str:
    return f"{value:g}s"


class RawClient:
    """Sends exactly the bytes it is given to the base URL's host and port (http, or https with
    TLS verification as configured): no path normalisation, no header validation, one new
    connection per request (`Connection: close` added unless a Connection header is given),
    `Host` added unless given, `Content-Length` added for a bytes body unless given or chunked.

    `timeout` bounds a whole exchange, connection and body upload included.
    """

    def __init__(
        self, base_url: str, *, timeout: float = 10.0, keep: int = 64 * 1024, verify_tls: bool = True
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{base_url!r}: expected an http:// or https:// URL with a host")
        self.base_url = base_url.rstrip("/")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.netloc = parts.netloc.rpartition("@")[2]  # the Host header: no user info
        self.timeout = timeout
        self.keep = keep
        self.verify_tls = verify_tls

    def _tls_context(self) -> ssl.SSLContext | None:
        if self.scheme != "https":
            return None
        context = ssl.create_default_context()
        if not self.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols(["http/1.1"])
        return context

    def _head(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str | bytes]],
        body: bytes | Iterable[bytes] | None,
        content_length: int | None,
        chunked: bool,
        expect_continue: bool,
    ) -> bytes:
        given = {name.lower() for name, _ in headers}
        lines = [f"{method} {target} HTTP/1.1".encode()]
        if "host" not in given:
            lines.append(f"Host: {self.netloc}".encode())
        lines += [name.encode("utf-8") + b": " + _encode(value) for name, value in headers]
        if chunked and "transfer-encoding" not in given:
            lines.append(b"Transfer-Encoding: chunked")
        if not chunked and "content-length" not in given:
            if content_length is not None:
                lines.append(f"Content-Length: {content_length}".encode())
            elif isinstance(body, bytes | bytearray):
                lines.append(f"Content-Length: {len(body)}".encode())
        if expect_continue and "expect" not in given:
            lines.append(b"Expect: 100-continue")
        if "connection" not in given:
            lines.append(b"Connection: close")
        return b"\r\n".join(lines) + b"\r\n\r\n"

    async def request(
        self,
        method: str,
        target: str,
        *,
        headers: Sequence[tuple[str, str | bytes]] = (),
        body: bytes | Iterable[bytes] | None = None,
        content_length: int | None = None,
        chunked: bool = False,
        expect_continue: bool = False,
        body_rate: float | None = None,
        timeout: float | None = None,
    ) -> RawResponse:
        """Send one request and read its response. `body` as an iterable is streamed (give its
        length with `content_length`, or use `chunked`); `body_rate` (bytes per second) sends
        it slowly. Never raises for what the network or the server does: `error` says it."""
        limit = self.timeout if timeout is None else timeout
        head = self._head(method, target, headers, body, content_length, chunked, expect_continue)
        exchange = _Exchange(self.keep)
        started = time.monotonic()
        try:
            connection = await asyncio.wait_for(
                _Connection.open(self.host, self.port, self._tls_context()), limit
            )
        except TimeoutError:
            return self._failed(exchange, head, started, f"timeout after {_seconds(limit)} connecting")
        except ssl.SSLError as error:
            return self._failed(exchange, head, started, f"TLS handshake with {self.netloc} failed: {error}")
        except ConnectionRefusedError:
            return self._failed(exchange, head, started, f"connection refused by {self.netloc}")
        except OSError as error:
            reason = error.strerror or str(error)
            return self._failed(exchange, head, started, f"cannot connect to {self.netloc}: {reason}")
        reader = asyncio.create_task(exchange.read(connection, method))
        sender = asyncio.create_task(
            self._send(connection, exchange, reader, head, body, chunked, expect_continue, body_rate)
        )
        timed_out = False
        try:
            remaining = limit - (time.monotonic() - started)
            done, _ = await asyncio.wait({reader}, timeout=max(0.0, remaining))
            timed_out = not done
        finally:
            for task in (reader, sender):
                task.cancel()
            await asyncio.gather(reader, sender, return_exceptions=True)
            connection.close()
        return self._response(
            exchange, head, started, f"timeout after {_seconds(limit)}" if timed_out else None
        )

    async def _send(
        self,
        connection: _Connection,
        exchange: _Exchange,
        reader: asyncio.Task[None],
        head: bytes,
        body: bytes | Iterable[bytes] | None,
        chunked: bool,
        expect_continue: bool,
        body_rate: float | None,
    ) -> None:
        exchange.first_sent = time.monotonic()
        try:
            await connection.send(head)
            if body is None:
                return
            if expect_continue:
                # The server says 100 (send it) or answers at once (do not); silence means send.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(exchange.interim.wait(), CONTINUE_WAIT)
                if reader.done() or exchange.status is not None:
                    return
            pieces = [body] if isinstance(body, bytes | bytearray) else body
            paced_from = time.monotonic()
            for piece in pieces:
                for part in _split(bytes(piece), body_rate):
                    if reader.done():
                        return  # the server answered already: the rest would not be read
                    if body_rate:
                        await _pace(paced_from, exchange.body_sent, body_rate)
                    await connection.send(b"%x\r\n%b\r\n" % (len(part), part) if chunked else part)
                    exchange.body_sent += len(part)
            if chunked:
                await connection.send(b"0\r\n\r\n")
        except ConnectionResetError:
            exchange.send_error = "connection reset by the peer"
        except BrokenPipeError:
            exchange.send_error = "connection closed by the peer"
        except (ssl.SSLError, OSError) as error:
            exchange.send_error = f"sending failed: {error}"

    def _failed(self, exchange: _Exchange, head: bytes, started: float, error: str) -> RawResponse:
        exchange.problem = error
        return self._response(exchange, head, started, error)

    def _response(self, exchange: _Exchange, head: bytes, started: float, error: str | None) -> RawResponse:
        end = exchange.finished or time.monotonic()
        if error is None and not exchange.complete:
            error = exchange.problem or exchange.send_error or "no response"
            if exchange.body_sent and "body bytes sent" not in error:
                error += f" after {exchange.body_sent:,} body bytes sent"
        return RawResponse(
            status=exchange.status,
            reason=exchange.reason,
            headers=tuple(exchange.headers),
            body=bytes(exchange.body),
            size=exchange.size,
            complete=exchange.complete and exchange.size <= exchange.keep,
            elapsed=end - (exchange.first_sent or started),
            error=error,
            sent_head=head,
            body_sent=exchange.body_sent,
        )

    def url(self, target: str) -> str:
        """The URL a request-target stands for (an absolute target is one already)."""
        if target.startswith(("http://", "https://")):
            return target
        return f"{self.scheme}://{self.netloc}{target if target.startswith('/') else '/'}"

    def curl(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes | None = None,
        *,
        expand: Collection[str] = (),
    ) -> str:
        """A reproduction: `curl -sS -i --path-as-is -X METHOD -H '…' --data-binary '…' 'URL'`
        (shell-quoted; a body over 2 KiB or binary is written as `--data-binary @body.bin` with
        a note). `$NAME` for each NAME in `expand` is left for the shell to fill in
        (`-H 'Authorization: Bearer '"$TOKEN"`), so a reproduction never holds a secret."""
        words = ["curl", "-sS", "-i", "--path-as-is"]
        if self.scheme == "https" and not self.verify_tls:
            words.append("-k")
        words += ["--head"] if method.upper() == "HEAD" else ["-X", method]
        for name, value in headers:
            # curl drops a header given as `Name:` and sends `Name;` as an empty one.
            words += ["-H", f"{name}: {value}" if value else f"{name};"]
        note = ""
        if body is not None:
            inline = len(body) <= CURL_INLINE_BODY and _printable(body)
            words += ["--data-binary", body.decode("utf-8") if inline else "@body.bin"]
            if not inline:
                note = f"  # body.bin: the {len(body):,}-byte request body"
        # A target curl would refuse or rewrite as a URL (`*`, spaces, non-ASCII) goes as is.
        plain = target.startswith("/") and all(33 <= ord(char) < 127 for char in target)
        if not plain and not target.startswith(("http://", "https://")):
            words += ["--request-target", target]
        words.append(self.url(target) if plain or target.startswith("http") else self.url("/"))
        line = " ".join(_quote(word, expand) for word in words)
        return line + note


def _printable(body: bytes) -> bool:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(char.isprintable() or char in "\r\n\t" for char in text)


def _quote(word: str, expand: Collection[str]) -> str:
    quoted = shlex.quote(word)
    names = [name for name in expand if f"${name}" in word]
    for name in names:
        # Out of the single quotes around the variable, so that the shell fills it in.
        quoted = quoted.replace(f"${name}", f"'\"${name}\"'")
    # shlex only makes `''` as an empty string next to another: dropping it changes nothing.
    return quoted.replace("''", "") if names else quoted


def _split(piece: bytes, body_rate: float | None) -> Iterable[bytes]:
    size = SEND_PIECE if not body_rate else max(1, min(SEND_PIECE, int(body_rate / 10)))
    for start in range(0, len(piece), size):
        yield piece[start : start + size]


async def _pace(started: float, sent: int, rate: float) -> None:
    """Sleep until `sent` bytes are due at `rate` bytes per second since `started`."""
    due = started + sent / rate
    delay = due - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
