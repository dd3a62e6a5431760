"""A stand-in for a third-party classification API, called by the worker.

    python -m docservice.enricher --port 8001 [--fail-rate 0.2] [--delay 0.05]

`POST /classify` with `{"text": "..."}` answers `{"language", "category", "confidence"}`;
`GET /health` answers `{"status": "ok"}`. Standard library only. `--fail-rate` (or
DOCSERVICE_ENRICHER_FAIL_RATE) makes that fraction of classify calls answer 503 and
`--delay` (DOCSERVICE_ENRICHER_DELAY, seconds) slows every classify call, to exercise
the worker's retries the way a flaky real dependency would.
"""

from __future__ import annotations

__all__ = ["EnricherServer", "classify", "main"]

import argparse
import json
import logging
import os
import random
import re
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

from docservice.config import setup_logging

log = logging.getLogger("docservice.enricher")

MAX_BODY = 1024 * 1024
WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset(["the", "and", "of", "to", "is", "in", "that", "it", "for", "with", "as", "was", "on"]),
    "de": frozenset(["der", "die", "und", "das", "ist", "nicht", "ein", "eine", "zu", "den", "mit", "von"]),
    "fr": frozenset(["le", "la", "les", "et", "est", "des", "une", "un", "du", "que", "dans", "pour", "pas"]),
    "es": frozenset(["el", "la", "los", "las", "es", "del", "que", "en", "un", "una", "por", "con"]),
}
CODE_CHARS = frozenset("{}();=<>[]")


def classify(text: str) -> dict[str, Any]:
    """Guess the language and kind of a text excerpt with cheap heuristics."""
    if not text.strip():
        return {"language": "unknown", "category": "empty", "confidence": 1.0}
    readable = sum(1 for ch in text if (ch.isprintable() or ch.isspace()) and ch != "\ufffd")
    text_ratio = readable / len(text)
    if text_ratio < 0.85:
        return {"language": "unknown", "category": "binary", "confidence": round(1 - text_ratio, 2)}
    words = [word.lower() for word in WORD.findall(text)]
    hits = Counter({lang: sum(1 for word in words if word in stops) for lang, stops in STOPWORDS.items()})
    language, best = hits.most_common(1)[0]
    confidence = round(best / max(1, sum(hits.values())), 2) if best else 0.0
    if not best:
        language = "unknown"
    code_ratio = sum(1 for ch in text if ch in CODE_CHARS) / len(text)
    if code_ratio > 0.03:
        category = "code"
    elif text.count(",") + text.count("\t") > max(8, len(words) // 2):
        category = "data"
    else:
        category = "prose"
    return {"language": language, "category": category, "confidence": confidence}


class EnricherServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        *,
        fail_rate: float = 0.0,
        delay: float = 0.0,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if not 0.0 <= fail_rate <= 1.0:
            raise ValueError("fail_rate must be between 0 and 1")
        super().__init__(address, _Handler)
        self.fail_rate = fail_rate
        self.delay = delay
        self.rng = rng
        self.classified = 0
        self.failed = 0
        self._lock = threading.Lock()

    def count(self, *, failed: bool) -> None:
        with self._lock:
            if failed:
                self.failed += 1
            else:
                self.classified += 1


class _Handler(BaseHTTPRequestHandler):
    server: EnricherServer
    server_version = "docservice-enricher/0.1"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)

    def _send_json(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send_json(HTTPStatus.OK, {"status": "ok"})
        else:
            self._send_json(HTTPStatus.NOT_FOUND, {"detail": "not found"})

    def do_POST(self) -> None:
        if self.path != "/classify":
            self.close_connection = True  # the unread body must not be taken for a request
            self._send_json(HTTPStatus.NOT_FOUND, {"detail": "not found"})
            return
        length_header = self.headers.get("Content-Length")
        if length_header is None or not length_header.isdigit():
            self.close_connection = True
            self._send_json(HTTPStatus.LENGTH_REQUIRED, {"detail": "Content-Length required"})
            return
        length = int(length_header)
        if length > MAX_BODY:
            self.close_connection = True
            self._send_json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"detail": "body too large"})
            return
        try:
            body = json.loads(self.rfile.read(length))
            text = body["text"]
            if not isinstance(text, str):
                raise TypeError("text must be a string")
        except (ValueError, KeyError, TypeError) as exc:
            self._send_json(HTTPStatus.BAD_REQUEST, {"detail": f"expected {{'text': str}}: {exc}"})
            return
        if self.server.delay:
            time.sleep(self.server.delay)
        if self.server.fail_rate and self.server.rng() < self.server.fail_rate:
            self.server.count(failed=True)
            self._send_json(HTTPStatus.SERVICE_UNAVAILABLE, {"detail": "injected failure"})
            return
        self.server.count(failed=False)
        self._send_json(HTTPStatus.OK, classify(text))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(prog="python -m docservice.enricher", description=__doc__)
    parser.add_argument("--host", default=env.get("DOCSERVICE_ENRICHER_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env.get("DOCSERVICE_ENRICHER_PORT", "8001")))
    parser.add_argument(
        "--fail-rate", type=float, default=float(env.get("DOCSERVICE_ENRICHER_FAIL_RATE", "0"))
    )
    parser.add_argument("--delay", type=float, default=float(env.get("DOCSERVICE_ENRICHER_DELAY", "0")))
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging("enricher")
    server = EnricherServer((args.host, args.port), fail_rate=args.fail_rate, delay=args.delay)

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = server.server_address[:2]
    log.info("listening on http://%s:%s (fail_rate=%s delay=%ss)", host, port, args.fail_rate, args.delay)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
    log.info("stopped after %d classifications (%d failed)", server.classified, server.failed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
