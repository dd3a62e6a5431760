"""The stand-in dependency: its heuristics and its HTTP behaviour."""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
from collections.abc import Iterator

import pytest

from docservice import enricher
from docservice.enricher import EnricherServer, classify


@pytest.mark.parametrize(
    ("text", "language", "category"),
    [
        ("", "unknown", "empty"),
        ("   \n", "unknown", "empty"),
        ("The cat sat on the mat and it was happy with the day.", "en", "prose"),
        ("Der Hund ist nicht mit den Katzen auf der Straße und das ist gut.", "de", "prose"),
        ("Le chat est dans la maison et les enfants sont pour le jardin.", "fr", "prose"),
        ("def f(x) { return g(x[0]) == h(y); } if (a < b) { c = d; }", "unknown", "code"),
        ("1,2,3,4\n5,6,7,8\n9,10,11,12\n13,14,15,16\n", "unknown", "data"),
        ("\x00\x01\x02\ufffd\ufffd\x03abc", "unknown", "binary"),
    ],
)
def test_classify(text: str, language: str, category: str) -> None:
    result = classify(text)
    assert (result["language"], result["category"]) == (language, category)
    assert 0.0 <= result["confidence"] <= 1.0


def test_fail_rate_is_validated() -> None:
    with pytest.raises(ValueError):
        EnricherServer(("127.0.0.1", 0), fail_rate=1.5)


@pytest.fixture
def server() -> Iterator[EnricherServer]:
    srv = EnricherServer(("127.0.0.1", 0))
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


def request(
    srv: EnricherServer,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, object]]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_health_and_classify_over_http(server: EnricherServer) -> None:
    assert request(server, "GET", "/health") == (200, {"status": "ok"})
    status, body = request(server, "POST", "/classify", json.dumps({"text": "the end of the story"}).encode())
    assert status == 200 and body["language"] == "en"
    assert server.classified == 1


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    [
        ("GET", "/nope", None, 404),
        ("POST", "/nope", b"{}", 404),
        ("POST", "/classify", b"not json", 400),
        ("POST", "/classify", b'{"text": 3}', 400),
        ("POST", "/classify", b'{"other": "x"}', 400),
    ],
)
def test_bad_requests(
    server: EnricherServer, method: str, path: str, body: bytes | None, expected: int
) -> None:
    assert request(server, method, path, body)[0] == expected


def test_length_is_required_and_bounded(server: EnricherServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
    conn.putrequest("POST", "/classify")
    conn.endheaders()
    assert conn.getresponse().status == 411
    conn.close()
    status, _ = request(server, "POST", "/classify", b"", {"Content-Length": str(enricher.MAX_BODY + 1)})
    assert status == 413


def test_injected_failures_and_delay(server: EnricherServer) -> None:
    server.fail_rate = 1.0
    server.delay = 0.01
    status, body = request(server, "POST", "/classify", b'{"text": "x"}')
    assert (status, body) == (503, {"detail": "injected failure"})
    assert server.failed == 1


def test_parse_args_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCSERVICE_ENRICHER_PORT", "9999")
    monkeypatch.setenv("DOCSERVICE_ENRICHER_FAIL_RATE", "0.25")
    args = enricher.parse_args([])
    assert (args.port, args.fail_rate, args.delay, args.host) == (9999, 0.25, 0.0, "127.0.0.1")
    assert enricher.parse_args(["--port", "1234"]).port == 1234


def test_main_serves_until_sigterm() -> None:
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    timer = threading.Timer(0.3, os.kill, args=(os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        assert enricher.main(["--port", "0"]) == 0
    finally:
        timer.cancel()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
