"""Journey programs on the C engine against a real HTTP server (this file, run as a script,
is the server): templates and encodings, extraction (json, header, regex, status), setup
and teardown per virtual user, closed and open models, polls, think times, cookies, step
timeouts, failures kept as evidence, coordinated-omission timing of iterations."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

# --------------------------------------------------------------------------- the server


class Handler(BaseHTTPRequestHandler):
    """/login (POST {"user": ...}) -> {"token", "id", "nested"} + X-Request-Id + a session cookie;
    /items/ID (GET with the bearer token of that id; DELETE counted); /static; /poll/KEY (ready
    at the 3rd call); /whoami (needs the session cookie); /logout (deletes it); /echo (POST:
    checks the JSON body and the query it was sent); /slow (answers after 2 s); /signup?user=U&email=E
    (409 for an address taken; a user's first sign-up takes the address but answers 503); /me?email=E&it=I
    (200 for a signed-up address); DELETE /account?email=E; /stats. Basic credentials:
    POST /basic/signup {"user": U} -> {"password"} (non-ASCII, with a colon), GET /basic/me and
    DELETE /basic/account: 200/204 only for `Authorization` exactly Basic base64(UTF-8 U:P)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes
    stats: Counter[str] = Counter()
    polls: Counter[str] = Counter()
    uuids: set[str] = set()
    accounts: dict[str, set[str]] = {}  # email -> the iteration UUIDs it was seen with
    signed_up: set[str] = set()  # users whose first sign-up was answered 503
    basic: dict[str, str] = {}  # Basic accounts: user -> password
    lock = threading.Lock()

    def log_message(self, *args: object) -> None:
        pass

    def reply(self, status: int, body: object, headers: tuple[tuple[str, str], ...] = ()) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def count(self, key: str) -> int:
        with self.lock:
            self.stats[key] += 1
            return self.stats[key]

    def query(self) -> dict[str, str]:
        return dict(pair.partition("=")[::2] for pair in self.path.partition("?")[2].split("&") if pair)

    def read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def basic_user(self) -> str | None:
        """The account whose credentials `Authorization` carries, byte for byte as RFC 7617's
        UTF-8 form encodes them; None for any other header."""
        header = self.headers.get("Authorization") or ""
        try:
            user, _, password = (
                base64.b64decode(header.removeprefix("Basic "), validate=True).decode().partition(":")
            )
        except ValueError:
            return None
        with self.lock:
            known = self.basic.get(user)
        canonical = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        return user if known == password and header == canonical else None

    def do_POST(self) -> None:
        body = self.read_body()
        if self.path == "/basic/signup":
            user = json.loads(body)["user"]
            with self.lock:
                password = self.basic[user] = f"pä:{len(self.basic)}/+{user[-3:]}"
            self.reply(201, {"password": password})
        elif self.path.startswith("/signup"):
            q = self.query()
            with self.lock:
                taken = q["email"] in self.accounts
                first = q["user"] not in self.signed_up
                if not taken:
                    self.accounts[q["email"]] = set()
                    self.signed_up.add(q["user"])
            self.count("signup 409" if taken else "signup 503" if first else "signup 201")
            self.reply(409 if taken else 503 if first else 201, {"email": q["email"]})
        elif self.path == "/login":
            n = self.count("login")
            try:
                user = json.loads(body)["user"]
            except (ValueError, KeyError):
                self.reply(400, {"error": "bad login body"})
                return
            self.reply(
                200,
                {"token": f"tok-{user}", "id": int(user) + 100, "nested": {"list": [1, {"k": 'v"q'}]}},
                (("X-Request-Id", f"  req-{n}  "), ("Set-Cookie", f"session=s{user}; Path=/; HttpOnly")),
            )
        elif self.path.startswith("/echo"):
            self.count("echo")
            query = self.path.partition("?")[2]
            for pair in query.split("&"):
                key, _, value = pair.partition("=")
                if key in ("i", "u"):
                    self.count(f"{key}={value}")
                elif key == "id":
                    with self.lock:
                        self.uuids.add(value)
                    self.count("uuid ok" if UUID.match(value) else "uuid bad")
            try:
                doc = json.loads(body)
            except ValueError:
                self.reply(400, {"error": "body is not JSON", "body": body.decode("latin-1")})
                return
            self.reply(200, {"query": query, "doc": doc})
        else:
            self.reply(404, {})

    def do_DELETE(self) -> None:
        if self.path == "/basic/account":
            user = self.basic_user()
            if user is not None:
                with self.lock:
                    del self.basic[user]
            self.count(f"basic delete {204 if user else 401}")
            self.reply(204 if user else 401, b"")
            return
        if self.path.startswith("/account"):
            with self.lock:
                found = self.accounts.pop(self.query()["email"], None) is not None
            self.count(f"account {204 if found else 404}")
            self.reply(204 if found else 404, b"")
            return
        self.count("delete")
        self.reply(204 if self.path.startswith("/items/") else 404, b"")

    def do_GET(self) -> None:
        path = self.path
        if path == "/stats":
            with self.lock:
                accounts = {email: len(seen) for email, seen in self.accounts.items()}
                self.reply(200, {**self.stats, "uuids": len(self.uuids), "accounts": accounts})
            return
        if path == "/basic/me":
            ok = self.basic_user() is not None
            self.count(f"basic {200 if ok else 401}")
            self.reply(200 if ok else 401, {})
            return
        if path.startswith("/me"):
            q = self.query()
            with self.lock:
                seen = self.accounts.get(q["email"])
                if seen is not None:
                    seen.add(q["it"])
                self.uuids.add(q["it"])
            self.count(f"me {200 if seen is not None else 404}")
            self.reply(200 if seen is not None else 404, {})
            return
        if path.startswith("/items/"):
            self.count("items")
            item = path.removeprefix("/items/")
            want = f"Bearer tok-{int(item) - 100}" if item.isdigit() else None
            if self.headers.get("Authorization") != want:
                self.reply(401, {"error": "bad token"})
                return
            self.reply(200, {"id": int(item), "name": f"item {item}"})
        elif path == "/static":
            self.count("static")
            self.reply(200, b"<html>static page: ok</html>")
        elif path.startswith("/poll/"):
            with self.lock:
                self.polls[path] += 1
                n = self.polls[path]
            self.count("poll")
            self.reply(200, {"state": "ready", "calls": n} if n >= 3 else {"state": "pending", "calls": n})
        elif path == "/whoami":
            self.count("whoami")
            cookie = self.headers.get("Cookie") or ""
            session = dict(p.split("=", 1) for p in cookie.split("; ") if "=" in p).get("session")
            self.reply(200 if session else 401, {"session": session, "cookie": cookie})
        elif path == "/logout":
            self.reply(200, {}, (("Set-Cookie", "session=; Max-Age=0"),))
        elif path == "/slow":
            time.sleep(2)
            self.reply(200, {})
        elif path == "/big":  # a value over the 64 KiB an extracted value may hold
            self.reply(200, {"big": "x" * 70_000, "small": "ok"})
        else:
            self.reply(404, {})


def serve(port: int) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    serve(int(sys.argv[1]))
    raise SystemExit(0)

# --------------------------------------------------------------------------- the tests

import pytest  # noqa: E402
from engine_support import free_port  # noqa: E402

from gonogo.loadgen.expect import JsonField, ResponseExpect  # noqa: E402
from gonogo.loadgen.program import Encoding, Extract, Program, ProgramResult, Step, run_program  # noqa: E402


class Server:
    def __init__(self, port: int, process: subprocess.Popen[bytes]) -> None:
        self.port = port
        self.process = process

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=10) as reply:
            data: dict[str, Any] = json.loads(reply.read())
            return data


