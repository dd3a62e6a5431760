"""A tiny JSON service for docs/load.md: accounts, and items that take a moment to be ready.

    python app.py --port 8080

Routes (JSON in, JSON out):
  POST /signup {email, password} -> 201 {id}        409 if the email is taken
  POST /login {email, password}  -> {access_token}  and a `session` cookie
  POST /items {title, number}    -> 201 {id, state: "pending"}  (Authorization: Bearer TOKEN)
  GET /items/<id>                -> {id, title, number, state}: "ready" from its second read
  PUT /items/<id> {title}        -> {id, title}      by the session cookie, not the token
  DELETE /items/<id>             -> 204              (bearer)
  DELETE /account                -> 204              (bearer) closes the account
  GET /stats                     -> how many of each it answered, accounts and items left

Keep-alive HTTP/1.1, a thread per connection. It exits when its parent process goes away.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

lock = threading.Lock()
next_id = iter(range(1, 1 << 62))
users: dict[str, dict[str, Any]] = {}  # email -> {id, password}
tokens: dict[str, int] = {}  # bearer token -> user id
sessions: dict[str, int] = {}  # session cookie -> user id
items: dict[int, dict[str, Any]] = {}
answered: Counter[str] = Counter()
ITEM = re.compile(r"^/items/(\d+)$")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the listen backlog: every virtual user connects at once (default 5)


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._answer("GET")

    def do_POST(self) -> None:
        self._answer("POST")

    def do_PUT(self) -> None:
        self._answer("PUT")

    def do_DELETE(self) -> None:
        self._answer("DELETE")

    def _answer(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        extra: dict[str, str] = {}
        try:
            body = json.loads(raw) if raw else {}
            with lock:
                status, reply = self._route(method, body, extra)
        except Refused as refused:
            status, reply = refused.status, {"error": str(refused)}
        except (ValueError, KeyError, TypeError) as error:
            status, reply = 422, {"error": f"bad request: {error}"}
        data = b"" if status == 204 else json.dumps(reply).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _owner(self) -> int:
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        if scheme != "Bearer" or token not in tokens:
            raise Refused(401, "no valid bearer token")
        return tokens[token]

    def _route(self, method: str, body: dict[str, Any], extra: dict[str, str]) -> tuple[int, Any]:
        path = self.path.split("?", 1)[0]
        item = ITEM.match(path)
        if method == "POST" and path == "/signup":
            answered["signup"] += 1
            if body["email"] in users:
                raise Refused(409, "already signed up")
            users[body["email"]] = {"id": next(next_id), "password": body["password"]}
            return 201, {"id": users[body["email"]]["id"]}
        if method == "POST" and path == "/login":
            answered["login"] += 1
            user = users.get(body["email"])
            if user is None or user["password"] != body["password"]:
                raise Refused(401, "wrong email or password")
            token, session = secrets.token_hex(16), secrets.token_hex(16)
            tokens[token] = sessions[session] = user["id"]
            extra["Set-Cookie"] = f"session={session}; HttpOnly; Path=/"
            return 200, {"access_token": token}
        if method == "POST" and path == "/items":
            answered["create"] += 1
            owner, item_id = self._owner(), next(next_id)
            items[item_id] = {
                "owner": owner,
                "title": str(body["title"]),
                "number": int(body["number"]),
                "reads": 0,
            }
            return 201, {"id": item_id, "state": "pending"}
        if item and method == "GET":
            answered["read"] += 1
            found = self._item(int(item.group(1)), self._owner())
            found["reads"] += 1
            state = "ready" if found["reads"] >= 2 else "pending"
            return 200, {
                "id": int(item.group(1)),
                "title": found["title"],
                "number": found["number"],
                "state": state,
            }
        if item and method == "PUT":
            answered["rename"] += 1
            cookie = re.search(r"(?:^|;\s*)session=([0-9a-f]+)", self.headers.get("Cookie") or "")
            if cookie is None or cookie.group(1) not in sessions:
                raise Refused(401, "no session")
            found = self._item(int(item.group(1)), sessions[cookie.group(1)])
            found["title"] = str(body["title"])
            return 200, {"id": int(item.group(1)), "title": found["title"]}
        if item and method == "DELETE":
            answered["delete"] += 1
            self._item(int(item.group(1)), self._owner())
            del items[int(item.group(1))]
            return 204, None
        if method == "DELETE" and path == "/account":
            answered["close"] += 1
            owner = self._owner()
            for email in [email for email, user in users.items() if user["id"] == owner]:
                del users[email]
            return 204, None
        if method == "GET" and path == "/stats":
            return 200, {**answered, "users": len(users), "items": len(items)}
        raise Refused(404, f"no route {method} {path}")

    @staticmethod
    def _item(item_id: int, owner: int) -> dict[str, Any]:
        found = items.get(item_id)
        if found is None or found["owner"] != owner:
            raise Refused(404, "no such item")
        return found


def _exit_with_parent() -> None:
    parent = os.getppid()
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    server = Server(("127.0.0.1", port), Handler)
    server.serve_forever()
