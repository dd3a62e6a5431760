"""A streaming test server (Starlette under uvicorn), as LLM servers answer: token streams
with known timing. Run as `python stream_server.py PORT`.

    GET /health                         200
    GET /tokens?n=N&every=MS            SSE: a comment line (a keep-alive, no event), then N
                                        events `data: {"token": i}` MS apart, each sent in two
                                        writes (the event's end arrives on its own)
    GET /stall?n=N&every=MS&first=MS    the same, after a stall of `first` ms before the first event
    GET /cut?n=N&every=MS               N events, then the server drops the connection mid-body
    GET /ndjson?n=N&every=MS            N lines of JSON (application/x-ndjson)
    GET /crlf?n=N&every=MS              SSE with CRLF line ends: before each of the N events a
                                        comment block (no event); each event's blank line sent
                                        apart from its data line
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route


def _numbers(request: Request) -> tuple[int, float, float]:
    query = request.query_params
    every, first = float(query.get("every", "20")) / 1000, float(query.get("first", "0")) / 1000
    return int(query.get("n", "5")), every, first


async def _events(n: int, every: float, first: float) -> AsyncIterator[bytes]:
    yield b": keep-alive\n\n"
    await asyncio.sleep(first)
    for i in range(n):
        if i:
            await asyncio.sleep(every)
        yield b'data: {"token": %d}\n' % i
        yield b"\n"


async def health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def tokens(request: Request) -> StreamingResponse:
    n, every, first = _numbers(request)
    return StreamingResponse(_events(n, every, first), media_type="text/event-stream")


async def cut(request: Request) -> StreamingResponse:
    n, every, _ = _numbers(request)

    async def cut_short() -> AsyncIterator[bytes]:
        async for piece in _events(n, every, 0.0):
            yield piece
        await asyncio.sleep(every)
        raise RuntimeError("the stream is cut short on purpose")  # uvicorn drops the connection

    return StreamingResponse(cut_short(), media_type="text/event-stream")


async def ndjson(request: Request) -> StreamingResponse:
    n, every, _ = _numbers(request)

    async def lines() -> AsyncIterator[bytes]:
        for i in range(n):
            if i:
                await asyncio.sleep(every)
            yield b'{"token": %d}\n' % i

    return StreamingResponse(lines(), media_type="application/x-ndjson")


async def crlf(request: Request) -> StreamingResponse:
    n, every, _ = _numbers(request)

    async def events() -> AsyncIterator[bytes]:
        for i in range(n):
            if i:
                await asyncio.sleep(every)
            yield b": ping\r\n\r\n"
            yield b"event: token\r\ndata: %d\r\n" % i
            yield b"\r\n"

    return StreamingResponse(events(), media_type="text/event-stream")


app = Starlette(
    routes=[
        Route("/health", health),
        Route("/tokens", tokens),
        Route("/stall", tokens),
        Route("/cut", cut),
        Route("/ndjson", ndjson),
        Route("/crlf", crlf),
    ]
)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="critical", access_log=False)