@contextlib.contextmanager
def journey_server() -> Iterator[Server]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, __file__, str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == b"ready\n"
        yield Server(port, process)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


@pytest.fixture
def server() -> Iterator[Server]:
    with journey_server() as s:
        yield s


def get(path: str, *headers: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: t\r\n".encode() + b"".join(h.encode() + b"\r\n" for h in headers)


OK_JSON = ResponseExpect(statuses=(200,))

# slots
TOKEN, ID, REQ, STATUS, UUIDV, ITER, USER, QUOTE, ECHOED, NESTED = range(10)
NAMES = ("token", "id", "request_id", "status", "uuid", "iteration", "user", "quote", "echoed", "nested")


def login_step() -> Step:
    return Step(
        head=(b"POST /login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n",),
        body=(b'{"user": "', (USER, Encoding.JSON), b'"}'),
        extract=(
            Extract(TOKEN, "json", ("token",)),
            Extract(ID, "json", ("id",)),
            Extract(REQ, "header", text="X-Request-Id"),
            Extract(STATUS, "status"),
            Extract(NESTED, "json", ("nested", "list", 1)),
        ),
        expect=OK_JSON,
    )


def item_step() -> Step:
    return Step(
        head=(
            b"GET /items/",
            (ID, Encoding.PERCENT),
            b" HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer ",
            (TOKEN, Encoding.RAW),
            b"\r\n",
        ),
        expect=ResponseExpect(statuses=(200,), json=(JsonField("$.name", ("name",), "x"),)),
    )


def assert_step_invariants(raw: dict[str, Any]) -> None:
    for e in raw["endpoints"]:
        m = e["measured"]
        assert m["sent"] == m["responses"] + sum(m["errors"][2:8]) + m["unfinished"] or m["errors"][8] > 0
        assert sum(m["status"].values()) == m["responses"]


def test_closed_model_setup_templates_extraction_teardown(server: Server) -> None:
    """4 users: each logs in once (setup), then runs two journeys 2:1 with the extracted token,
    id and header; the echo journey checks every encoding server-side; teardown deletes."""
    echo = Step(
        head=(
            b"POST /echo?u=",
            (UUIDV, Encoding.PERCENT),
            b"&q=",
            (QUOTE, Encoding.PERCENT),
            b"&r=",
            (REQ, Encoding.PERCENT),
            b" HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n",
        ),
        body=(
            b'{"quote": "',
            (QUOTE, Encoding.JSON),
            b'", "iteration": ',
            (ITER, Encoding.RAW),
            b', "user": "',
            (USER, Encoding.JSON),
            b'", "status": "',
            (STATUS, Encoding.JSON),
            b'", "nested": ',
            (NESTED, Encoding.RAW),
            b"}",
        ),
        extract=(Extract(ECHOED, "regex", text='"quote": "([^"]*)'),),
        expect=OK_JSON,
    )
    item = Step(
        head=item_step().head,
        expect=ResponseExpect(statuses=(200,), json=(JsonField("$.name", ("name",), "item 103"),)),
    )
    program = Program(
        slots=len(NAMES),
        names=NAMES,
        steps=(
            login_step(),  # 0: setup
            item,  # 1
            Step(head=(get("/static"),), expect=ResponseExpect(body_contains="ok")),  # 2
            echo,  # 3
            Step(
                head=(b"DELETE /items/", (ID, Encoding.RAW), b" HTTP/1.1\r\nHost: t\r\n"),
                expect=ResponseExpect(statuses=(204,)),
            ),
        ),
        journeys=((2, (1, 2)), (1, (3,))),
        setup=(0,),
        teardown=(4,),
        initial=((QUOTE, b'he said "hi" \\ \x01 & caf\xc3\xa9/?'),),
        uuid_slot=UUIDV,
        iteration_slot=ITER,
        user_slot=USER,
    )
    result = run_program(program, "127.0.0.1", server.port, closed=True, users=4, duration=1.0, warmup=0.2)
    raw = result.raw
    assert raw["stopped"] is None
    eps = raw["endpoints"]
    # setup: once per user, in the warm-up counters only
    assert eps[0]["warmup"]["sent"] == eps[0]["warmup"]["responses"] == 4
    assert eps[0]["measured"]["sent"] == 0 and eps[0]["corrected"] == (0, b"")
    # teardown: once per user that was set up
    assert eps[4]["warmup"]["responses"] == 4 and eps[4]["warmup"]["status"] == {204: 4}
    stats = server.stats()
    assert stats["login"] == 4 and stats["delete"] == 4
    # item 103 is user 3's: the others fail their JSON field, as assertions kept as evidence
    walk, echoj = result.journeys
    assert walk.started > 20 and echoj.started > 10
    assert abs(walk.started - 2 * echoj.started) <= 4 + 2  # 2:1 mix per user, up to rounding
    m1 = eps[1]["measured"]
    assert m1["errors"][8] > 0 and m1["responses"] == m1["sent"]
    kept = eps[1]["failures"]
    assert len(kept) == 5 and all(
        f[2] == "json_value" and f[6] in (b'"item 100"', b'"item 101"', b'"item 102"') for f in kept
    )
    assert walk.failed == m1["errors"][8] and walk.failed_by_step == [walk.failed, 0]
    assert walk.passed == walk.completed - walk.failed == eps[2]["measured"]["responses"]
    assert walk.duration.get_total_count() == walk.passed
    assert walk.duration_uncorrected.get_total_count() == walk.passed
    # the echo journey: every encoding arrived intact (the server parsed the JSON body)
    m3 = eps[3]["measured"]
    assert echoj.passed == echoj.completed == m3["responses"] == m3["status"][200] and echoj.failed == 0
    assert eps[3]["failures"] == []
    # histograms hold every measured response, corrected and not
    for e in eps[1:4]:
        _first, counts = e["corrected"]
        assert sum(memoryview(counts).cast("Q")) == e["measured"]["responses"]
    assert sum(s["responses"] for s in raw["series"]) == sum(e["measured"]["responses"] for e in eps)
    assert_step_invariants(raw)


def test_encodings_builtins_and_extracted_values(server: Server) -> None:
    """What the server received: percent- and JSON-encoded values, the builtins (a fresh UUID
    per iteration, the iteration count, the user index), an extracted raw JSON object sent
    on, a regex group and an unescaped JSON string sent back: the last step's expect pins them."""
    quote = 'he said "hi" \\ \x01 & café/?'.encode()
    echo = Step(
        head=(
            b"POST /echo?q=",
            (QUOTE, Encoding.PERCENT),
            b"&i=",
            (ITER, Encoding.RAW),
            b"&u=",
            (USER, Encoding.RAW),
            b"&id=",
            (UUIDV, Encoding.PERCENT),
            b" HTTP/1.1\r\nHost: t\r\n",
        ),
        body=(b'{"quote": "', (QUOTE, Encoding.JSON), b'", "nested": ', (NESTED, Encoding.RAW), b"}"),
        extract=(
            Extract(ECHOED, "regex", text='"quote": "(([^"\\\\]|\\\\.)*)"'),  # the JSON-escaped text
            Extract(REQ, "json", ("query",)),
            Extract(STATUS, "json", ("doc", "nested")),  # an object: its raw JSON text
        ),
        expect=OK_JSON,
    )
    check = Step(
        head=(b"POST /echo HTTP/1.1\r\nHost: t\r\n",),
        body=(
            b'{"query": "',
            (REQ, Encoding.JSON),
            b'", "nested": ',
            (STATUS, Encoding.RAW),
            b', "echoed": "',
            (ECHOED, Encoding.RAW),
            b'"}',
        ),
        expect=ResponseExpect(
            statuses=(200,),
            json=(
                JsonField("$.doc.nested.k", ("doc", "nested", "k"), 'v"q'),
                JsonField("$.doc.echoed", ("doc", "echoed"), quote.decode()),
            ),
            body_contains="q=he%20said%20%22hi%22%20%5C%20%01%20%26%20caf%C3%A9%2F%3F&i=",
        ),
    )
    program = Program(
        slots=len(NAMES),
        names=NAMES,
        steps=(login_step(), echo, check),
        journeys=((1, (1, 2)),),
        setup=(0,),
        initial=((QUOTE, quote),),
        uuid_slot=UUIDV,
        iteration_slot=ITER,
        user_slot=USER,
        user_offset=7,
    )
    result = run_program(program, "127.0.0.1", server.port, closed=True, users=2, max_iterations=6)
    eps = result.raw["endpoints"]
    assert eps[2]["measured"]["status"] == {200: 6} and eps[2]["failures"] == [], eps[2]["failures"]
    assert result.journeys[0].passed == 6 and eps[1]["measured"]["errors"][8] == 0
    stats = server.stats()
    users = {k: v for k, v in stats.items() if k.startswith("u=")}
    # and the iterations of the first user set up while the other's setup ran: warm-up ones
    n = 6 + warmed_up(result)
    assert stats["login"] == 2 and sum(users.values()) == n and set(users) <= {"u=7", "u=8"}
    assert all(stats[f"i={i}"] == 1 for i in range(1, n + 1))
    assert stats["uuid ok"] == n and stats.get("uuid bad", 0) == 0 and stats["uuids"] == n


def test_polls_cookies_think_timeouts_and_failures(server: Server) -> None:
    """One user, six journeys twice each: cookies from setup kept (and a deletion undone at the
    next iteration), a poll that turns ready, a poll that never does, per-step think, a step
    timeout, an unset variable and an extraction that finds nothing, kept as evidence."""
    DOC, CALLS = 10, 11
    names = (*NAMES, "doc_id", "calls")
    login = login_step()
    poll = ResponseExpect(statuses=(200,), json=(JsonField("$.state", ("state",), "ready"),))
    steps = (
        Step(
            head=login.head, body=login.body, extract=login.extract, expect=OK_JSON, cookies=True
        ),  # 0 setup
        Step(head=(get("/whoami"),), expect=OK_JSON, cookies=True),  # 1
        Step(
            head=(b"GET /poll/", (UUIDV, Encoding.RAW), b" HTTP/1.1\r\nHost: t\r\n"),
            expect=poll,
            poll=(0.02, 2.0),
            extract=(Extract(CALLS, "regex", text='"calls": ([0-9]+)'),),
            think=0.1,
        ),  # 2
        Step(head=(b"POST /echo?i=", (CALLS, Encoding.RAW), b" HTTP/1.1\r\nHost: t\r\n"), body=(b"{}",)),  # 3
        Step(head=(get("/logout"),), cookies=True),  # 4
        Step(head=(get("/whoami"),), expect=OK_JSON, cookies=True),  # 5: 401, the session is gone
        Step(
            head=(b"GET /items/", (DOC, Encoding.PERCENT), b" HTTP/1.1\r\nHost: t\r\n"),
        ),  # 6: never set
        Step(head=login.head, body=login.body, extract=(Extract(TOKEN, "json", ("missing",)),)),  # 7
        Step(head=(get("/slow"),), timeout=0.3),  # 8
        Step(
            head=(b"GET /poll/never-", (UUIDV, Encoding.RAW), b" HTTP/1.1\r\nHost: t\r\n"),
            expect=ResponseExpect(statuses=(200,), json=(JsonField("$.state", ("state",), "never"),)),
            poll=(0.02, 0.1),
        ),  # 9
    )
    program = Program(
        slots=len(names),
        names=names,
        steps=steps,
        journeys=((1, (1, 2, 3)), (1, (4, 5)), (1, (6,)), (1, (7,)), (1, (8,)), (1, (9,))),
        setup=(0,),
        uuid_slot=UUIDV,
        user_slot=USER,
    )
    started = time.monotonic()
    result = run_program(
        program, "127.0.0.1", server.port, closed=True, users=1, max_iterations=12, timeout=5
    )
    assert time.monotonic() - started < 5
    eps = [e["measured"] for e in result.raw["endpoints"]]
    failures = [e["failures"] for e in result.raw["endpoints"]]
    stats = server.stats()
    polling, logout, unset, extract, slow, never = result.journeys
    # the setup's session cookie is sent; the poll is one request per iteration, ready at call 3
    assert eps[1]["status"] == {200: 2}
    assert eps[2]["sent"] == eps[2]["responses"] == 2 and eps[2]["status"] == {200: 2}
    assert stats["i=3"] == 2  # the regex group of the poll's passing response, sent on
    assert (
        polling.passed == 2 and polling.duration_uncorrected.get_min_value() >= 140_000
    )  # 2 intervals + think
    # logout deleted the cookie: whoami fails with 401 in that iteration only
    assert eps[5]["status"] == {401: 2} and eps[5]["errors"][0] == 2 and logout.failed_by_step == [0, 2]
    # not sent: a variable never set
    assert eps[6]["sent"] == 2 and eps[6]["responses"] == 0 and eps[6]["errors"][8] == 2
    assert [(f[0], f[2], f[6]) for f in failures[6]] == [(0, "variable", b"variable doc_id is not set")] * 2
    assert unset.failed == 2 and unset.failed_by_step == [2]
    # the extraction found nothing: an assertion on a 200, with the body kept
    assert eps[7]["status"] == {200: 2} and eps[7]["errors"][8] == 2
    assert [(f[2], f[6]) for f in failures[7]] == [("extract", b"extract token: $.missing not found")] * 2
    assert b'"token"' in failures[7][0][5]
    # the step's own timeout (0.3 s), not the engine's (5 s)
    assert eps[8]["errors"][6] == 2 and slow.failed_by_step == [2]
    # a poll that never holds: one request each, an assertion, only its last response kept
    assert eps[9]["sent"] == eps[9]["responses"] == 2 and eps[9]["errors"][8] == 2
    assert [f[2] for f in failures[9]] == ["json_value", "json_value"] and len(failures[9]) == 2
    # 3 calls per ready poll; the never-ready one retries every 0.02 s for 0.1 s: about 5 calls,
    # fewer on a loaded machine, but never only its first
    assert stats["poll"] >= 2 * 3 + 2 * 2
    assert never.failed == 2 and extract.failed == 2
    assert sum(j.started for j in result.journeys) == 12


def test_open_model_setup_per_user_and_coordinated_omission(server: Server) -> None:
    """100 iterations/s for 1.5 s on at most 8 virtual users; the server stalls 0.4 s: the
    iterations that arrived meanwhile wait for a user, and their first step's corrected
    latency and the iterations' corrected durations show the stall."""
    program = Program(
        slots=len(NAMES),
        names=NAMES,
        steps=(
            login_step(),
            Step(head=item_step().head, expect=OK_JSON),
            Step(head=(get("/static"),)),
            Step(
                head=(b"DELETE /items/", (ID, Encoding.RAW), b" HTTP/1.1\r\nHost: t\r\n"),
            ),
        ),
        journeys=((1, (1, 2)),),
        setup=(0,),
        teardown=(3,),
        user_slot=USER,
    )

    def stall() -> None:
        time.sleep(0.5)
        os.kill(server.process.pid, signal.SIGSTOP)
        try:
            time.sleep(0.4)
        finally:
            os.kill(server.process.pid, signal.SIGCONT)

    thread = threading.Thread(target=stall)
    thread.start()
    try:
        result = run_program(
            program, "127.0.0.1", server.port, closed=False, stages=[(1.5, 100.0, 100.0)], max_connections=8
        )
    finally:
        thread.join()
    eps = result.raw["endpoints"]
    (journey,) = result.journeys
    first = eps[1]["measured"]
    assert journey.started == journey.completed == journey.passed == 150 and first["dropped"] == 0
    assert first["late"] > 10  # queued for a user during the stall
    users = eps[0]["warmup"]["sent"]
    assert 1 <= users <= 8 and eps[0]["warmup"]["status"] == {200: users}
    assert eps[3]["warmup"]["status"] == {204: users} and server.stats()["delete"] == users
    from gonogo.loadgen import histogram as hist

    corrected = hist.from_counts(*eps[1]["corrected"])
    assert corrected.get_total_count() == 150 and corrected.get_max_value() >= 350_000
    assert journey.duration.get_max_value() >= 350_000
    assert journey.duration.get_max_value() >= journey.duration_uncorrected.get_max_value()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"extract": [(0, "regex", "a(")]}, "the regex 'a(' does not compile"),
        ({"extract": [(5, "status")]}, "slot 5 is not between 0 and 1"),
        ({"head": [b"GET / HTTP/1.1\r\n", (0, 7)]}, "encoding 7"),
        ({"extract": [(0, "xpath", "/a")]}, "kind 'xpath'"),
        ({"head": [(0, 0)]}, "request line's literal text"),
        ({"poll": (0.0, 1.0)}, "poll interval and timeout must be > 0"),
    ],
)
def test_bad_programs_are_refused_naming_the_problem(change: dict[str, object], message: str) -> None:
    from gonogo.loadgen import _engine

    step: dict[str, object] = {"head": [b"GET / HTTP/1.1\r\nHost: t\r\n"], **change}
    program = {"slots": 2, "steps": [step], "journeys": [(1, [0])]}
    with pytest.raises((ValueError, TypeError), match=re.escape(message)):
        _engine.Engine("127.0.0.1", 9, [], [], closed=True, duration=1, program=program)
    good = {**program, "steps": [{"head": [b"GET / HTTP/1.1\r\n"]}], "setup": [3]}
    with pytest.raises(ValueError, match="setup: step 3 does not exist"):
        _engine.Engine("127.0.0.1", 9, [], [], closed=True, duration=1, program=good)


