"""A small real document service with authentication and authorization defects to seed, for
the authorization matrix and secrets tests; run in its own process:

    python authz_target.py PORT [--no-owner-check] [--no-auth] [--any-signature]
                                [--ignore-expiry] [--log-password] [--echo-token]
                                [--echo-password] [--keep-token-after-logout]
                                [--log-reset-token] [--log-authorization]
                                [--openapi-without-security]

Users register and log in (POST /login gives a JWT-like bearer token, HMAC-SHA256 signed, that
expires after an hour); each owns the documents it creates. Healthy, every route but /health,
/register, /login, /forgot-password, /anything and /token/expired checks the token, every
document route checks that the caller owns the document, and POST /logout revokes the token
it is called with. POST /anything is a public echo of the JSON body and URL (httpbin's route).
The switches seed one defect each:

- `--no-owner-check`: GET and DELETE /documents/{doc_id} serve any user's document;
- `--no-auth`: GET /documents/{doc_id}/export (which the OpenAPI document still secures) and
  PUT /documents/{doc_id} need no token at all;
- `--any-signature`: a token whose payload decodes is accepted, signature unchecked;
- `--ignore-expiry`: an expired token is accepted;
- `--log-password`: the login line printed to stdout holds the password;
- `--echo-token`: GET /me answers with the caller's token;
- `--echo-password`: POST /register answers with the password it was given;
- `--keep-token-after-logout`: POST /logout answers 204 and revokes nothing;
- `--log-reset-token`: POST /forgot-password prints the reset token (a JWT) it makes, as the
  fastapi-users example does (healthy, it prints only that a reset was asked for);
- `--log-authorization`: every request's Authorization header is printed;
- `--openapi-without-security`: the OpenAPI document declares no security at all (httpbin's
  does not), though the code still checks tokens.

/token/expired?sub=ID mints an expired token (what a plan would give as `authz.expired`).
The process exits by itself when the process that started it goes away.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import itertools
import json
import os
import secrets
import sys
import threading
import time
from typing import Any

import uvicorn
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

PUBLIC = {
    ("GET", "/health"),
    ("POST", "/register"),
    ("POST", "/login"),
    ("GET", "/token/expired"),
    ("POST", "/forgot-password"),
    ("POST", "/anything"),
}
KEY = secrets.token_bytes(32)

parser = argparse.ArgumentParser()
parser.add_argument("port", type=int)
SWITCHES = (
    "no-owner-check",
    "no-auth",
    "any-signature",
    "ignore-expiry",
    "log-password",
    "echo-token",
    "echo-password",
    "keep-token-after-logout",
    "log-reset-token",
    "log-authorization",
    "openapi-without-security",
)
for switch in SWITCHES:
    parser.add_argument(f"--{switch}", action="store_true")
options = parser.parse_args()

app = FastAPI(title="authz target", version="1.0.0")
user_ids = itertools.count(1)
document_ids = itertools.count(1)
users: dict[str, dict[str, Any]] = {}  # email → {id, email, password}
documents: dict[int, dict[str, Any]] = {}
revoked: set[str] = set()  # the jti of tokens logged out


class Credentials(BaseModel):
    email: str
    password: str


class ResetRequest(BaseModel):
    email: str


class DocumentIn(BaseModel):
    title: str
    body: str = ""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _token(user_id: int, expires: float, audience: str = "api") -> str:
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = {"sub": user_id, "exp": int(expires), "jti": secrets.token_hex(4), "aud": audience}
    body = _b64(json.dumps(claims).encode())
    signature = hmac.new(KEY, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(signature)}"


def _caller(request: Request) -> int:
    """The user the bearer token names, or 401."""
    return int(_claims(request)["sub"])


def _claims(request: Request) -> dict[str, Any]:
    """The claims of a valid bearer token, or 401."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme != "Bearer" or token.count(".") != 2:
        raise HTTPException(401, "missing or malformed bearer token")
    head, body, signature = token.split(".")
    try:
        claims = json.loads(_unb64(body))
        expected = hmac.new(KEY, f"{head}.{body}".encode(), hashlib.sha256).digest()
        signed = hmac.compare_digest(_unb64(signature), expected)
    except ValueError:
        raise HTTPException(401, "malformed token") from None
    if not signed and not options.any_signature:
        raise HTTPException(401, "bad signature")
    if claims.get("exp", 0) < time.time() and not options.ignore_expiry:
        raise HTTPException(401, "token expired")
    if not isinstance(claims.get("sub"), int) or claims.get("aud") != "api":
        raise HTTPException(401, "malformed token")
    if claims.get("jti") in revoked:
        raise HTTPException(401, "logged out")
    return dict(claims)


def _owned(doc_id: int, caller: int | None, check_owner: bool = True) -> dict[str, Any]:
    document = documents.get(doc_id)
    if document is None or (check_owner and document["owner"] != caller):
        raise HTTPException(404, "no such document")
    return document


