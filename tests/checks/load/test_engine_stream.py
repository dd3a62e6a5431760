"""The engine on a real streaming server (stream_server.py): a stream that outlives the
request's timeout is cut short, its events so far still timed, the first cut ones kept."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

from gonogo.loadgen.engine import KEPT_CUTS, Endpoint, LoadSpec, run_load
from gonogo.loadgen.native import engine
from service_process import free_port, serving

SERVER = Path(__file__).with_name("stream_server.py")


def test_a_stream_that_outlives_its_timeout_is_cut_short(tmp_path: Path) -> None:
    port = free_port()
    with serving(
        [sys.executable, str(SERVER), str(port)], port, tmp_path / "server.log", what="stream server"
    ):
        endpoints = [
            Endpoint("slow", path="/tokens?n=20&every=100", stream="sse"),  # 2 s: over the timeout
            Endpoint("quick", path="/tokens?n=3&every=10", stream="sse"),
            Endpoint("dropped", path="/cut?n=3&every=10", stream="sse"),  # the server drops it
        ]
        spec = LoadSpec("127.0.0.1", port, endpoints, rate=15, duration=0.5, timeout=0.35)
        result = run_load(spec)
    slow, quick, dropped = (result.endpoint(name) for name in ("slow", "quick", "dropped"))
    assert slow.stream is not None and quick.stream is not None
    assert slow.counts.requests == slow.counts.errors["timeout"] == slow.stream.cut > 0
    assert slow.stream.streams == 0 and slow.stream.cut_rate == 1
    # seen before the cut: the first event at once, then one every 100 ms
    assert slow.stream.first_event.get_total_count() == slow.counts.requests
    gaps = slow.stream.between_events
    assert gaps.get_total_count() >= 2 * slow.counts.requests
    assert 100_000 <= gaps.get_value_at_percentile(50) < 150_000
    assert quick.stream.streams == quick.counts.requests and quick.stream.cut == 0
    assert quick.stream.events == 3 * quick.counts.requests and quick.stream.cuts == ()
    # the cut streams are kept as examples: how far each got, and its last bytes
    assert len(slow.stream.cuts) == min(slow.stream.cut, KEPT_CUTS)
    for cut in slow.stream.cuts:
        assert (cut.endpoint, cut.error, cut.status) == ("slow", "timeout", 200)
        assert 1 <= cut.events < 20 and cut.bytes > 0
        assert cut.after_send >= 0.35 and cut.since_last_event is not None
        assert 0 <= cut.since_last_event < cut.after_send and cut.at >= 0
        # the tail: the last event whole (160 bytes at most), where the stream stopped
        assert cut.tail.endswith(f'data: {{"token": {cut.events - 1}}}\n\n'), cut.tail
        assert len(cut.tail.encode()) <= 160
    assert dropped.stream is not None and dropped.stream.cut == dropped.counts.requests > 0
    for cut in dropped.stream.cuts:  # every event received, then the connection went
        assert cut.error in ("closed", "reset") and cut.events == 3, cut
        assert cut.tail == ": keep-alive\n\n" + "".join(f'data: {{"token": {i}}}\n\n' for i in range(3))


def test_the_engine_refuses_a_stream_it_cannot_time() -> None:
    get, head = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"
    base: dict[str, Any] = {"stages": [(1.0, 1.0, 1.0)]}
    for requests, streams, message in (
        ([get], ["websocket"], "an item is None, 'sse', 'chunks' or 'lines'"),
        ([get], [1], "an item is None, 'sse', 'chunks' or 'lines'"),
        ([get], ["sse", None], "one item (None, 'sse', 'chunks' or 'lines') per request"),
        ([head], ["chunks"], "a HEAD request gets no body to stream"),
    ):
        with pytest.raises(ValueError, match=re.escape(message)):
            engine.Engine("127.0.0.1", 9, requests, [1] * len(requests), streams=streams, **base)
    engine.Engine("127.0.0.1", 9, [get, get], [1, 1], streams=[None, "lines"], **base)