def test_open_model_queue_drops_and_stop(server: Server) -> None:
    """One virtual user held by a 2 s step (its own timeout: 5 s): arrivals queue, are dropped
    after `timeout` (0.3 s), and stop() ends the run: the step in flight is unfinished, the
    queued arrivals unsent, and no teardown runs."""
    program = Program(
        slots=1,
        steps=(Step(head=(get("/slow"),), timeout=5.0), Step(head=(get("/static"),))),
        journeys=((1, (0,)),),
        teardown=(1,),
    )
    stop = threading.Event()
    timer = threading.Timer(1.0, stop.set)
    timer.start()
    try:
        result = run_program(
            program,
            "127.0.0.1",
            server.port,
            closed=False,
            stages=[(3.0, 20.0, 20.0)],
            max_connections=1,
            timeout=0.3,
            stop=stop,
        )
    finally:
        timer.cancel()
    raw = result.raw
    first = raw["endpoints"][0]["measured"]
    assert raw["stopped"] == "stop"
    assert first["sent"] == first["unfinished"] == 1 and first["responses"] == 0
    assert first["dropped"] >= 10 and first["unsent"] >= 1
    assert 18 <= first["sent"] + first["dropped"] + first["unsent"] <= 22  # the arrivals of about 1 s
    assert result.journeys[0].started == 1 and result.journeys[0].completed == 0
    assert raw["endpoints"][1]["warmup"]["sent"] == 0  # no teardown after stop()