@app.middleware("http")
async def log_authorization(request: Request, call_next: Any) -> Any:
    if options.log_authorization:
        print(f"{request.method} {request.url.path} authorization={request.headers.get('authorization')}")
    return await call_next(request)


@app.get("/health")
async def health() -> dict[str, bool]:
    return {"ok": True}


@app.post("/register", status_code=201)
async def register(credentials: Credentials) -> dict[str, Any]:
    if credentials.email in users:
        raise HTTPException(409, "already registered")
    user = {"id": next(user_ids), "email": credentials.email, "password": credentials.password}
    users[credentials.email] = user
    if options.echo_password:
        return user
    return {"id": user["id"], "email": user["email"]}


@app.post("/login")
async def login(credentials: Credentials) -> dict[str, Any]:
    user = users.get(credentials.email)
    if options.log_password:
        print(f"login attempt email={credentials.email} password={credentials.password}", flush=True)
    else:
        print(f"login attempt email={credentials.email}", flush=True)
    if user is None or user["password"] != credentials.password:
        raise HTTPException(401, "wrong email or password")
    return {"access_token": _token(user["id"], time.time() + 3600), "token_type": "bearer"}


@app.post("/logout", status_code=204)
async def logout(request: Request) -> Response:
    claims = _claims(request)
    if not options.keep_token_after_logout:
        revoked.add(str(claims["jti"]))
    return Response(status_code=204)


@app.post("/forgot-password", status_code=202)
async def forgot_password(reset: ResetRequest) -> Response:
    user = users.get(reset.email)
    if user is not None:
        token = _token(user["id"], time.time() + 900, audience="reset")
        if options.log_reset_token:
            print(f"User {user['id']} has forgot their password. Reset token: {token}", flush=True)
        else:
            print(f"User {user['id']} asked to reset their password", flush=True)
    return Response(status_code=202)


@app.post("/anything")
async def anything(request: Request) -> dict[str, Any]:
    return {"json": await request.json(), "url": str(request.url)}


@app.get("/token/expired")
async def expired_token(sub: int) -> dict[str, str]:
    return {"token": _token(sub, time.time() - 60)}


@app.get("/me")
async def me(request: Request) -> dict[str, Any]:
    caller = _caller(request)
    user = next(user for user in users.values() if user["id"] == caller)
    answer = {"id": user["id"], "email": user["email"]}
    if options.echo_token:
        answer["token"] = request.headers["authorization"].partition(" ")[2]
    return answer


@app.post("/documents", status_code=201)
async def create_document(document: DocumentIn, request: Request) -> dict[str, Any]:
    caller = _caller(request)
    stored = {"id": next(document_ids), "owner": caller, **document.model_dump()}
    documents[stored["id"]] = stored
    return stored


@app.get("/documents")
async def list_documents(request: Request) -> dict[str, Any]:
    caller = _caller(request)
    return {"documents": [document for document in documents.values() if document["owner"] == caller]}


@app.get("/documents/{doc_id}")
async def get_document(doc_id: int, request: Request) -> dict[str, Any]:
    return _owned(doc_id, _caller(request), check_owner=not options.no_owner_check)


@app.put("/documents/{doc_id}")
async def update_document(doc_id: int, document: DocumentIn, request: Request) -> dict[str, Any]:
    if options.no_auth:
        stored = _owned(doc_id, None, check_owner=False)
    else:
        stored = _owned(doc_id, _caller(request))
    stored.update(document.model_dump())
    return stored


@app.delete("/documents/{doc_id}", status_code=204)
async def delete_document(doc_id: int, request: Request) -> Response:
    _owned(doc_id, _caller(request), check_owner=not options.no_owner_check)
    del documents[doc_id]
    return Response(status_code=204)


@app.get("/documents/{doc_id}/export", response_class=PlainTextResponse)
async def export_document(doc_id: int, request: Request) -> str:
    if options.no_auth:
        document = _owned(doc_id, None, check_owner=False)
    else:
        document = _owned(doc_id, _caller(request))
    return f"{document['title']}\n\n{document['body']}\n"


def openapi() -> dict[str, Any]:
    """The document as the healthy service means it: every route but the public ones secured
    by a bearer token, whatever the switches did to the code."""
    if app.openapi_schema is None:
        document: dict[str, Any] = app.openapi_original()  # type: ignore[attr-defined]
        if options.openapi_without_security:  # as the framework wrote it: no security at all
            app.openapi_schema = document
            return document
        document.setdefault("components", {})["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
        }
        for path, item in document["paths"].items():
            for method, operation in item.items():
                if (method.upper(), path) not in PUBLIC:
                    operation["security"] = [{"bearer": []}]
        app.openapi_schema = document
    return app.openapi_schema


app.openapi_original = app.openapi  # type: ignore[attr-defined]
app.openapi = openapi  # type: ignore[method-assign]


def _exit_with_parent() -> None:
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


if __name__ == "__main__":
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    uvicorn.run(app, host="127.0.0.1", port=options.port, log_level="info", access_log=True)
