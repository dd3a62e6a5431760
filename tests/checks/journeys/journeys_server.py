"""A small real document service for the journeys tests, run in its own process.

    python journeys_server.py PORT DATA_DIR

Register, log in (bearer token and a session cookie), tell who an Authorization header
names (Basic or Bearer), upload a document (multipart), poll it until processed, download
it (or a corrupted copy), store raw blobs, fail with a 500, answer slowly, echo what it
got, and count how many requests overlap.
It exits by itself when the process that started it goes away.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import os
import secrets
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import uvicorn
from fastapi import FastAPI, File, Form, Header, HTTPException, Request, Response, UploadFile
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from pydantic import BaseModel

DATA = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(".")
CHUNK = 1024 * 1024

app = FastAPI()
ids = itertools.count(1)
users: dict[str, dict[str, Any]] = {}  # email → {id, email, password}
tokens: dict[str, int] = {}  # bearer token → user id
sessions: dict[str, int] = {}  # session cookie → user id
documents: dict[int, dict[str, Any]] = {}
blobs: dict[str, dict[str, Any]] = {}
traffic = {"in_flight": 0, "max_in_flight": 0, "requests": 0}


class Credentials(BaseModel):
    email: str
    password: str


@app.middleware("http")
async def count_concurrency(request: Request, call_next: Any) -> Any:
    traffic["requests"] += 1
    traffic["in_flight"] += 1
    traffic["max_in_flight"] = max(traffic["max_in_flight"], traffic["in_flight"])
    try:
        return await call_next(request)
    finally:
        traffic["in_flight"] -= 1


def _user(authorization: str | None) -> int:
    if not authorization or not authorization.startswith("Bearer "):
        raise HTTPException(401, "missing bearer token")
    user = tokens.get(authorization.removeprefix("Bearer "))
    if user is None:
        raise HTTPException(401, "invalid token")
    return user


def _document(doc_id: int, authorization: str | None) -> dict[str, Any]:
    user = _user(authorization)
    document = documents.get(doc_id)
    if document is None or document["owner"] != user:
        raise HTTPException(404, "no such document")
    return document


def _public(document: dict[str, Any]) -> dict[str, Any]:
    status = "processed" if time.monotonic() >= document["ready_at"] else "processing"
    keys = ("id", "title", "size", "sha256", "filename", "content_type")
    return {**{key: document[key] for key in keys}, "status": status}


@app.get("/health")
async def health() -> dict[str, bool]:
    return {"ok": True}


@app.post("/register", status_code=201)
async def register(credentials: Credentials, response: Response) -> dict[str, Any]:
    if credentials.email in users:
        raise HTTPException(409, "already registered")
    user = {"id": next(ids), "email": credentials.email, "password": credentials.password}
    users[credentials.email] = user
    response.headers["Location"] = f"/users/{user['id']}"
    return {"id": user["id"], "email": user["email"]}


@app.get("/users/{user_id}")
async def get_user(user_id: int) -> dict[str, Any]:
    for user in users.values():
        if user["id"] == user_id:
            return {"id": user["id"], "email": user["email"]}
    raise HTTPException(404, "no such user")


@app.post("/login")
async def login(credentials: Credentials, response: Response) -> dict[str, str]:
    user = users.get(credentials.email)
    if user is None or user["password"] != credentials.password:
        raise HTTPException(401, "wrong email or password")
    token = secrets.token_hex(16)
    tokens[token] = user["id"]
    session = secrets.token_hex(16)
    sessions[session] = user["id"]
    response.set_cookie("session", session, httponly=True)
    return {"access_token": token, "token_type": "bearer"}


@app.get("/whoami")
async def whoami(authorization: str | None = Header(default=None)) -> dict[str, Any]:
    """Who the Authorization header says: Basic (email:password) or Bearer (a login's token)."""
    scheme, _, credentials = (authorization or "").partition(" ")
    if scheme == "Basic":
        email, _, password = base64.b64decode(credentials).decode().partition(":")
        user = users.get(email)
        if user is None or user["password"] != password:
            raise HTTPException(401, "wrong Basic credentials")
        return {"scheme": scheme, "id": user["id"], "email": email}
    if scheme == "Bearer":
        user_id = _user(authorization)
        email = next(user["email"] for user in users.values() if user["id"] == user_id)
        return {"scheme": scheme, "id": user_id, "email": email}
    raise HTTPException(401, f"no Basic or Bearer credentials in {authorization!r}")


@app.get("/me")
async def me(request: Request) -> dict[str, Any]:
    user_id = sessions.get(request.cookies.get("session", ""))
    for user in users.values():
        if user["id"] == user_id:
            return {"id": user["id"], "email": user["email"]}
    raise HTTPException(401, "no session")


@app.post("/documents", status_code=201)
async def upload(
    file: Annotated[UploadFile, File()],
    title: Annotated[str, Form()],
    authorization: Annotated[str | None, Header()] = None,
    delay: Annotated[float, Form()] = 0.3,
) -> dict[str, Any]:
    owner = _user(authorization)
    doc_id = next(ids)
    path = DATA / f"doc-{doc_id}"
    digest, size = hashlib.sha256(), 0
    with path.open("wb") as out:
        while chunk := await file.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    document = {
        "id": doc_id,
        "owner": owner,
        "title": title,
        "size": size,
        "sha256": digest.hexdigest(),
        "filename": file.filename,
        "content_type": file.content_type,
        "path": path,
        "ready_at": time.monotonic() + delay,
    }
    documents[doc_id] = document
    return _public(document)


@app.get("/documents/{doc_id}")
async def get_document(doc_id: int, authorization: str | None = Header(default=None)) -> dict[str, Any]:
    return _public(_document(doc_id, authorization))


@app.get("/documents/{doc_id}/content")
async def content(doc_id: int, authorization: str | None = Header(default=None)) -> FileResponse:
    document = _document(doc_id, authorization)
    return FileResponse(document["path"], media_type="application/octet-stream")


@app.get("/documents/{doc_id}/corrupt")
async def corrupt(doc_id: int, authorization: str | None = Header(default=None)) -> Response:
    document = _document(doc_id, authorization)
    data = bytearray(document["path"].read_bytes())
    if data:
        data[len(data) // 2] ^= 0xFF
    return Response(bytes(data), media_type="application/octet-stream")


@app.put("/blobs/{name}", status_code=201)
async def put_blob(name: str, request: Request) -> dict[str, Any]:
    path = DATA / f"blob-{name}"
    digest, size = hashlib.sha256(), 0
    with path.open("wb") as out:
        async for chunk in request.stream():
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    blobs[name] = {"path": path, "size": size, "sha256": digest.hexdigest()}
    return {
        "name": name,
        "size": size,
        "sha256": digest.hexdigest(),
        "content_type": request.headers.get("content-type"),
    }


@app.get("/blobs/{name}")
async def get_blob(name: str) -> FileResponse:
    if name not in blobs:
        raise HTTPException(404, "no such blob")
    return FileResponse(blobs[name]["path"], media_type="application/octet-stream")


@app.get("/error")
async def error() -> Response:
    return PlainTextResponse("internal failure: the database is on fire", status_code=500)


@app.get("/slow")
async def slow(ms: int = 200) -> dict[str, int]:
    await asyncio.sleep(ms / 1000)
    return {"slept": ms}


@app.api_route("/echo", methods=["GET", "POST", "PUT"])
async def echo(request: Request) -> JSONResponse:
    body = await request.body()
    content_type = request.headers.get("content-type", "")
    form: dict[str, Any] | None = None
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        parsed = await request.form()
        form = {key: [str(v) for v in parsed.getlist(key)] for key in parsed}
    json_body = None
    if content_type.startswith("application/json"):
        json_body = await request.json()
    return JSONResponse(
        {
            "method": request.method,
            "path": request.url.path,
            "query": {key: request.query_params.getlist(key) for key in request.query_params},
            "headers": dict(request.headers),
            "json": json_body,
            "form": form,
            "size": len(body),
        }
    )


@app.get("/stats")
async def stats() -> dict[str, int]:
    return dict(traffic)


@app.post("/stats/reset")
async def reset_stats() -> dict[str, int]:
    traffic["max_in_flight"] = traffic["in_flight"]
    traffic["requests"] = 0
    return dict(traffic)


def _exit_with_parent() -> None:
    parent = os.getppid()
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(0)


if __name__ == "__main__":
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