def test_a_users_uuid_is_drawn_per_setup_attempt_and_kept_by_its_iterations(server: Server) -> None:
    """3 users sign up with their own UUID (`user_uuid_slot`); each first sign-up takes the
    address but fails (503): the retry draws a new UUID (the old address would be 409). The
    iterations and the teardown use the address of the sign-up that passed; `{uuid}` is
    fresh for each iteration."""
    IT, MINE, USERN = 0, 1, 2
    program = Program(
        slots=3,
        names=("uuid", "user uuid", "user"),
        steps=(
            Step(
                head=(
                    b"POST /signup?user=",
                    (USERN, Encoding.RAW),
                    b"&email=",
                    (MINE, Encoding.PERCENT),
                    b" HTTP/1.1\r\nHost: t\r\n",
                ),
                body=(b"{}",),
                expect=ResponseExpect(statuses=(201,)),
            ),
            Step(
                head=(
                    b"GET /me?email=",
                    (MINE, Encoding.PERCENT),
                    b"&it=",
                    (IT, Encoding.PERCENT),
                    b" HTTP/1.1\r\nHost: t\r\n",
                ),
                expect=ResponseExpect(statuses=(200,)),
            ),
            Step(
                head=(b"DELETE /account?email=", (MINE, Encoding.PERCENT), b" HTTP/1.1\r\nHost: t\r\n"),
                expect=ResponseExpect(statuses=(204,)),
            ),
        ),
        journeys=((1, (1,)),),
        setup=(0,),
        teardown=(2,),
        uuid_slot=IT,
        user_uuid_slot=MINE,
        user_slot=USERN,
    )
    result = run_program(
        program, "127.0.0.1", server.port, closed=True, users=3, duration=0.5, think_time=0.05
    )
    eps = result.raw["endpoints"]
    stats = server.stats()
    assert stats["signup 503"] == stats["signup 201"] == 3 and "signup 409" not in stats
    assert eps[0]["warmup"]["status"] == {503: 3, 201: 3}
    passed = result.journeys[0].passed
    sent = passed + warmed_up(result)  # with the warm-up's, while the other setups ran
    assert passed >= 9 and stats["me 200"] == sent and "me 404" not in stats
    assert stats["account 204"] == 3 and "account 404" not in stats
    # left: the 3 addresses of the failed first attempts, never used again
    assert stats["accounts"] == {email: 0 for email in stats["accounts"]} and len(stats["accounts"]) == 3
    # every iteration drew its own {uuid}
    assert stats["uuids"] == sent and eps[1]["measured"]["status"] == {200: passed}


