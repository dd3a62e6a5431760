"""A small notes service on SQLite, for the database faults of docs/chaos.md.

    python notes.py --port 8080 --db data/notes.db

POST /notes stores the body and answers 201 {"id": N} once committed; GET /notes/N returns it
(404 if unknown). Every request opens the database anew with `mode=rw`, so a database that went
missing is an error (503), never silently recreated empty. A failed statement (locked, missing,
disk full) answers 503 {"error": ...}: not acknowledged, so nobody counts on it.

GET /health answers 200 only if the database can be read and a write transaction can begin
within 0.5 s, else 503 with what failed.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", type=Path, required=True)
    options = parser.parse_args()
    options.db.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(options.db) as db:  # the only place allowed to create it
        db.execute("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body BLOB)")
    db.close()

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(f"file:{options.db}?mode=rw", uri=True, timeout=0.5)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def answer(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def failed(self, error: sqlite3.Error) -> None:
            self.answer(503, json.dumps({"error": str(error)}).encode())

        def do_GET(self) -> None:
            try:
                db = connect()
                try:
                    if self.path == "/health":
                        db.execute("SELECT count(*) FROM notes").fetchone()
                        db.execute("BEGIN IMMEDIATE")
                        db.execute("ROLLBACK")
                        self.answer(200, b'{"status": "ok"}')
                    elif self.path.startswith("/notes/") and self.path[7:].isdigit():
                        note = int(self.path[7:])
                        row = db.execute("SELECT body FROM notes WHERE id = ?", (note,)).fetchone()
                        if row is None:
                            self.answer(404, b'{"error": "no such note"}')
                        else:
                            self.answer(200, row[0], "application/octet-stream")
                    else:
                        self.answer(404, b'{"error": "no such route"}')
                finally:
                    db.close()
            except sqlite3.Error as error:
                self.failed(error)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path != "/notes":
                self.answer(404, b'{"error": "no such route"}')
                return
            try:
                db = connect()
                try:
                    with db:  # committed before the answer: an acknowledged note is on disk
                        note = db.execute("INSERT INTO notes (body) VALUES (?)", (body,)).lastrowid
                finally:
                    db.close()
            except sqlite3.Error as error:
                self.failed(error)
                return
            self.answer(201, json.dumps({"id": note}).encode())

    ThreadingHTTPServer(("127.0.0.1", options.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
