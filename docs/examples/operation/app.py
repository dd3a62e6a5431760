"""A tiny item store for docs/operation.md: zero-downtime reloads, and a SQLite file to back up.

    python app.py serve --port 8080 --db data.db --version-file version --pid-file app.pid
    python app.py backup --db data.db --to backup.db
    python app.py restore --db data.db --from backup.db [--lose-last N]

`serve` runs a master process that holds the listening socket and one worker process that
answers on it. SIGHUP is a zero-downtime deploy: the master starts a new worker (which reads
the version file again), waits until it serves, then asks the old one to finish what it has in
flight and exit; connections never stop being accepted. SIGTERM stops both, which is what a
plain restart does: the port is closed until the new master listens.

Routes: GET /health, GET /version ({"version": ...}), POST /items (the body is stored; 201
{"id": n}), GET /items/<id> (the body, or 404), GET /items ({"count": n}). Every request
opens the database anew, so a restored file is what the next request reads.

`restore --lose-last N` is a break-on-purpose switch: it restores the backup without its last
N items, as a backup taken without its write-ahead log would.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import sqlite3
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SCHEMA = "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL)"


@contextlib.contextmanager
def connect(db: Path) -> Iterator[sqlite3.Connection]:
    """A connection of its own for one request, committed and closed at the end."""
    connection = sqlite3.connect(db, timeout=10)
    try:
        with connection:
            connection.execute(SCHEMA)
            yield connection
    finally:
        connection.close()


class Handler(BaseHTTPRequestHandler):
    server: Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet: one line per request is noise
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send(200, b"ok", "text/plain")
        elif self.path == "/version":
            self._send(200, json.dumps({"version": self.server.version}).encode())
        elif self.path == "/items":
            with connect(self.server.db) as db:
                (count,) = db.execute("SELECT COUNT(*) FROM items").fetchone()
            self._send(200, json.dumps({"count": count}).encode())
        elif self.path.startswith("/items/") and self.path[7:].isdigit():
            with connect(self.server.db) as db:
                row = db.execute("SELECT body FROM items WHERE id = ?", (int(self.path[7:]),)).fetchone()
            if row is None:
                self._send(404, b'{"error": "no such item"}')
            else:
                self._send(200, row[0].encode(), "text/plain")
        else:
            self._send(404, b'{"error": "no such route"}')

    def do_POST(self) -> None:
        if self.path != "/items":
            self._send(404, b'{"error": "no such route"}')
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        with connect(self.server.db) as db:
            item = db.execute("INSERT INTO items (body) VALUES (?)", (body,)).lastrowid
        self._send(201, json.dumps({"id": item}).encode())


class Server(ThreadingHTTPServer):
    """Serves on a listening socket it inherited, and finishes its requests before it exits."""

    def __init__(self, listener: socket.socket, db: Path, version: str) -> None:
        super().__init__(listener.getsockname(), Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = listener
        self.db, self.version = db, version
        self.in_flight = 0
        self.idle = threading.Condition()

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = self.socket.accept()  # non-blocking: another worker may win it
        connection.setblocking(True)
        return connection, address

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.idle:  # counted before its thread starts, so a stop cannot miss it
            self.in_flight += 1
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.idle:
                self.in_flight -= 1
                self.idle.notify_all()


def worker(listener: socket.socket, args: argparse.Namespace, ready: int) -> None:
    """The child that answers; SIGTERM: stop accepting, finish the requests in flight, exit."""
    version_file = Path(args.version_file)
    version = version_file.read_text().strip() if version_file.exists() else "1"
    server = Server(listener, Path(args.db), version)
    stopping = threading.Event()

    def stop(signum: int, frame: Any) -> None:
        if not stopping.is_set():  # shutdown() waits for serve_forever: not from its own thread
            stopping.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])  # the master's mask was inherited
    os.write(ready, b"r")
    os.close(ready)
    server.serve_forever(poll_interval=0.05)
    with server.idle:
        server.idle.wait_for(lambda: server.in_flight == 0, timeout=10)
    os._exit(0)


def start_worker(listener: socket.socket, args: argparse.Namespace) -> int:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            worker(listener, args, write_end)
        finally:
            os._exit(1)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as ready:
        if ready.read(1) != b"r":
            raise RuntimeError("the new worker died before it served")
    return pid


def serve(args: argparse.Namespace) -> int:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.port))
    listener.listen(128)
    listener.setblocking(False)
    with connect(Path(args.db)):
        pass  # the file and its table exist before any request
    handled = {signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGCHLD}
    signal.pthread_sigmask(signal.SIG_BLOCK, handled)
    current = start_worker(listener, args)
    Path(args.pid_file).write_text(f"{os.getpid()}\n")
    while True:
        signum = signal.sigwait(handled)
        if signum == signal.SIGHUP:  # deploy: the new worker serves before the old one stops
            try:
                replacement = start_worker(listener, args)
            except RuntimeError as error:
                print(f"reload failed, the old worker stays: {error}", file=sys.stderr, flush=True)
                continue
            os.kill(current, signal.SIGTERM)
            os.waitpid(current, 0)
            current = replacement
            print(f"reloaded: worker {current}", file=sys.stderr, flush=True)
        elif signum == signal.SIGCHLD:
            pid, _ = os.waitpid(current, os.WNOHANG)
            if pid == current:
                print("the worker died", file=sys.stderr, flush=True)
                return 1
        else:
            os.kill(current, signal.SIGTERM)
            os.waitpid(current, 0)
            return 0


def backup(args: argparse.Namespace) -> int:
    """SQLite's online backup: consistent while the service writes."""
    with connect(Path(args.db)) as source, contextlib.closing(sqlite3.connect(args.to)) as target:
        source.backup(target)
    return 0


def restore(args: argparse.Namespace) -> int:
    """Put the backup in place atomically: open requests finish on the old file."""
    staging = Path(f"{args.db}.restoring")
    staging.unlink(missing_ok=True)
    with connect(Path(getattr(args, "from"))) as source, connect(staging) as target:
        source.backup(target)
        if args.lose_last:
            target.execute(
                "DELETE FROM items WHERE id IN (SELECT id FROM items ORDER BY id DESC LIMIT ?)",
                (args.lose_last,),
            )
    os.replace(staging, args.db)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serving = commands.add_parser("serve")
    serving.add_argument("--port", type=int, required=True)
    serving.add_argument("--db", required=True)
    serving.add_argument("--version-file", required=True)
    serving.add_argument("--pid-file", required=True)
    backing_up = commands.add_parser("backup")
    backing_up.add_argument("--db", required=True)
    backing_up.add_argument("--to", required=True)
    restoring = commands.add_parser("restore")
    restoring.add_argument("--db", required=True)
    restoring.add_argument("--from", required=True)
    restoring.add_argument("--lose-last", type=int, default=0)
    args = parser.parse_args()
    return {"serve": serve, "backup": backup, "restore": restore}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