def test_compiled_journey_json_types_header_values_and_json_existence(server: Server) -> None:
    """Journeys compiled from a plan: a lone "{id}" in a JSON body sends what the Python driver
    sends (the number, the string, the object as extracted); headers compared by value and by
    absence, JSON fields by existence; each check failing where it should, with its reason."""
    from gonogo.loadgen.journey_compile import Compiled, compile_journeys
    from gonogo.loadgen.settings import LoadSettings

    login = {
        "name": "login",
        "request": {"method": "POST", "path": "/login", "json": {"user": "1"}},
        "extract": {"id": "json:$.id", "token": "json:$.token", "nested": "json:$.nested"},
    }
    echo = {"method": "POST", "path": "/echo", "json": {"id": "{id}"}}
    journeys = {
        "ok": [
            login,
            {
                "name": "echo",
                "request": {
                    "method": "POST",
                    "path": "/echo",
                    "json": {"id": "{id}", "token": "{token}", "nested": "{nested}", "label": "id {id}"},
                },
                "expect": {
                    "status": 200,
                    "headers": {"Content-Type": "application/json", "X-Secret": {"exists": False}},
                    "json": {
                        "$.doc.id": 101,
                        "$.doc.token": "tok-1",
                        "$.doc.nested.list[1].k": 'v"q',
                        "$.doc.label": "id 101",
                        "$.doc.nested": {"exists": True},
                        "$.doc.missing": {"exists": False},
                    },
                },
            },
        ],
        "other_type": [
            {
                "name": "s",
                "request": {"path": "/static"},
                "expect": {"headers": {"Content-Type": "text/html"}},
            }
        ],
        "present": [
            {
                "name": "s",
                "request": {"path": "/static"},
                "expect": {"headers": {"Content-Length": {"exists": False}}},
            }
        ],
        "not_absent": [
            login,
            {"name": "s", "request": echo, "expect": {"json": {"$.doc.id": {"exists": False}}}},
        ],
        "not_there": [
            login,
            {"name": "s", "request": echo, "expect": {"json": {"$.nothing": {"exists": True}}}},
        ],
    }
    settings = LoadSettings.model_validate(
        {
            "model": "closed",
            "users": 1,
            "duration": "1s",
            "journeys": {name: {"steps": steps} for name, steps in journeys.items()},
        }
    )
    compiled = compile_journeys(settings, f"http://127.0.0.1:{server.port}", files={}, expand=str)
    assert isinstance(compiled, Compiled), compiled
    result = run_program(compiled.program, "127.0.0.1", server.port, closed=True, users=1, max_iterations=10)
    eps = result.raw["endpoints"]
    assert [j.started for j in result.journeys] == [2] * 5
    ok = result.journeys[0]
    assert ok.passed == 2 and eps[1]["measured"]["status"] == {200: 2} and eps[1]["failures"] == []
    reasons = {}
    for index, step in enumerate(compiled.steps):
        kept = eps[index]["failures"]
        if kept:
            reasons[step.name] = {step.expect.failure(step.name, f).reason for f in kept}
    assert reasons == {
        "other_type.s": {'header Content-Type is "application/json", expected "text/html"'},
        "present.s": {'header Content-Length is "28", expected it to be absent'},
        "not_absent.s": {"$.doc.id is 101, expected it to be absent"},
        "not_there.s": {"$.nothing is missing, expected it to exist"},
    }
    assert [j.failed for j in result.journeys] == [0, 2, 2, 2, 2]


