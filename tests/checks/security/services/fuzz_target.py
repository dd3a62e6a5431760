"""A small real item service for the fuzzing tests, with defects seeded by switches.

    FUZZ_TARGET_DEFECTS=non-ascii,schema python fuzz_target.py PORT

Every operation wants `Authorization: Bearer $FUZZ_TARGET_TOKEN` (default `fuzz-token`); its
OpenAPI document is FastAPI's own, at /openapi.json. The switches, comma-separated in
FUZZ_TARGET_DEFECTS (none: the healthy build):
- non-ascii: creating an item whose name is not ASCII fails with a 500 (an unguarded encode);
- schema: reading an item answers a `quantity` that is not the integer the document declares;
- hang: a search with a negative `limit` never answers (a paging loop that never ends);
- crash: a restock of more than 1000 units kills the process (os._exit, as a native crash would).
It exits by itself when the process that started it goes away.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import threading
import time
from typing import Annotated, Any

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

DEFECTS = {name.strip() for name in os.environ.get("FUZZ_TARGET_DEFECTS", "").split(",") if name.strip()}
TOKEN = os.environ.get("FUZZ_TARGET_TOKEN", "fuzz-token")


class Problem(BaseModel):
    detail: str


def authenticated(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(HTTPBearer(auto_error=False))],
) -> None:
    if credentials is None or credentials.credentials != TOKEN:
        raise HTTPException(401, "a valid bearer token is required")


UNAUTHORIZED: dict[int | str, dict[str, Any]] = {401: {"model": Problem, "description": "no valid token"}}
app = FastAPI(title="fuzz target")
api = APIRouter(dependencies=[Depends(authenticated)], responses=UNAUTHORIZED)
ids = itertools.count(1)
items: dict[int, dict[str, Any]] = {}


class ItemIn(BaseModel):
    name: str
    quantity: int


class Item(BaseModel):
    id: int
    name: str
    quantity: int


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@api.post("/items", status_code=201)
async def create_item(item: ItemIn) -> Item:
    if "non-ascii" in DEFECTS:
        item.name.encode("ascii")  # raises UnicodeEncodeError on any other character: a 500
    stored = {"id": next(ids), "name": item.name, "quantity": item.quantity}
    items[stored["id"]] = stored
    return Item(**stored)


@api.post("/items/{item_id}/restock")
async def restock(item_id: int, amount: int) -> Item:
    if "crash" in DEFECTS and amount > 1000:
        os._exit(3)
    item = items.setdefault(item_id, {"id": item_id, "name": f"item {item_id}", "quantity": 0})
    item["quantity"] += amount
    return Item(**item)


@api.get("/items/{item_id}", response_model=Item)
async def read_item(item_id: int) -> Any:
    item = items.get(item_id, {"id": item_id, "name": f"item {item_id}", "quantity": 0})
    if "schema" in DEFECTS:
        # Answered as raw JSON, so FastAPI does not check it against the declared model.
        return JSONResponse({**item, "quantity": str(item["quantity"]) + " units"})
    return item


@api.get("/search")
async def search(q: str = "", limit: int = 10) -> list[Item]:
    if "hang" in DEFECTS and limit < 0:
        await asyncio.sleep(3600)  # the page loop counts down to zero and never gets there
    found = [Item(**item) for item in items.values() if q in item["name"]]
    return found[: max(limit, 0)]


CUSTOM_BODY = {
    "requestBody": {"required": True, "content": {"application/x-ledger": {"schema": {"type": "object"}}}}
}


@api.post("/ledger", openapi_extra=CUSTOM_BODY, status_code=204)
async def import_ledger(request: Request) -> None:
    """A body in a media type of its own, which a generic fuzzer cannot write."""
    await request.body()


app.include_router(api)


def _exit_with_parent() -> None:
    parent = os.getppid()
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(0)


if __name__ == "__main__":
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
