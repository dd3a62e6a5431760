"""A tiny LLM-like server for docs/load.md: completions streamed as server-sent events, the
way OpenAI-compatible servers (vLLM, llama.cpp, TGI) answer `"stream": true`.

    python app.py --port 8080 [--prefill-ms 60] [--token-ms 15]

Routes:
  POST /v1/chat/completions {max_tokens, stream}  -> text/event-stream, chunked: after
        `prefill-ms` (the time to first token), `max_tokens` events
        `data: {"choices": [{"delta": {"content": "tok"}}]}` `token-ms` apart, then
        `data: [DONE]`; a `: keep-alive` comment first (no event)
  GET /health                                      -> 200

Keep-alive HTTP/1.1, a thread per connection, standard library only. It exits when its
parent process goes away.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Server(ThreadingHTTPServer):
    daemon_threads = True
    prefill = 0.06
    token = 0.015


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; a stream is a chunked body
    server: Server

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        if self.path != "/health":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        request = json.loads(self.rfile.read(length) or b"{}")
        if self.path != "/v1/chat/completions" or not request.get("stream"):
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._chunk(b": keep-alive\n\n")
        time.sleep(self.server.prefill)
        for i in range(int(request.get("max_tokens", 16))):
            if i:
                time.sleep(self.server.token)
            delta = {"choices": [{"index": 0, "delta": {"content": f"tok{i} "}}]}
            self._chunk(b"data: " + json.dumps(delta).encode() + b"\n\n")
        self._chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))


def _exit_with_parent() -> None:
    parent = os.getppid()
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--prefill-ms", type=float, default=60.0)
    parser.add_argument("--token-ms", type=float, default=15.0)
    args = parser.parse_args()
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    server = Server(("127.0.0.1", args.port), Handler)
    server.prefill, server.token = args.prefill_ms / 1000, args.token_ms / 1000
    server.serve_forever()