def test_basic_credentials_with_variables(server: Server) -> None:
    """Basic credentials from variables, compiled to a derived slot the engine base64-encodes
    before each send: the user from the setup's {uuid}, the password extracted at sign-up
    (non-ASCII, with a colon), kept by the iterations and the teardown; a journey's own
    per-iteration account. The server accepts only the exact bytes. A derived slot whose
    variable is not set fails the step unsent, naming that variable."""
    from gonogo.loadgen.journey_compile import Compiled, compile_journeys
    from gonogo.loadgen.settings import LoadSettings

    def signup(user: str, into: str) -> dict[str, Any]:
        request = {"method": "POST", "path": "/basic/signup", "json": {"user": user}}
        return {
            "name": "signup",
            "request": request,
            "expect": {"status": 201},
            "extract": {into: "json:$.password"},
        }

    def me(user: str, password: str) -> dict[str, Any]:
        return {"name": "me", "request": {"path": "/basic/me", "auth": {"basic": [user, password]}}}

    settings = LoadSettings.model_validate(
        {
            "model": "closed",
            "users": 2,
            "duration": "1s",
            "setup": {"variables": {"user": "u-{uuid}"}, "steps": [signup("{user}", "password")]},
            "journeys": {
                "mine": {"steps": [me("{user}", "{password}")]},
                "fresh": {
                    "variables": {"name": "it-{uuid}"},  # 39 bytes: every base64 padding
                    "steps": [signup("{name}", "secret"), me("{name}", "{secret}")],
                },
            },
            "teardown": {
                "steps": [
                    {
                        "name": "close",
                        "request": {
                            "method": "DELETE",
                            "path": "/basic/account",
                            "auth": {"basic": ["{user}", "{password}"]},
                        },
                        "expect": {"status": 204},
                    }
                ]
            },
        }
    )
    compiled = compile_journeys(settings, f"http://127.0.0.1:{server.port}", files={}, expand=str)
    assert isinstance(compiled, Compiled), compiled
    assert len(compiled.program.derived) == 2  # the setup's pair once, for the journey and the teardown
    result = run_program(compiled.program, "127.0.0.1", server.port, closed=True, users=2, max_iterations=20)
    mine, fresh = result.journeys
    assert mine.passed + fresh.passed == 20 and mine.passed > 0 and fresh.passed > 0
    stats = server.stats()
    sent = 20 + warmed_up(result)
    assert stats["basic 200"] == sent and "basic 401" not in stats
    assert stats["basic delete 204"] == 2 and "basic delete 401" not in stats

    USER, PASSWORD, PAIR = 0, 1, 2
    program = Program(
        slots=3,
        steps=(
            Step(
                head=(
                    b"GET /basic/me HTTP/1.1\r\nHost: t\r\nAuthorization: Basic ",
                    (PAIR, Encoding.BASE64),
                    b"\r\n",
                )
            ),
        ),
        journeys=((1, (0,)),),
        initial=((USER, b"nobody"),),
        derived=((PAIR, ((USER, Encoding.RAW), b":", (PASSWORD, Encoding.RAW))),),
        names=("user", "password", "user:password"),
    )
    unset = run_program(program, "127.0.0.1", server.port, closed=True, users=1, max_iterations=1)
    failures = unset.raw["endpoints"][0]["failures"]
    assert [(f[2], f[6]) for f in failures] == [("variable", b"variable password is not set")]
    assert server.stats()["basic 200"] == sent  # nothing sent


