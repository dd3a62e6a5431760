"""A small real JSON service for journeys under load, run in its own process.

    python journey_crud_server.py PORT

Sign up and log in (a bearer token and a session cookie), create an item that is ready
after it has been read twice, read it, rename it (the session cookie, not the token),
delete it, close the account; `/stats` counts each kind of request it answered.
It exits by itself when the process that started it goes away.
"""

from __future__ import annotations

import itertools
import os
import secrets
import sys
import threading
import time
from collections import Counter
from typing import Any

import uvicorn
from fastapi import FastAPI, Header, HTTPException, Request, Response
from pydantic import BaseModel

app = FastAPI()
ids = itertools.count(1)
users: dict[str, dict[str, Any]] = {}  # email → {id, password}
tokens: dict[str, int] = {}  # bearer token → user id
sessions: dict[str, int] = {}  # session cookie → user id
items: dict[int, dict[str, Any]] = {}
answered: Counter[str] = Counter()


class Credentials(BaseModel):
    email: str
    password: str


class Item(BaseModel):
    title: str
    number: int


class Rename(BaseModel):
    title: str


def _owner(authorization: str | None) -> int:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme != "Bearer" or token not in tokens:
        raise HTTPException(401, "no valid bearer token")
    return tokens[token]


def _item(item_id: int, owner: int) -> dict[str, Any]:
    item = items.get(item_id)
    if item is None or item["owner"] != owner:
        raise HTTPException(404, "no such item")
    return item


@app.post("/signup", status_code=201)
async def signup(credentials: Credentials) -> dict[str, Any]:
    answered["signup"] += 1
    if credentials.email in users:
        raise HTTPException(409, "already signed up")
    users[credentials.email] = {"id": next(ids), "password": credentials.password}
    return {"id": users[credentials.email]["id"]}


@app.post("/login")
async def login(credentials: Credentials, response: Response) -> dict[str, str]:
    answered["login"] += 1
    user = users.get(credentials.email)
    if user is None or user["password"] != credentials.password:
        raise HTTPException(401, "wrong email or password")
    token, session = secrets.token_hex(16), secrets.token_hex(16)
    tokens[token] = sessions[session] = user["id"]
    response.set_cookie("session", session, httponly=True)
    return {"access_token": token}


@app.post("/items", status_code=201)
async def create(item: Item, authorization: str | None = Header(default=None)) -> dict[str, Any]:
    answered["create"] += 1
    owner = _owner(authorization)
    item_id = next(ids)
    items[item_id] = {"id": item_id, "owner": owner, "title": item.title, "number": item.number, "reads": 0}
    return {"id": item_id, "state": "pending"}


@app.get("/items/{item_id}")
async def read(item_id: int, authorization: str | None = Header(default=None)) -> dict[str, Any]:
    answered["read"] += 1
    item = _item(item_id, _owner(authorization))
    item["reads"] += 1
    state = "ready" if item["reads"] >= 2 else "pending"
    return {"id": item_id, "title": item["title"], "number": item["number"], "state": state}


@app.put("/items/{item_id}")
async def rename(item_id: int, change: Rename, request: Request) -> dict[str, Any]:
    answered["rename"] += 1
    owner = sessions.get(request.cookies.get("session", ""))
    if owner is None:
        raise HTTPException(401, "no session")
    item = _item(item_id, owner)
    item["title"] = change.title
    return {"id": item_id, "title": item["title"]}


@app.delete("/items/{item_id}", status_code=204)
async def delete(item_id: int, authorization: str | None = Header(default=None)) -> Response:
    answered["delete"] += 1
    _item(item_id, _owner(authorization))
    del items[item_id]
    return Response(status_code=204)


@app.delete("/account", status_code=204)
async def close_account(authorization: str | None = Header(default=None)) -> Response:
    answered["close"] += 1
    owner = _owner(authorization)
    for email, user in list(users.items()):
        if user["id"] == owner:
            del users[email]
    return Response(status_code=204)


@app.get("/stats")
async def stats() -> dict[str, int]:
    return {**answered, "users": len(users), "items": len(items)}


def _exit_with_parent() -> None:
    parent = os.getppid()
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(0)


if __name__ == "__main__":
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
