"""A small real service for the probes' tests, with defects to seed one environment variable
each (`PROBE_<NAME>=1`); run in its own process, in the folder it stores files under:

    python probe_target.py PORT

Users register and log in (a bearer token, also set as the `session` cookie); each owns the
documents it creates. Healthy, every query binds its values, files are served by base name
only, no shell and no template sees a request's value, bodies over 1 MB are refused with 413
before they are read, a body that stalls is timed out (408), and every response carries the
security headers. Its OpenAPI 3 document is at /openapi.json; /swagger.json describes some of
its routes as a Swagger 2.0 document would (a `default` beside a parameter's `type: int`, no
body declared for a POST). The switches:

- `PROBE_TRAVERSAL`: GET /files/{name} joins the (decoded) name to the files folder as is;
- `PROBE_SQL`: GET /documents?title= builds its SQL by string concatenation;
- `PROBE_COMMAND`: GET /ping?host= runs `echo` in a shell with the host, and answers its output;
- `PROBE_BLIND_COMMAND`: POST /notify runs a shell with the email, and answers nothing of it;
- `PROBE_TEMPLATE`: GET /greet?name= evaluates `{{...}}` in the name;
- `PROBE_NON_ASCII`: GET /greet?name= and the caption of POST /avatars (multipart) answer 500
  when not ASCII;
- `PROBE_UPLOAD`: POST /upload reads any body whole and keeps it in memory;
- `PROBE_CRASH`: POST /upload with a body over 5 MB makes the process exit (as an OOM kill would);
- `PROBE_SLOW`: one request at a time, and no deadline for reading a body;
- `PROBE_HEADERS`: no security headers, the server's version in Server, a session cookie
  without HttpOnly or SameSite, CORS reflecting any origin with credentials, TRACE echoed on
  every path but `/` (which answers 405, as a framework's own routing does), and a Python
  traceback in the 500 of GET /documents/{id} with an id that is not a number;
- `PROBE_ECHO`: POST /echo (no body declared) reads any body whole and keeps it in memory;
- `PROBE_LOOKUP`: GET /colour?name= and GET /shade?name= answer 500 for a name they do not know;
- `PROBE_NUMBER`: GET /count?n= answers 500 when n is not a number.

GET /truncated is always broken: it says 10 bytes of body and sends 1.

The process exits by itself when the process that started it goes away.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit


def _on(name: str) -> bool:
    return os.environ.get(f"PROBE_{name}") == "1"


TRAVERSAL, SQL, COMMAND, BLIND_COMMAND = _on("TRAVERSAL"), _on("SQL"), _on("COMMAND"), _on("BLIND_COMMAND")
TEMPLATE, NON_ASCII, UPLOAD, SLOW, HEADERS = (
    _on("TEMPLATE"),
    _on("NON_ASCII"),
    _on("UPLOAD"),
    _on("SLOW"),
    _on("HEADERS"),
)
CRASH, ECHO, LOOKUP, NUMBER = _on("CRASH"), _on("ECHO"), _on("LOOKUP"), _on("NUMBER")
COLOURS = {"red": "#ff0000", "green": "#00ff00"}
MAX_BODY = 1_000_000
BODY_DEADLINE = 2.0  # seconds to read a whole body (healthy)
FILES = Path.cwd() / "files"
FILES.mkdir(exist_ok=True)
(FILES / "readme.txt").write_text("the files folder\n")

database = sqlite3.connect(":memory:", check_same_thread=False)
database.execute("CREATE TABLE documents (id INTEGER PRIMARY KEY, owner TEXT, title TEXT, body TEXT)")
for number in range(3):
    database.execute(
        "INSERT INTO documents (owner, title, body) VALUES (?, ?, ?)",
        ("someone-else@example.test", f"other plan {number}", "not yours"),
    )
lock = threading.Lock()
users: dict[str, str] = {}  # email → password
tokens: dict[str, str] = {}  # token → email
kept_in_memory: list[bytes] = []


def _operation(*parameters: dict[str, Any], body: dict[str, Any] | None = None, public: bool = False) -> Any:
    operation: dict[str, Any] = {"responses": {"200": {"description": "ok"}}, "parameters": list(parameters)}
    if body is not None:
        operation["requestBody"] = {"content": body}
    if public:
        operation["security"] = []
    return operation


def _parameter(name: str, where: str, kind: str = "string") -> dict[str, Any]:
    return {"name": name, "in": where, "required": where == "path", "schema": {"type": kind}}


def _json(*names: str) -> dict[str, Any]:
    properties = {name: {"type": "string"} for name in names}
    return {"application/json": {"schema": {"type": "object", "properties": properties}}}


OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "probe target", "version": "1"},
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    "security": [{"bearer": []}],
    "paths": {
        "/register": {"post": _operation(body=_json("email", "password"), public=True)},
        "/login": {"post": _operation(body=_json("email", "password"), public=True)},
        "/documents": {
            "get": _operation(_parameter("title", "query")),
            "post": _operation(body=_json("title", "body")),
        },
        "/documents/{id}": {"get": _operation(_parameter("id", "path", "integer"))},
        "/files/{name}": {"get": _operation(_parameter("name", "path"))},
        "/ping": {"get": _operation(_parameter("host", "query"))},
        "/greet": {"get": _operation(_parameter("name", "query"), public=True)},
        "/notify": {"post": _operation(body=_json("email"))},
        "/avatars": {
            "post": _operation(
                body={
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "caption": {"type": "string"},
                                "image": {"type": "string", "format": "binary"},
                            },
                        }
                    }
                }
            )
        },
        "/upload": {
            "post": _operation(
                body={"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
            )
        },
        "/echo": {"post": _operation()},
        "/colour": {"get": _operation(_parameter("name", "query"), public=True)},
    },
}
# As a Swagger 2.0 document describes routes: a parameter's `default` beside its `type` (`int`,
# as some generators write it), and a POST whose body it does not declare.
SWAGGER: dict[str, Any] = {
    "swagger": "2.0",
    "info": {"title": "probe target", "version": "1"},
    "basePath": "/",
    "paths": {
        "/count": {
            "get": {
                "parameters": [{"name": "n", "in": "query", "type": "int", "default": 3}],
                "responses": {"200": {"description": "ok"}},
            }
        },
        "/colour": {
            "get": {
                "parameters": [{"name": "name", "in": "query", "type": "string"}],
                "responses": {"200": {"description": "ok"}},
            }
        },
        "/shade": {
            "get": {
                "parameters": [{"name": "name", "in": "query", "type": "string"}],
                "responses": {"200": {"description": "ok"}},
            }
        },
        "/echo": {"post": {"responses": {"200": {"description": "ok"}}}},
    },
}


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = None if SLOW else 1.0  # the socket's: a body that stalls this long is timed out

    def version_string(self) -> str:
        return "ProbeTarget/1.2.3 Python/3.11" if HEADERS else "ProbeTarget"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- plumbing --------------------------------------------------------------------------

    def answer(self, status: int, body: Any, content_type: str = "application/json", **headers: str) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        if not HEADERS:
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
        origin = self.headers.get("Origin")
        if HEADERS and origin:
            self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Access-Control-Allow-Credentials", "true")
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self.close_connection = True

    def body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY and not (UPLOAD and self.path == "/upload"):
            raise Refused(413, "the body is larger than 1 MB")
        if SLOW:
            return self.rfile.read(length)
        deadline = time.monotonic() + BODY_DEADLINE
        data = bytearray()
        while len(data) < length:
            if time.monotonic() > deadline:
                raise Refused(408, "the body took too long")
            try:
                piece = self.rfile.read1(min(65536, length - len(data)))
            except TimeoutError:
                raise Refused(408, "the body took too long") from None
            if not piece:
                raise Refused(400, "the body ended early")
            data += piece
        return bytes(data)

    def json_body(self) -> dict[str, Any]:
        try:
            document = json.loads(self.body())
        except ValueError:
            raise Refused(400, "expected a JSON object") from None
        if not isinstance(document, dict):
            raise Refused(400, "expected a JSON object")
        return document

    def user(self) -> str:
        header = self.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip()
        if not token:
            cookie = self.headers.get("Cookie", "")
            token = dict(parse_qsl(cookie.replace("; ", "&"))).get("session", "")
        email = tokens.get(token)
        if email is None:
            raise Refused(401, "log in first")
        return email

    def handle_one(self, routes: dict[str, Any]) -> None:
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        try:
            for pattern, route in routes.items():
                match = re.fullmatch(pattern, parts.path)
                if match:
                    route(self, query, *match.groups())
                    return
            raise Refused(404, "no such route")
        except Refused as refused:
            self.answer(refused.status, {"detail": str(refused)})
        except Exception:
            if HEADERS:
                self.answer(500, traceback.format_exc().encode(), "text/plain")
            else:
                self.answer(500, {"detail": "internal error"})

    def do_GET(self) -> None:
        self.handle_one(GET_ROUTES)

    def do_POST(self) -> None:
        self.handle_one(POST_ROUTES)

    def do_TRACE(self) -> None:
        if HEADERS and urlsplit(self.path).path != "/":
            echoed = f"{self.requestline}\r\n{self.headers}".encode()
            self.answer(200, echoed, "message/http")
        else:
            self.answer(405, {"detail": "TRACE is not allowed"})


# -- routes ---------------------------------------------------------------------------------


def health(handler: Handler, query: dict[str, str]) -> None:
    handler.answer(200, {"status": "ok"})


def openapi(handler: Handler, query: dict[str, str]) -> None:
    handler.answer(200, OPENAPI)


def swagger(handler: Handler, query: dict[str, str]) -> None:
    handler.answer(200, SWAGGER)


def root(handler: Handler, query: dict[str, str]) -> None:
    handler.answer(200, b"<html><body>probe target</body></html>", "text/html; charset=utf-8")


def register(handler: Handler, query: dict[str, str]) -> None:
    document = handler.json_body()
    email, password = str(document.get("email", "")), str(document.get("password", ""))
    if not email or not password:
        raise Refused(422, "email and password are required")
    with lock:
        if email in users:
            raise Refused(409, "already registered")
        users[email] = password
    handler.answer(201, {"email": email})


def login(handler: Handler, query: dict[str, str]) -> None:
    document = handler.json_body()
    email = str(document.get("email", ""))
    if users.get(email) != document.get("password"):
        raise Refused(401, "wrong email or password")
    token = secrets.token_urlsafe(24)
    tokens[token] = email
    flags = "" if HEADERS else "; HttpOnly; SameSite=Lax"
    handler.answer(200, {"access_token": token}, Set_Cookie=f"session={token}; Path=/{flags}")


def list_documents(handler: Handler, query: dict[str, str]) -> None:
    owner = handler.user()
    title = query.get("title", "")
    with lock:
        if SQL:
            sql = f"SELECT id, title, body FROM documents WHERE owner = '{owner}' AND title = '{title}'"
            rows = database.execute(sql).fetchall()
        else:
            sql = "SELECT id, title, body FROM documents WHERE owner = ? AND title = ?"
            rows = database.execute(sql, (owner, title)).fetchall()
    handler.answer(200, [{"id": row[0], "title": row[1], "body": row[2]} for row in rows])


def create_document(handler: Handler, query: dict[str, str]) -> None:
    owner = handler.user()
    document = handler.json_body()
    with lock:
        cursor = database.execute(
            "INSERT INTO documents (owner, title, body) VALUES (?, ?, ?)",
            (owner, str(document.get("title", "")), str(document.get("body", ""))),
        )
    handler.answer(201, {"id": cursor.lastrowid})


def read_document(handler: Handler, query: dict[str, str], doc_id: str) -> None:
    owner = handler.user()
    if HEADERS:
        number = int(doc_id)  # a ValueError, shown as a traceback
    elif not doc_id.isdigit():
        raise Refused(422, "the id is a number")
    else:
        number = int(doc_id)
    with lock:
        row = database.execute(
            "SELECT id, title, body FROM documents WHERE id = ? AND owner = ?", (number, owner)
        ).fetchone()
    if row is None:
        raise Refused(404, "no such document")
    handler.answer(200, {"id": row[0], "title": row[1], "body": row[2]})


def read_file(handler: Handler, query: dict[str, str], name: str) -> None:
    handler.user()
    if TRAVERSAL:
        path = os.path.join(FILES, unquote(name))
    elif re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]*", name):
        path = str(FILES / name)
    else:
        raise Refused(404, "no such file")
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        raise Refused(404, "no such file") from None
    handler.answer(200, data, "application/octet-stream")


def ping(handler: Handler, query: dict[str, str]) -> None:
    handler.user()
    host = query.get("host", "")
    if COMMAND:
        output = subprocess.run(f"echo pinging {host}", shell=True, capture_output=True, text=True).stdout
        handler.answer(200, {"output": output})
    else:
        handler.answer(200, {"output": f"pinging {host}"})


def greet(handler: Handler, query: dict[str, str]) -> None:
    name = query.get("name", "")
    if NON_ASCII:
        name.encode("ascii")  # a UnicodeEncodeError: a 500
    if TEMPLATE:
        name = re.sub(r"\{\{(.+?)\}\}", lambda match: str(eval(match.group(1), {"__builtins__": {}})), name)
    handler.answer(200, {"greeting": f"Hello {name}"})


def notify(handler: Handler, query: dict[str, str]) -> None:
    handler.user()
    email = str(handler.json_body().get("email", ""))
    if BLIND_COMMAND:
        subprocess.run(f"true {email}", shell=True, capture_output=True)
    handler.answer(202, {"queued": True})


def upload(handler: Handler, query: dict[str, str]) -> None:
    handler.user()
    if CRASH and int(handler.headers.get("Content-Length") or 0) > 5_000_000:
        os._exit(3)
    data = handler.body()
    if UPLOAD:
        kept_in_memory.append(data)
    else:
        (FILES / f"upload-{secrets.token_hex(4)}.bin").write_bytes(data)
    handler.answer(201, {"size": len(data)})


def avatar(handler: Handler, query: dict[str, str]) -> None:
    handler.user()
    boundary = re.search(r"boundary=([^;]+)", handler.headers.get("Content-Type", ""))
    if boundary is None:
        raise Refused(415, "expected multipart/form-data")
    fields: dict[str, bytes] = {}
    for section in handler.body().split(b"--" + boundary.group(1).encode())[1:-1]:
        head, _, content = section.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        name = re.search(rb'name="([^"]*)"', head)
        if name is not None:
            fields[name.group(1).decode()] = content.removesuffix(b"\r\n")
    caption = fields.get("caption", b"").decode("utf-8", errors="replace")
    if NON_ASCII:
        caption.encode("ascii")  # a UnicodeEncodeError: a 500
    handler.answer(201, {"caption": caption, "size": len(fields.get("image", b""))})


def echo(handler: Handler, query: dict[str, str]) -> None:
    handler.user()
    if ECHO:
        data = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        kept_in_memory.append(data)
    else:
        data = handler.body()
    handler.answer(200, {"size": len(data)})


def colour(handler: Handler, query: dict[str, str], table: dict[str, str] = COLOURS) -> None:
    name = query.get("name", "")
    if LOOKUP:
        value = table[name]  # a KeyError: a 500
    elif name not in table:
        raise Refused(404, "no such colour")
    else:
        value = table[name]
    handler.answer(200, {"name": name, "value": value})


def count(handler: Handler, query: dict[str, str]) -> None:
    text = query.get("n", "3")
    if not NUMBER and not text.isdigit():
        raise Refused(422, "n is a number")
    handler.answer(200, {"items": list(range(min(int(text), 10)))})  # a ValueError when not a number


def truncated(handler: Handler, query: dict[str, str]) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "text/plain")
    handler.send_header("Content-Length", "10")
    handler.send_header("Connection", "close")
    handler.end_headers()
    handler.wfile.write(b"x")
    handler.close_connection = True


GET_ROUTES = {
    "/": root,
    "/health": health,
    "/openapi.json": openapi,
    "/swagger.json": swagger,
    "/colour": colour,
    "/shade": lambda handler, query: colour(handler, query, {"light": "#eeeeee"}),
    "/count": count,
    "/truncated": truncated,
    "/documents": list_documents,
    "/documents/([^/]+)": read_document,
    "/files/(.+)": read_file,
    "/ping": ping,
    "/greet": greet,
}
POST_ROUTES = {"/register": register, "/login": login, "/documents": create_document, "/notify": notify}
POST_ROUTES["/upload"] = upload
POST_ROUTES["/avatars"] = avatar
POST_ROUTES["/echo"] = echo


def _exit_with_parent() -> None:
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


if __name__ == "__main__":
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    server_class = HTTPServer if SLOW else ThreadingHTTPServer
    server = server_class(("127.0.0.1", int(sys.argv[1])), Handler)
    server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.serve_forever()