def test_iterations_are_numbered_apart_across_workers(server: Server) -> None:
    """Two engines numbered as run_load's workers 0 and 1 of 2: their `{iteration}` values
    interleave (1, 3, 5 and 2, 4, 6) and never coincide."""
    step = Step(head=(b"POST /echo?i=", (0, Encoding.RAW), b" HTTP/1.1\r\nHost: t\r\n"), body=(b"{}",))
    for worker in (0, 1):
        program = Program(
            slots=1,
            steps=(step,),
            journeys=((1, (0,)),),
            iteration_slot=0,
            iteration_offset=worker,
            iteration_stride=2,
        )
        run_program(program, "127.0.0.1", server.port, closed=True, users=2, max_iterations=3)
    stats = server.stats()
    assert {k: v for k, v in stats.items() if k.startswith("i=")} == {f"i={n}": 1 for n in range(1, 7)}
    from gonogo.loadgen import _engine

    bad = {"slots": 1, "steps": [{"head": [b"GET / HTTP/1.1\r\n"]}], "journeys": [(1, [0])]}
    with pytest.raises(ValueError, match="iteration_offset below it"):
        _engine.Engine(
            "127.0.0.1",
            9,
            [],
            [],
            closed=True,
            duration=1,
            program={**bad, "iteration_offset": 2, "iteration_stride": 2},
        )


