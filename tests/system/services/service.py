"""A configurable stand-in service for the tests of gonogo.system."""

from __future__ import annotations

import argparse
import http.server
import os
import signal
import sys
import threading
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, help="serve HTTP on 127.0.0.1:PORT")
    parser.add_argument("--status", type=int, default=200, help="HTTP status to answer")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before serving")
    parser.add_argument("--lines", type=int, default=0, help="print this many lines first")
    parser.add_argument("--exit", type=int, help="exit with this code after the lines")
    parser.add_argument("--exit-after", type=float, help="exit (code 0) after serving so long")
    parser.add_argument("--exit-code", type=int, default=0, help="the code --exit-after exits with")
    parser.add_argument("--once", type=Path, help="--exit-after only if this file is missing; create it")
    parser.add_argument("--ignore-term", action="store_true", help="ignore SIGTERM")
    parser.add_argument("--touch", type=Path, help="create this file after the delay")
    parser.add_argument("--record", type=Path, help="append NAME and the time to this file")
    parser.add_argument("--name", default="service")
    parser.add_argument(
        "--fork",
        choices=["child", "setsid", "setsid-clean-env"],
        help="start a grandchild: plain, in its own session, or in its own session with an empty environment",
    )
    parser.add_argument("--pidfile", type=Path, help="write the grandchild's pid here")
    args = parser.parse_args()

    print(f"{args.name}: pid {os.getpid()} starting", flush=True)
    if args.record:
        with args.record.open("a") as record:
            record.write(f"{args.name} {time.monotonic()}\n")
    for number in range(args.lines):
        print(f"line {number}", flush=True)
    if args.exit is not None:
        print(f"{args.name}: giving up", file=sys.stderr, flush=True)
        sys.exit(args.exit)
    if args.ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print(f"{args.name}: ignoring SIGTERM", flush=True)
    if args.fork:
        fork_grandchild(args.fork, args.pidfile)
    time.sleep(args.delay)
    if args.touch:
        args.touch.touch()
    if args.exit_after is not None and not (args.once and args.once.exists()):
        if args.once:
            args.once.touch()
        threading.Timer(args.exit_after, lambda: os._exit(args.exit_code)).start()
    if args.port:
        serve(args.port, args.status)
    while True:
        time.sleep(1)


def fork_grandchild(how: str, pidfile: Path | None) -> None:
    pid = os.fork()
    if pid:
        if pidfile:
            pidfile.write_text(str(pid))
        return
    if how.startswith("setsid"):
        os.setsid()
    if how == "setsid-clean-env":
        os.execve("/bin/sleep", ["sleep", "1000"], {})
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # must be killed, not asked
    while True:
        time.sleep(1)


def serve(port: int, status: int) -> None:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"" if status in (204, 304) else b"ok\n"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.HTTPServer(("127.0.0.1", port), Handler)
    print(f"serving on {port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
