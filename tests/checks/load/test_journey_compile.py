"""The plan's journeys compiled into the C engine's program: what each feature becomes, byte
for byte, and the reason given for each one the C engine cannot run (pure: nothing is sent)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from gonogo.journey.engine import USER_AGENT
from gonogo.loadgen.journey_compile import (
    BASE64,
    JSON_STRING,
    PERCENT,
    RAW,
    Compiled,
    Fallback,
    compile_journeys,
    driver_line,
)
from gonogo.loadgen.journey_load import run_journey_load
from gonogo.loadgen.program import Part
from gonogo.loadgen.settings import LoadSettings

BASE = "http://127.0.0.1:8080/api"


def settings(journeys: dict[str, Any], **more: Any) -> LoadSettings:
    return LoadSettings.model_validate(
        {"model": "closed", "users": 2, "duration": "1s", "journeys": journeys, **more}
    )


def compiled(journeys: dict[str, Any], **more: Any) -> Compiled:
    result = compile_journeys(settings(journeys, **more), BASE, files={}, expand=lambda text: f"<{text}>")
    assert isinstance(result, Compiled), result
    return result


def fallback(steps: list[dict[str, Any]], **more: Any) -> str:
    result = compile_journeys(settings({"j": {"steps": steps}}, **more), BASE, files={}, expand=str)
    assert isinstance(result, Fallback), result
    return result.reason


def one(step: dict[str, Any], **more: Any) -> tuple[Compiled, int]:
    """A journey whose first step logs in (extracting token, id and location), then `step`."""
    login = {
        "name": "login",
        "request": {"method": "POST", "path": "/login", "json": {"user": "u"}},
        "extract": {"token": "json:$.token", "id": "json:$.items[0].id", "where": "header:Location"},
    }
    program = compiled({"j": {"steps": [login, {"name": "s", **step}]}}, **more)
    return program, 1


def text(parts: tuple[Part, ...] | None, names: tuple[str, ...] | None) -> str:
    """Parts shown as text, a slot as <name:encoding>."""
    assert parts is not None and names is not None
    return "".join(
        part.decode() if isinstance(part, bytes) else f"<{names[part[0]]}:{int(part[1])}>" for part in parts
    )


def test_a_request_is_written_as_the_journeys_client_sends_it() -> None:
    program, index = one(
        {
            "request": {
                "path": "/items/{id}/x y",
                "query": {"q": "a b/c", "n": "{id}", "flag": True, "many": [1, 2]},
                "headers": {"X-Trace": "t-{uuid}", "Accept": "application/json"},
                "auth": {"bearer": "{token}"},
            },
            "request_timeout": "2s",
        }
    )
    step = program.program.steps[index]
    names = program.program.names
    assert text(step.head, names) == (
        "GET /api/items/<id:1>/x%20y?q=a+b%2Fc&n=<id:1>&flag=true&many=1&many=2 HTTP/1.1\r\n"
        f"Host: 127.0.0.1:8080\r\nConnection: keep-alive\r\nUser-Agent: {USER_AGENT}\r\n"
        "X-Trace: t-<uuid:0>\r\nAccept: application/json\r\nAuthorization: Bearer <token:0>\r\n"
    )
    assert b"Accept-Encoding" not in b"".join(p for p in step.head if isinstance(p, bytes))
    assert step.body is None and step.timeout == 2.0 and step.cookies and step.poll is None
    assert (PERCENT, RAW) == (1, 0)


def test_json_bodies_splice_variables_escaped_and_keep_known_types() -> None:
    program, index = one(
        {
            "request": {
                "method": "POST",
                "path": "/docs",
                "json": {
                    "title": 'doc "{iteration}" of {journey}',
                    "number": "{iteration}",
                    "owner": "{id}",
                    "owner_again": "{id}",
                    "where": "{base_url}",
                    "via": "{where}",
                    "tags": ["é", 1.5, None, True, "{uuid}"],
                    "{journey}-key": "{token}",
                    "literal": "{{id}}",
                },
            }
        }
    )
    step = program.program.steps[index]
    assert text(step.body, program.program.names) == (
        '{"title":"doc \\"<iteration:2>\\" of j","number":<iteration:0>,"owner":<id (JSON):0>,'
        '"owner_again":<id (JSON):0>,"where":"<{base_url}>","via":"<where:2>",'
        '"tags":["é",1.5,null,true,"<uuid:2>"],"j-key":<token (JSON):0>,"literal":"{id}"}'
    )
    # a lone json: value is sent with its JSON type: the login step also keeps its JSON text
    # (once, however many use it); a header: value is a string
    login = program.program.steps[0]
    assert [e.engine_form()[1:] for e in login.extract][3:] == [
        ("json_value", ("items", 0, "id")),
        ("json_value", ("token",)),
    ]
    assert b"Content-Type: application/json\r\n" in step.head[0]
    assert JSON_STRING == 2


def test_form_text_and_generated_bodies() -> None:
    program = compiled(
        {
            "j": {
                "steps": [
                    {
                        "name": "form",
                        "request": {"method": "PUT", "path": "/f", "form": {"a b": "c&d", "e": "{uuid}"}},
                    },
                    {"name": "text", "request": {"method": "POST", "path": "/t", "body": "id={uuid}\n"}},
                    {
                        "name": "upload",
                        "request": {
                            "method": "POST",
                            "path": "/u",
                            "body": {"generate": "100KB", "filename": "{uuid}.png"},
                        },
                    },
                    {"name": "empty", "request": {"method": "POST", "path": "/e"}},
                ]
            }
        }
    )
    form, body, upload, empty = program.program.steps
    names = program.program.names
    assert text(form.body, names) == "a+b=c%26d&e=<uuid:1>"
    assert b"Content-Type: application/x-www-form-urlencoded\r\n" in form.head[0]
    assert text(body.body, names) == "id=<uuid:0>\n" and b"Content-Type" not in body.head[0]
    assert upload.body is not None and len(upload.body) == 1 and len(upload.body[0]) == 100_000
    assert b"Content-Type: image/png\r\n" in upload.head[0]
    assert empty.body is None and empty.head[0].endswith(b"Content-Length: 0\r\n")


def test_expect_extract_and_poll_become_the_engines() -> None:
    program, index = one(
        {
            "request": {"path": "/jobs/{id}"},
            "expect": {
                "status": [200, 202],
                "json": {"$.kind": "job", "$.size": 3, "$.ok": True, "$.gone": None},
                "headers": {"X-Id": {"exists": True}},
                "text": {"contains": '"kind"'},
            },
            "poll": {"until": {"$.state": "done"}, "status": 200, "interval": "100ms", "timeout": "5s"},
            "extract": {"result": "json:$.result", "etag": "header:ETag", "code": "status"},
        }
    )
    step = program.program.steps[index]
    assert step.poll == (0.1, 5.0)
    assert step.expect is not None
    assert step.expect.statuses == (200,)  # the poll's status, among the expected ones
    assert {f.path: f.value for f in step.expect.json} == {
        "$.kind": "job",
        "$.size": 3,
        "$.ok": True,
        "$.gone": None,
        "$.state": "done",
    }
    assert step.expect.headers == (("X-Id", ""),) and step.expect.body_contains == '"kind"'
    checks = (
        one(
            {
                "request": {"path": "/"},
                "expect": {
                    "headers": {"Content-Type": "application/json", "X-Gone": {"exists": False}, "X-N": 5},
                    "json": {
                        "$.a": {"exists": True},
                        "$.b": {"exists": False},
                        "$.c": {"exists": True, "equals": 2},
                    },
                },
            }
        )[0]
        .program.steps[1]
        .expect
    )
    assert checks is not None
    assert checks.headers == (
        ("Content-Type", "application/json", "equals"),
        ("X-Gone", "", "absent"),
        ("X-N", "5", "equals"),
    )
    assert [(f.path, f.value, f.how) for f in checks.json] == [
        ("$.a", None, "exists"),
        ("$.b", None, "absent"),
        ("$.c", 2, "equals"),
    ]
    forms = [e.engine_form() for e in step.extract]
    assert [f[1:] for f in forms] == [("json", ("result",)), ("header", "etag"), ("status",)]
    login = program.program.steps[0].extract
    assert [e.engine_form()[1:] for e in login] == [
        ("json", ("token",)),
        ("json", ("items", 0, "id")),
        ("header", "location"),
    ]
    assert program.steps[index].name == "j.s" and program.steps[index].extract == ("result", "etag", "code")


def test_setup_feeds_the_journeys_and_the_teardown() -> None:
    program = compiled(
        {
            "a": {"steps": [{"name": "me", "request": {"path": "/me", "auth": {"bearer": "{token}"}}}]},
            "b": {"steps": [{"name": "me", "request": {"path": "/me/{user_id}"}}]},
        },
        journey_weights={"a": 3},
        components={"b": "profile"},
        setup={
            "variables": {"email": "u-{uuid}@example.test"},
            "steps": [
                {
                    "name": "signup",
                    "request": {"method": "POST", "path": "/signup", "json": {"email": "{email}"}},
                    "extract": {"user_id": "json:$.id"},
                },
                {
                    "name": "login",
                    "request": {"method": "POST", "path": "/login", "auth": {"basic": ["admin", "pw"]}},
                    "extract": {"token": "json:$.token"},
                },
            ],
        },
        teardown={"steps": [{"name": "bye", "request": {"method": "DELETE", "path": "/users/{user_id}"}}]},
    )
    p = program.program
    assert (p.setup, p.journeys, p.teardown) == ((0, 1), ((3, (2,)), (1, (3,))), (4,))
    assert [s.name for s in program.steps] == ["setup.signup", "setup.login", "a.me", "b.me", "teardown.bye"]
    assert [s.component for s in program.steps] == ["setup", "setup", "default", "profile", "teardown"]
    names = p.names
    assert text(p.steps[0].body, names) == '{"email":"u-<uuid:2>@example.test"}'
    basic = base64.b64encode(b"admin:pw").decode()
    assert f"Authorization: Basic {basic}\r\n" in text(p.steps[1].head, names)
    assert "Bearer <token:0>" in text(p.steps[2].head, names)
    assert text(p.steps[4].head, names).startswith("DELETE /api/users/<user_id:1> HTTP/1.1")
    assert (p.uuid_slot, p.iteration_slot, p.user_uuid_slot, p.slots) == (0, 1, 2, 5)


@pytest.mark.parametrize(
    ("step", "reason"),
    [
        ({"request": {"path": "/", "raw": True}}, "raw: true requests run on the Python driver"),
        ({"request": {"method": "POST", "path": "/", "multipart": {"a": "b"}}}, "multipart bodies"),
        ({"request": {"method": "POST", "path": "/", "body": {"path": "f.bin"}}}, "bodies read from a file"),
        ({"request": {"path": "/", "raw": True, "chunked": True}}, "raw: true requests"),
        ({"request": {"path": "/"}, "expect": {"body_sha256": "a" * 64}}, "body_sha256 and body_sha256_of"),
        ({"request": {"path": "/"}, "expect": {"text": {"not_contains": "x"}}}, "expect.text other than one"),
        (
            {"request": {"path": "/"}, "expect": {"text": {"contains": ["x", "y"]}}},
            "expect.text other than one",
        ),
        (
            {"request": {"path": "/"}, "expect": {"headers": {"X-A": {"matches": "b"}}}},
            "expect.headers.X-A: matc",
        ),
        (
            {"request": {"path": "/"}, "expect": {"headers": {"X-A": {"one_of": ["b"]}}}},
            "headers.X-A: one of",
        ),
        ({"request": {"path": "/"}, "expect": {"headers": {"X-A": "{uuid}"}}}, "a per-iteration variable"),
        (
            {"request": {"path": "/"}, "expect": {"headers": {"X-A": None}}},
            "a header's value is text, not null",
        ),
        (
            {"request": {"path": "/"}, "expect": {"json": {"$.a": {"exists": False, "equals": 1}}}},
            "expect.json.$.a: equals 1, is absent can never hold",
        ),
        ({"request": {"path": "/"}, "expect": {"json": {"$.a": {"matches": "x"}}}}, "compares JSON fields"),
        ({"request": {"path": "/"}, "expect": {"json": {"$.a": {"one_of": [1, 2]}}}}, "one of [1, 2]"),
        ({"request": {"path": "/"}, "expect": {"json": {"$.a": [1]}}}, "an object or list to compare"),
        ({"request": {"path": "/"}, "expect": {"json": {"$.a": "{uuid}"}}}, "a value with a per-iteration"),
        ({"request": {"path": "/"}, "extract": {"all": "body"}}, "extract all: a `body` extraction"),
        ({"request": {"path": "{uuid}"}}, "a path that starts with a variable"),
        ({"request": {"path": "/", "headers": {"Accept-Encoding": "gzip"}}}, "an Accept-Encoding header"),
        (
            {"request": {"path": "/"}, "expect": {"status": 200}, "poll": {"status": 404}},
            "no status meets both poll.status and expect",
        ),
    ],
)
def test_what_the_c_engine_cannot_run_falls_back_with_its_reason(step: dict[str, Any], reason: str) -> None:
    found = fallback([{"name": "first", "request": {"path": "/"}}, {"name": "odd", **step}])
    assert found.startswith("journey j, step odd: "), found
    assert reason in found, found


def test_the_setups_uuid_is_the_users_own_and_iterations_draw_theirs() -> None:
    """The setup's {uuid} is the program's per-user UUID: a setup variable built from it means
    the same address in the setup, the iterations and the teardown; {uuid} itself is fresh in
    each iteration and in the teardown (as on the Python driver)."""
    setup = {
        "variables": {"email": "u-{uuid}@example.test"},
        "steps": [
            {
                "name": "signup",
                "request": {"method": "POST", "path": "/signup", "json": {"email": "{email}", "n": "{uuid}"}},
            }
        ],
    }
    journey = {"steps": [{"name": "login", "request": {"path": "/login/{email}", "query": {"t": "{uuid}"}}}]}
    teardown = {
        "steps": [{"name": "bye", "request": {"path": "/bye", "query": {"e": "{email}", "t": "{uuid}"}}}]
    }
    program = compiled({"j": journey}, setup=setup, teardown=teardown)
    p = program.program
    names = p.names
    assert p.user_uuid_slot == 2 and p.uuid_slot == 0
    assert text(p.steps[0].body, names) == '{"email":"u-<uuid:2>@example.test","n":"<uuid:2>"}'
    assert p.steps[0].body is not None and (2, JSON_STRING) in p.steps[0].body  # the user's own
    assert text(p.steps[1].head, names).startswith("GET /api/login/u-<uuid:1>@example.test?t=<uuid:1> ")
    assert [part for part in p.steps[1].head if not isinstance(part, bytes)] == [(2, PERCENT), (0, PERCENT)]
    assert [part for part in p.steps[2].head if not isinstance(part, bytes)] == [(2, PERCENT), (0, PERCENT)]
    # without a setup there is no per-user UUID
    assert (
        compiled({"j": journey | {"steps": [{"name": "s", "request": {"path": "/"}}]}}).program.user_uuid_slot
        == -1
    )


def test_the_settings_take_setup_and_teardown_with_journeys() -> None:
    with pytest.raises(ValueError, match=r"setup: \{iteration\} has no value there"):
        settings(
            {"j": {"steps": [{"name": "s", "request": {"path": "/"}}]}},
            setup={"steps": [{"name": "s", "request": {"path": "/{iteration}"}}]},
        )
    with pytest.raises(ValueError, match="plain `requests` have no users to end"):
        LoadSettings.model_validate(
            {
                "rate": 1,
                "duration": 1,
                "requests": [{"name": "a", "path": "/"}],
                "teardown": {"steps": [{"name": "s", "request": {"path": "/"}}]},
            }
        )
    with pytest.raises(ValueError, match="a journey named 'setup' beside the load's `setup`"):
        settings(
            {"setup": {"steps": [{"name": "s", "request": {"path": "/"}}]}},
            setup={"steps": [{"name": "s", "request": {"path": "/"}}]},
        )
    with pytest.raises(ValueError, match=r"\{token\} is not a variable"):  # no setup defines it
        settings({"j": {"steps": [{"name": "s", "request": {"path": "/{token}"}}]}})
    fine = settings(
        {"j": {"steps": [{"name": "s", "request": {"path": "/{token}"}}]}},
        workers=2,
        setup={"steps": [{"name": "s", "request": {"path": "/"}, "extract": {"token": "json:$.t"}}]},
    )
    assert fine.workers == 2


def test_basic_credentials_with_variables_are_a_derived_slot() -> None:
    """`basic: ["{user}", "{password}"]`: the header is `Basic ` + the base64 of a derived slot
    made of the user, a colon and the password (as they are), one slot per distinct pair."""
    program, index = one({"request": {"path": "/me", "auth": {"basic": ["{token}", "pw-{id}"]}}})
    p = program.program
    assert text(p.steps[index].head, p.names).endswith("Authorization: Basic <user:password:3>\r\n")
    assert p.names is not None and p.derived == (
        (p.names.index("user:password"), ((2, RAW), b":pw-", (3, RAW))),
    )
    assert BASE64 == 3
    same = {"name": "again", "request": {"path": "/", "auth": {"basic": ["{token}", "pw-{id}"]}}}
    other = {"name": "other", "request": {"path": "/", "auth": {"basic": ["{id}", "pw-{id}"]}}}
    login = {"name": "login", "request": {"path": "/"}, "extract": {"token": "json:$.t", "id": "json:$.i"}}
    both = compiled({"j": {"steps": [login, same, {**same, "name": "more"}, other]}})
    assert len(both.program.derived) == 2


def test_every_reason_is_given_once() -> None:
    """Every step the C engine cannot run is named, each once, in the plan's order; a step
    after one that could not compile is judged too (its variables are known); `validate`'s
    line and the `workers` refusal list them all."""
    upload = {"name": "send", "request": {"method": "POST", "path": "/", "multipart": {"a": "b"}}}
    whole = {"name": "whole", "request": {"path": "/"}, "extract": {"all": "body"}}
    uses = {"name": "uses", "request": {"path": "/{all}"}, "expect": {"text": {"not_contains": "x"}}}
    plan = settings(
        {"a": {"steps": [upload, whole, uses]}, "b": {"steps": [upload, {**upload, "name": "again"}]}},
        setup={
            "steps": [
                {"name": "raw", "request": {"path": "/", "raw": True}, "expect": {"body_sha256": "a" * 64}}
            ]
        },
    )
    result = compile_journeys(plan, BASE, files={}, expand=str)
    assert isinstance(result, Fallback)
    assert result.reasons == (
        "setup, step raw: raw: true requests, body_sha256 and body_sha256_of run on the Python driver",
        "journey a, step send: multipart bodies run on the Python driver",
        "journey a, step whole: extract all: a `body` extraction run on the Python driver",
        "journey a, step uses: expect.text other than one `contains` run on the Python driver",
        "journey b, step send: multipart bodies run on the Python driver",
        "journey b, step again: multipart bodies run on the Python driver",
    )
    assert result.reason.startswith(
        "6 features keep these journeys on the Python driver: setup, step raw: raw: true requests, "
        "body_sha256 and body_sha256_of; journey a, step send: multipart bodies; "
    )
    assert (
        driver_line(plan)
        == f"journeys on the Python driver (6 features the C engine cannot run): {result.listed}"
    )
    assert driver_line(settings({"j": {"steps": [upload]}})) == (
        "journeys on the Python driver (1 feature the C engine cannot run): journey j, step send: "
        "multipart bodies"
    )
    assert driver_line(settings({"j": {"steps": [{"name": "s", "request": {"path": "/"}}]}})) == (
        "journeys on the C engine"
    )
    assert (
        driver_line(
            LoadSettings.model_validate(
                {"rate": 1, "duration": "1s", "requests": [{"name": "r", "path": "/"}]}
            )
        )
        is None
    )
    with pytest.raises(ValueError, match="workers: 2 needs the C engine, and 2 features keep") as refused:
        settings({"b": {"steps": [upload, {**upload, "name": "again"}]}}, workers=2)
    assert "step again: multipart bodies" in str(refused.value)


def test_the_python_driver_says_why_it_ran() -> None:
    """A fallback with nothing to reach: the reason is in the result even so."""
    plan = settings(
        {"j": {"steps": [{"name": "s", "request": {"path": "/", "raw": True}}]}},
        duration="200ms",
        users=1,
        request_timeout="100ms",
    )
    result = run_journey_load(plan, "http://127.0.0.1:9", files={}, expand=str)
    assert result.driver == "python"
    assert result.fallback_reason == "journey j, step s: raw: true requests run on the Python driver"
    assert json.dumps(result.fallback_reason)