def test_extracted_values_caps_teardown_bound_and_open_model_setup_failures(server: Server) -> None:
    """Closed, one user: a header's value extracted trimmed, the status as text, a regex
    without a group (the whole match), values over 64 KiB refused by name, and a teardown
    cut at `timeout`. Then open, two users: each one's first setup fails (counted on the
    arrival that took the user, `failed_setup`), the next arrival sets it up again."""
    BIG = 10
    names = (*NAMES, "big")
    steps = (
        login_step(),  # 0: setup (login 1: X-Request-Id "  req-1  ")
        Step(
            head=(
                b"POST /echo?r=",
                (REQ, Encoding.PERCENT),
                b"&s=",
                (STATUS, Encoding.PERCENT),
                b"&e HTTP/1.1\r\nHost: t\r\n",
            ),
            body=(b"{}",),
            expect=ResponseExpect(statuses=(200,), body_contains='"query": "r=req-1&s=200&e"'),
            extract=(Extract(ECHOED, "regex", text="req-[0-9]+&s=[0-9]+"),),
        ),  # 1
        Step(
            head=(b"POST /echo HTTP/1.1\r\nHost: t\r\n",),
            body=(b'{"m": "', (ECHOED, Encoding.JSON), b'"}'),
            expect=ResponseExpect(statuses=(200,), json=(JsonField("$.doc.m", ("doc", "m"), "req-1&s=200"),)),
        ),  # 2
        Step(head=(get("/big"),), extract=(Extract(BIG, "json", ("big",)),)),  # 3
        Step(head=(get("/big"),), extract=(Extract(BIG, "regex", text="x+"),)),  # 4
        Step(head=(get("/big"),), extract=(Extract(BIG, "json_value", ("small",)),)),  # 5
        Step(
            head=(b"POST /echo HTTP/1.1\r\nHost: t\r\n",),
            body=(b'{"small": ', (BIG, Encoding.RAW), b"}"),
            expect=ResponseExpect(statuses=(200,), json=(JsonField("$.doc.small", ("doc", "small"), "ok"),)),
        ),  # 6
        Step(head=(get("/slow"),)),  # 7: teardown
    )
    program = Program(
        slots=len(names),
        names=names,
        steps=steps,
        journeys=((1, (1, 2)), (1, (3,)), (1, (4,)), (1, (5, 6))),
        setup=(0,),
        teardown=(7,),
        user_slot=USER,
    )
    started = time.monotonic()
    result = run_program(
        program, "127.0.0.1", server.port, closed=True, users=1, max_iterations=4, timeout=0.3
    )
    assert time.monotonic() - started < 1.5  # the teardown's 2 s answer was not waited for
    eps = result.raw["endpoints"]
    assert [j.passed for j in result.journeys] == [1, 0, 0, 1], [e["failures"] for e in eps]
    assert [f[6] for f in eps[3]["failures"]] == [b"extract big: $.big is over 65536 bytes"]
    assert [f[6] for f in eps[4]["failures"]] == [b"extract big: the match is over 65536 bytes"]
    teardown = eps[7]["warmup"]
    assert teardown["sent"] == 1 and teardown["responses"] == 0 and teardown["errors"][6] == 1

    # the open model: a failed setup is the failure of the arrival that took the user
    signup = Step(
        head=(
            b"POST /signup?user=",
            (USER, Encoding.RAW),
            b"&email=u",
            (USER, Encoding.RAW),
            b"-",
            (UUIDV, Encoding.RAW),
            b" HTTP/1.1\r\nHost: t\r\n",
        ),
        body=(b"{}",),
        expect=ResponseExpect(statuses=(201,)),
    )
    program = Program(
        slots=len(NAMES),
        names=NAMES,
        steps=(signup, Step(head=(get("/static"),))),
        journeys=((1, (1,)),),
        setup=(0,),
        user_uuid_slot=UUIDV,
        user_slot=USER,
    )
    result = run_program(
        program, "127.0.0.1", server.port, closed=False, stages=[(0.5, 20.0, 20.0)], max_connections=2
    )
    (journey,) = result.journeys
    users = result.raw["endpoints"][0]["warmup"]["status"][503]  # the users that ran (1 or 2)
    assert result.raw["endpoints"][0]["warmup"]["status"] == {503: users, 201: users}
    assert journey.started == journey.completed == 10 and journey.failed == journey.failed_setup == users
    assert journey.passed == 10 - users


def test_open_model_stages_and_poisson_arrivals_are_iterations(server: Server) -> None:
    """Arrivals on stages (20/s for 0.5 s, then 60/s for 0.5 s) are iterations: 10 + 30 of
    them; Poisson arrivals on the same stages (seeded) about as many, at irregular times."""
    program = Program(slots=1, steps=(Step(head=(get("/static"),)),), journeys=((1, (0,)),))
    stages = [(0.5, 20.0, 20.0), (0.5, 60.0, 60.0)]
    even = run_program(program, "127.0.0.1", server.port, closed=False, stages=stages, max_connections=4)
    assert even.journeys[0].started == even.journeys[0].passed == 40
    assert even.raw["endpoints"][0]["measured"]["responses"] == 40
    poisson = run_program(
        program,
        "127.0.0.1",
        server.port,
        closed=False,
        stages=stages,
        max_connections=4,
        poisson=True,
        seed=7,
    )
    started = poisson.journeys[0].started
    assert 20 <= started <= 65 and poisson.journeys[0].passed == started


def warmed_up(result: ProgramResult) -> int:
    """The warm-up iterations that passed: closed model with a setup, those of the users set
    up while others' setups still ran (the measured phase waits for every setup)."""
    return sum(journey.warmup["passed"] for journey in result.journeys)
