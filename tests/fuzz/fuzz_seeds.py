"""The seed corpus of the response-parser fuzzer, and what the parser must make of each seed.

    python tests/fuzz/fuzz_seeds.py DIR    # writes the seeds into DIR (tests/fuzz/corpus is made so)

An input is: the configuration (byte 0, see CONFIGS in parser_fuzz.c), flags (byte 1: bit 0
warm-up, bits 1-7 the program step of the first response), two bytes seeding the split points,
then what the server sends. EXPECTED is the transcript parser_fuzz prints for a seed: each
response's status (":kind" when judged a failure), "protocol" for an unparseable response, a
program's variables, the failures kept as evidence.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

PLAIN, HEAD, EXPECT_JSON, NEEDLE, DEEP_JSON, PROGRAM, STREAMS = range(7)
NEEDLE_TEXT = b"0123456789abcdefghijklmnopqrstuvwxyz-the-needle"


def seed(config: int, stream: bytes, *, step: int = 0, warmup: bool = False, split: int = 0x0101) -> bytes:
    return bytes([config, step << 1 | warmup, split >> 8, split & 0xFF]) + stream


def response(status: str, body: bytes = b"", *headers: str, length: bool = True) -> bytes:
    head = [f"HTTP/1.1 {status}", *headers]
    if length:
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def chunked(status: str, *chunks: bytes, headers: tuple[str, ...] = (), trailer: bytes = b"") -> bytes:
    out = response(status, b"", *headers, "Transfer-Encoding: chunked", length=False)
    for chunk in chunks:
        out += f"{len(chunk):x};ext=1\r\n".encode() + chunk + b"\r\n"
    return out + b"0\r\n" + trailer + b"\r\n"


MAX_HEAD = 64 * 1024  # _engine.c: a longer response header block is a protocol error


def head_of_size(size: int) -> bytes:
    """A 200 response whose header block (its blank line included) is `size` bytes."""
    start, end = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Big: ", b"\r\n\r\n"
    return start + b"y" * (size - len(start) - len(end)) + end


GOOD_JSON = json.dumps(
    {
        "status": "ok",
        "items": [{"id": 7}, {"id": 8, "name": "caf\u00e9 \U0001f600"}],
        "ratio": 0.5,
        "flag": True,
        "none": None,
        "big": 12345678901234567890,
        "neg": -3,
        "off": False,
    }
).encode()
JSON_HEADERS = ("Content-Type: application/json", "X-Id: 1")
# server-sent events: LF, CRLF and CR line ends, comment blocks (no event), a two-line event
SSE = b": hi\n\ndata: a\n\ndata: b\r\n\r\nevent: x\rdata: c\r\r: only a comment\r\n\r\ndata: d\ndata: e\n\n"
NDJSON = b'{"a": 1}\n\n{"b": 2}\r\n{"c": 3}'
LOGIN = b'{"ok": true, "token": "a b\\"\\u00e9/", "note": "id=42", "list": [{"v": 1}, {"v": "last"}]}'

SEEDS: dict[str, bytes] = {
    "plain-content-length": seed(PLAIN, response("200 OK", b"hello")),
    "plain-keep-alive-pipelined": seed(
        PLAIN, response("200 OK", b"one") + response("404 Not Found", b"two") + response("503 Busy")
    ),
    "plain-chunked-trailer": seed(
        PLAIN, chunked("200 OK", b"abc", b"x" * 300, trailer=b"X-Trailer: 1\r\n"), split=0x2222
    ),
    "plain-chunked-bare-lf": seed(
        PLAIN, b"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n" + response("200 OK")
    ),
    "plain-close-delimited": seed(PLAIN, b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nthe body until close"),
    "plain-interim-100": seed(PLAIN, b"HTTP/1.1 100 Continue\r\n\r\n" + response("201 Created", b"{}")),
    "plain-no-body-204-304": seed(
        PLAIN,
        b"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n" + response("304 Not Modified", length=False),
    ),
    "plain-bad-chunk-size": seed(
        PLAIN, response("200 OK", b"", "Transfer-Encoding: chunked", length=False) + b"zz\r\n"
    ),
    "plain-chunk-size-overflow": seed(
        PLAIN, response("200 OK", b"", "Transfer-Encoding: chunked", length=False) + b"1000000000000000\r\n"
    ),
    "plain-bad-content-length": seed(PLAIN, b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n"),
    "plain-upgrade-101": seed(PLAIN, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n"),
    "plain-bad-status-line": seed(PLAIN, b"HTTP/2 200 OK\r\n\r\n"),
    "plain-huge-headers": seed(
        PLAIN,
        b"HTTP/1.1 200 OK\r\n" + b"X-Big: " + b"y" * 70_000 + b"\r\nContent-Length: 0\r\n\r\n",
        split=0x0001,
    ),
    # the limit, the same whether the block comes in one read or in pieces (split=0x0001)
    "plain-head-at-limit": seed(PLAIN, head_of_size(MAX_HEAD), split=0x0001),
    "plain-head-over-limit": seed(PLAIN, head_of_size(MAX_HEAD + 1), split=0x0001),
    "head-length-no-body": seed(
        HEAD,
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nETag: 1\r\nContent-Length: 100\r\n\r\n"
        + b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 100\r\n\r\n",
    ),
    "expect-json-ok": seed(
        EXPECT_JSON, chunked("200 OK", GOOD_JSON[:20], GOOD_JSON[20:], headers=JSON_HEADERS)
    ),
    "expect-json-value": seed(
        EXPECT_JSON, response("201 Created", GOOD_JSON.replace(b'"id": 7', b'"id": 7.5'), *JSON_HEADERS)
    ),
    "expect-json-invalid": seed(
        EXPECT_JSON, response("200 OK", b'{"status": "ok", "x": [1, 2', *JSON_HEADERS)
    ),
    "expect-too-large": seed(
        EXPECT_JSON, response("200 OK", b'{"status": "ok", "pad": "' + b"p" * 600 + b'"}', *JSON_HEADERS)
    ),
    "expect-status-5xx": seed(EXPECT_JSON, response("503 Unavailable", b"busy", "Content-Type: text/plain")),
    "expect-header-value": seed(
        EXPECT_JSON, response("200 OK", GOOD_JSON, "Content-Type: text/html", "X-Id: 1")
    ),
    "expect-header-missing-warmup": seed(
        EXPECT_JSON, response("200 OK", GOOD_JSON, "Content-Type: application/json"), warmup=True
    ),
    "needle-across-chunks": seed(
        NEEDLE,
        chunked("200 OK", b"....." + NEEDLE_TEXT[:20], NEEDLE_TEXT[20:30], NEEDLE_TEXT[30:] + b"..."),
        split=0x0001,
    ),
    "needle-missing-close-delimited": seed(
        NEEDLE, b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + NEEDLE_TEXT[:-1]
    ),
    "deep-json-nesting": seed(DEEP_JSON, response("200 OK", b"[" * 600 + b"]" * 600)),
    "deep-json-path": seed(
        DEEP_JSON,
        response("200 OK", b'{"a": {"b": {"c": {"d": [[0, [9, 1, 2]], 5]}}}, "\\u00e9\\"": "a\\nb"}'),
    ),
    "program-journey": seed(
        PROGRAM,
        response(
            "200 OK",
            LOGIN,
            "Location: /items/42",
            "Set-Cookie: sid=abc; Path=/; HttpOnly",
            "Set-Cookie: gone=1; Max-Age=0",
            "set-cookie: theme=dark",
        )
        + response("200 OK", b"{}", "Set-Cookie: theme=; Max-Age=-1")
        + chunked("200 OK", b"not ", b"ready")
        + response("200 OK", b"", 'ETag: "v1"', "Content-Length: 5", length=False)
        + response("200 OK", LOGIN, "Content-Type: application/json"),
        split=0x0102,
    ),
    "program-extract-fails": seed(
        PROGRAM, response("200 OK", b'{"ok": true}', "Content-Type: application/json"), split=0x0103
    ),
    "program-regex-huge-body": seed(PROGRAM, response("200 OK", b"x" * 3000 + b"done"), step=2),
    # the three stream kinds, one response each: events split over chunks, CRLF split too
    "stream-sse-chunks-lines": seed(
        STREAMS,
        chunked(
            "200 OK", SSE[:9], SSE[9:25], SSE[25:26], SSE[26:], headers=("Content-Type: text/event-stream",)
        )
        + chunked("200 OK", b"t1", b"t2", b"t3")
        + response("200 OK", NDJSON),
        split=0x0001,
    ),
    "stream-sse-unfinished": seed(
        STREAMS,
        response("200 OK", b"", "Transfer-Encoding: chunked", length=False)
        + b"8\r\ndata: a\n\r\n4\r\n\n\r:x",
    ),
}

# What parser_fuzz prints for each seed (after "NAME:").
EXPECTED: dict[str, str] = {
    "plain-content-length": " 200",
    "plain-keep-alive-pipelined": " 200 404 503",
    "plain-chunked-trailer": " 200",
    "plain-chunked-bare-lf": " 200 200",
    "plain-close-delimited": " 200",
    "plain-interim-100": " 201",
    "plain-no-body-204-304": " 204 304",
    "plain-bad-chunk-size": " protocol",
    "plain-chunk-size-overflow": " protocol",
    "plain-bad-content-length": " protocol",
    "plain-upgrade-101": " protocol",
    "plain-bad-status-line": " protocol",
    "plain-huge-headers": " protocol",
    "plain-head-at-limit": " 200",
    "plain-head-over-limit": " protocol",
    "head-length-no-body": (
        ' 200 200:assertion [step 0: 200 assertion header_value#0 0 bytes "" detail "text/html"]'
    ),
    "expect-json-ok": " 200",
    "expect-json-value": " 201:assertion [step 0: 201 assertion json_value#1 ",
    "expect-json-invalid": " 200:assertion [step 0: 200 assertion json_invalid#0 27 bytes",
    "expect-too-large": " 200:assertion [step 0: 200 assertion too_large#0 627 bytes",
    "expect-status-5xx": ' 503:http_5xx [step 0: 503 http_5xx status#0 4 bytes "busy"]',
    "expect-header-value": " 200:assertion [step 0: 200 assertion header_value#0",
    "expect-header-missing-warmup": " 200:assertion",
    "needle-across-chunks": " 200",
    "needle-missing-close-delimited": " 200:assertion",
    "deep-json-nesting": " 200:assertion [step 0: 200 assertion json_invalid#0 1200 bytes",
    "deep-json-path": " 200",
    "program-journey": (
        ' 200 200 200 200 200 token=a b"\\xc3\\xa9/ loc=/items/42 id=42 status=200 sid=ready'
        ' etag="v1" last=last cookie:sid=abc'
    ),
    "program-extract-fails": (
        ' 200:extract sid=none [step 0: 200 assertion extract#0 12 bytes "{"ok": true}"'
        ' detail "extract token: $.token not found"]'
    ),
    "program-regex-huge-body": " 200 sid=done",
    "stream-sse-chunks-lines": (
        f" 200 events=4 bytes={len(SSE)} 200 events=3 bytes=6 200 events=3 bytes={len(NDJSON)}"
    ),
    "stream-sse-unfinished": "",
}


def write(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in SEEDS.items():
        (directory / name).write_bytes(data)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    write(Path(sys.argv[1]))
