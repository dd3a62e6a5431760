"""A load request's `expect`: every response checked in the C engine against a real server
(status, headers, a body substring across chunk and read boundaries, JSON fields), wrong
responses counted as errors, the first ones kept as evidence; hostile bodies refused cleanly."""

from __future__ import annotations

import json
import random
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from engine_support import Server, engine_test_server
from pydantic import ValidationError
from recording_context import MakeContext

from gonogo.checks.load import LoadCheck, LoadSettings
from gonogo.errors import PlanError
from gonogo.journey.jsonpath import JsonPath
from gonogo.journey.matchers import json_equal
from gonogo.loadgen.engine import Endpoint, EndpointResult, LoadSpec, LoadSpecError, run_load
from gonogo.loadgen.expect import JsonField, ResponseExpect
from gonogo.plan import load_plan

ITEM = '{"status": "ok", "id": 3}'


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with engine_test_server() as running:
        yield running


def judged(server: Server, path: str, expect: ResponseExpect, requests: int = 6) -> EndpointResult:
    """`requests` requests to `path` (2 users), judged by `expect`."""
    spec = LoadSpec(
        host="127.0.0.1",
        port=server.port,
        endpoints=[Endpoint("e", path=path, expect=expect)],
        model="closed",
        users=2,
        max_requests=requests,
        duration=20,
    )
    (result,) = run_load(spec).endpoints
    assert result.counts.responses == requests, result.counts
    return result


def errors(result: EndpointResult) -> dict[str, int]:
    return {kind: n for kind, n in result.counts.errors.items() if n}


def field(path: str, value: Any) -> JsonField:
    return JsonField(path, JsonPath.parse(path).parts, value)


# --- the check end to end -----------------------------------------------------------


def test_wrong_bodies_under_load_count_as_assertion_errors(
    recording_context: MakeContext, server: Server
) -> None:
    """The server answers 200 every time, with {"status": "fail"} every other time."""
    settings = LoadSettings.model_validate(
        {
            "rate": "200/s",
            "duration": "2s",
            # what is measured here does not depend on the generator keeping time on a busy machine
            "generator": {"max_cpu": "100%", "max_late": "100%"},
            "requests": [
                {
                    "name": "item",
                    "path": "/alternate",
                    "component": "api",
                    "expect": {"json": {"$.status": "ok"}},
                },
                {"name": "plain", "path": "/fixed/10", "component": "web"},
            ],
        }
    )
    ctx = recording_context(check_name="load", base_url=f"http://127.0.0.1:{server.port}")
    outcome = LoadCheck().run(settings, ctx)
    assert outcome.status == "completed", outcome
    item = ctx.value("endpoint.item.requests")
    assert 180 <= item <= 220
    assert ctx.value("endpoint.item.error_rate") == pytest.approx(0.5, abs=0.05)
    assert ctx.value("endpoint.item.errors.assertion") == pytest.approx(item / 2, abs=0.05 * item)
    assert ctx.value("errors.assertion") == ctx.value("endpoint.item.errors.assertion")
    assert ctx.value("component.api.errors.assertion") == ctx.value("errors.assertion")
    assert ctx.value("errors") == ctx.value("errors.assertion")  # nothing else failed
    assert ctx.value("error_rate") == pytest.approx(0.25, abs=0.05)  # half of half the requests
    # a request without `expect` has no assertion figure (none is declared for it)
    assert "endpoint.plain.errors.assertion" not in ctx.metrics
    assert "component.web.errors.assertion" not in ctx.metrics
    # the evidence: which assertion, the status, the body; named in the outcome
    document = json.loads(ctx.artifact("load-assertion-failures.json"))
    assert document["failures_total"]["item"] == ctx.value("errors.assertion")
    assert document["kept"] == 5 and len(document["failures"]) == 5
    first = document["failures"][0]
    assert first["endpoint"] == "item" and first["status"] == 200 and first["error"] == "assertion"
    assert first["assertion"] == "json.$.status"
    assert first["reason"] == '$.status is "fail", expected "ok"'
    assert json.loads(first["body_excerpt"])["status"] == "fail"
    assert ctx.metric("errors.assertion").artifact is not None
    assert "failed their expect" in outcome.message
    assert outcome.details[0] == 'item: $.status is "fail", expected "ok" (status 200)'


def test_expected_values_have_their_placeholders_filled_in_once(
    recording_context: MakeContext, server: Server
) -> None:
    """`{base_url}` (like `{port.NAME}` and the setup's variables) means the same in `expect` as
    in the request: a service that echoes its own address back is right, not an assertion error."""
    echo = {"url": "{base_url}/items", "n": 3}
    expect = {"json": {"$.url": "{base_url}/items", "$.n": 3}, "body_contains": "{base_url}"}
    settings = LoadSettings.model_validate(
        {
            "rate": "50/s",
            "duration": "1s",
            "generator": {"max_cpu": "100%", "max_late": "100%"},
            "requests": [{"name": "echo", "method": "POST", "path": "/echo", "json": echo, "expect": expect}],
        }
    )
    ctx = recording_context(check_name="load", base_url=f"http://127.0.0.1:{server.port}")
    outcome = LoadCheck().run(settings, ctx)
    assert outcome.status == "completed", outcome
    assert ctx.value("requests") >= 40
    assert ctx.value("errors.assertion") == 0


def test_an_unknown_placeholder_in_an_expected_value_is_refused() -> None:
    request = {"name": "a", "path": "/", "expect": {"json": {"$.origin": "{nope}"}}}
    with pytest.raises(ValidationError, match=r"request a: \{nope\} is not"):
        LoadSettings.model_validate({"rate": 1, "duration": 1, "requests": [request]})


def test_expected_4xx_are_no_errors(recording_context: MakeContext, server: Server) -> None:
    settings = LoadSettings.model_validate(
        {
            "model": "closed",
            "users": 2,
            "max_requests": 40,
            "generator": {"max_cpu": "100%", "max_late": "100%"},
            "requests": [
                {"name": "gone", "path": "/status/404", "expect": {"status": 404, "body_contains": "status"}},
                {"name": "missing", "path": "/status/404"},
            ],
        }
    )
    ctx = recording_context(check_name="load", base_url=f"http://127.0.0.1:{server.port}")
    outcome = LoadCheck().run(settings, ctx)
    assert outcome.status == "completed", outcome
    assert ctx.value("endpoint.gone.error_rate") == 0 and ctx.value("endpoint.gone.errors.4xx") == 0
    assert ctx.value("endpoint.missing.error_rate") == 1 and ctx.value("endpoint.missing.errors.4xx") == 20
    assert ctx.value("errors.assertion") == 0
    assert json.loads(ctx.artifact("load-assertion-failures.json"))["failures"] == []


# --- each kind of expectation, pass and fail ---------------------------------------------


@pytest.mark.parametrize(
    ("path", "expect", "counted", "reason"),
    [
        ("/status/404", ResponseExpect(statuses=(200, 404)), {}, None),
        (
            "/fixed/10",
            ResponseExpect(statuses=(201, 202)),
            {"assertion": 6},
            "expected status 201 or 202, got 200",
        ),
        ("/status/404", ResponseExpect(statuses=(200,)), {"http_4xx": 6}, "expected status 200, got 404"),
        ("/status/500", ResponseExpect(), {"http_5xx": 6}, "expected a 2xx status, got 500"),
        ("/status/204", ResponseExpect(), {}, None),
        ("/doc/item", ResponseExpect(headers=(("CONTENT-type", "json"),)), {}, None),
        ("/doc/item", ResponseExpect(headers=(("Server", ""), ("Content-Type", "application/"))), {}, None),
        (
            "/doc/item",
            ResponseExpect(headers=(("Content-Type", "xml"),)),
            {"assertion": 6},
            'header Content-Type is "application/json", expected it to contain "xml"',
        ),
        (
            "/doc/item",
            ResponseExpect(headers=(("X-Request-Id", ""),)),
            {"assertion": 6},
            'header X-Request-Id is missing, expected it to contain ""',
        ),
    ],
)
def test_status_and_headers(
    server: Server, path: str, expect: ResponseExpect, counted: dict[str, int], reason: str | None
) -> None:
    result = judged(server, path, expect)
    assert errors(result) == counted
    assert [f.reason for f in result.failures[:1]] == ([reason] if reason else [])


@pytest.mark.parametrize(
    ("path", "needle", "found"),
    [
        ("/fixed/100", "xxxxx", True),  # Content-Length body
        ("/needle/100", "NEEDLE", True),  # chunked: NEE | chunk framing | DLE, in one read
        ("/needle/4", "xNEEDLEy", True),  # the text spans three chunks
        ("/needle/70000", "NEEDLE", True),  # large chunks
        ("/trickle-needle", "NEEDLE", True),  # 4-byte chunks, the response written byte by byte
        ("/trickle-needle", "xNEEDLEyyyyyyyy", True),
        ("/needle/100", "NEEDLEX", False),
        ("/trickle-needle", "NEEDLEz", False),
        ("/until-close", "uuu", True),  # a body that ends when the server closes
    ],
)
def test_a_body_substring_across_chunks_and_reads(
    server: Server, path: str, needle: str, found: bool
) -> None:
    result = judged(server, path, ResponseExpect(body_contains=needle), requests=4)
    assert errors(result) == ({} if found else {"assertion": 4})
    if not found:
        assert result.failures[0].assertion == "body_contains"
        assert result.failures[0].reason.endswith(f"does not contain {json.dumps(needle)}")
        assert "NEEDLE" in result.failures[0].body_excerpt


PASSING_FIELDS = [
    ("$.status", "ok"),
    ("$.id", 3),
    ("$.id", 3.0),  # numbers compare as numbers
    ("$.price", 2.5),
    ("$.big", 12345678901234567),  # exactly, beyond a double's precision
    ("$.on", True),
    ("$.off", False),
    ("$.none", None),
    ("$.name", 'café "q"'),  # compared unescaped
    ("$.emoji", "😀"),  # a surrogate pair
    ('$["odd-key"]', 1),
    ("$.items[1].id", 3),
    ("$.items[0].tags[1][0]", "x"),  # nested arrays
    ("$.items[-1].id", 3),
    ("$.dup", 2),  # a key given twice: the last one, as Python's json
]
FAILING_FIELDS = [
    ("$.status", "OK", 'is "ok", expected "OK"'),
    ("$.id", "3", 'is 3, expected "3"'),
    ("$.id", 4, "is 3, expected 4"),
    ("$.big", 12345678901234568, "is 12345678901234567, expected 12345678901234568"),
    ("$.on", 1, "is true, expected 1"),
    ("$.none", False, "is null, expected false"),
    ("$.name", "café", 'expected "café"'),
    ("$.items[2]", 1, "$.items[2] is missing, expected 1"),
    ("$.items[0].tags[1][2]", "z", "is missing"),
    ("$.items[-3]", None, "is missing"),
    ("$.items[0].id.x", 1, "is missing"),
    ("$.nothing", None, "$.nothing is missing, expected null"),
    ("$.items", None, 'is [{"id": 1'),
]


@pytest.mark.parametrize(("path", "value"), PASSING_FIELDS)
def test_json_fields_that_hold(server: Server, path: str, value: Any) -> None:
    assert errors(judged(server, "/doc/item", ResponseExpect(json=(field(path, value),)), requests=2)) == {}


@pytest.mark.parametrize(("path", "value", "reason"), FAILING_FIELDS)
def test_json_fields_that_do_not(server: Server, path: str, value: Any, reason: str) -> None:
    expect = ResponseExpect(json=(field("$.status", "ok"), field(path, value)))
    result = judged(server, "/doc/item", expect, requests=2)
    assert errors(result) == {"assertion": 2}
    assert result.failures[0].assertion == f"json.{path}" and reason in result.failures[0].reason


def test_every_field_at_once(server: Server) -> None:
    expect = ResponseExpect(
        statuses=(200,),
        headers=(("Content-Type", "json"),),
        body_contains='"tags"',
        json=tuple(field(path, value) for path, value in PASSING_FIELDS),
    )
    assert errors(judged(server, "/doc/item", expect, requests=20)) == {}


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ("malformed", "an object key that is not a string (at byte 25)"),
        ("truncated", "the body ends inside an array"),
        ("deep", "nested deeper than 512 levels"),  # 100,000 levels: refused at 512, no recursion
        ("trailing", "more data after the JSON document"),
        ("control", "a control character inside a string"),
        ("bad-escape", "a bad escape in a string"),
        ("unterminated", "the body ends inside a string"),
    ],
)
def test_malformed_json_fails_the_assertion_cleanly(server: Server, document: str, reason: str) -> None:
    result = judged(server, f"/doc/{document}", ResponseExpect(json=(field("$.status", "ok"),)), requests=2)
    assert errors(result) == {"assertion": 2}
    assert result.failures[0].assertion == "json"
    assert "is not JSON: " + reason in result.failures[0].reason


def test_an_empty_body_is_not_json(server: Server) -> None:
    # no body, so no buffer: the scanner reads "" (was NULL + 0, undefined behaviour)
    result = judged(server, "/fixed/0", ResponseExpect(json=(field("$.status", "ok"),)), requests=2)
    assert errors(result) == {"assertion": 2}
    assert result.failures[0].assertion == "json"
    assert "is not JSON: the body ends where a value should be (at byte 0)" in result.failures[0].reason


def test_a_body_over_max_body_fails_with_its_size(server: Server) -> None:
    bounded = ResponseExpect(json=(field("$.status", "ok"),))
    result = judged(server, "/big/3000000", bounded, requests=3)
    assert errors(result) == {"assertion": 3}
    (failure, *_) = result.failures
    assert failure.assertion == "max_body" and failure.body_bytes == 3000027
    assert failure.reason == (
        "the body (3000027 bytes) is over max_body (1048576 bytes): its JSON fields were not checked"
    )
    assert failure.body_excerpt.startswith('{"pad": "ppp') and len(failure.body_excerpt) == 256
    larger = ResponseExpect(json=(field("$.status", "ok"),), max_body=4_000_000)
    assert errors(judged(server, "/big/3000000", larger, requests=3)) == {}
    # a substring needs no buffer: any size
    assert errors(judged(server, "/big/3000000", ResponseExpect(body_contains='"status"'), requests=3)) == {}


def _python_verdict(body: bytes, path: str, value: Any) -> bool:
    """What the journeys kind would say (json.loads, JsonPath, json_equal)."""

    def no_constants(name: str) -> None:
        raise ValueError(name)

    try:
        document = json.loads(body, parse_constant=no_constants)
    except ValueError:
        return False
    found, actual = JsonPath.parse(path).find(document)
    return found and json_equal(actual, value)


def test_the_scanner_agrees_with_python_on_mangled_documents(server: Server) -> None:
    """Every prefix of a document and random ASCII mutations of it, echoed back by the server:
    the engine's verdict on each is Python's (json.loads, then the journeys' path and equality)."""
    source = json.dumps(
        {"a": [1, -2.5e3, {"b": 'x\\"y\u00e9', "c": [True, False, None]}], "d": {"e": {"f": "g"}}, "n": 10}
    ).encode()
    rng = random.Random(7)
    bodies = [source[:cut] for cut in range(len(source) + 1)]
    for _ in range(300):
        mutated = bytearray(source)
        for _ in range(rng.randint(1, 3)):
            mutated[rng.randrange(len(mutated))] = ord(rng.choice('{}[]",:0123456789.eE+-tfnul \\x'))
        bodies.append(bytes(mutated))
    checks = [
        ("$.a[2].c[1]", False),
        ("$.n", 10),
        ("$.a[2].b", 'x\\"yé'),
        ("$.d.e.f", "g"),
        ("$.a[1]", -2500),
    ]
    cases = [(body, *checks[i % len(checks)]) for i, body in enumerate(bodies)]
    # numbers: as numbers, integers exactly, a float equal to an integer only if it is that integer
    for literal in (
        "3",
        "3.0",
        "3e0",
        "30e-1",
        "-0",
        "0.1e1",
        "12345678901234567",
        "12345678901234567.0",
        "1e400",
    ):
        for value in (3, 3.0, 0, 12345678901234567, 12345678901234568, 1.2345678901234568e16):
            cases.append((b'{"n": ' + literal.encode() + b"}", "$.n", value))
    endpoints, verdicts = [], []
    for i, (body, path, value) in enumerate(cases):
        expect = ResponseExpect(json=(field(path, value),))
        endpoints.append(Endpoint(f"e{i}", method="POST", path="/echo", body=body, expect=expect))
        verdicts.append(_python_verdict(body, path, value))
    assert 0 < sum(verdicts) < len(verdicts)
    spec = LoadSpec(
        host="127.0.0.1",
        port=server.port,
        endpoints=endpoints,
        model="closed",
        users=4,
        max_requests=len(endpoints),
        duration=30,
    )
    result = run_load(spec)
    disagreements = [
        (cases[i], e.counts.errors, e.failures[:1])
        for i, e in enumerate(result.endpoints)
        if e.counts.responses != 1 or (e.counts.errors["assertion"] == 0) != verdicts[i]
    ]
    assert disagreements == []


# --- validation ---------------------------------------------------------------------


def test_an_engine_spec_with_an_expectation_it_cannot_check_is_refused() -> None:
    head = Endpoint("h", method="HEAD", path="/", expect=ResponseExpect(body_contains="x"))
    with pytest.raises(LoadSpecError, match="endpoint 'h': expect: a HEAD request gets no body"):
        LoadSpec(host="127.0.0.1", port=80, endpoints=[head], rate=1, duration=1).validate()
    long = Endpoint("l", path="/", expect=ResponseExpect(body_contains="x" * 1025))
    with pytest.raises(LoadSpecError, match="body_contains must be 1 to 1024 bytes"):
        LoadSpec(host="127.0.0.1", port=80, endpoints=[long], rate=1, duration=1).validate()


@pytest.mark.parametrize(
    ("expect", "message"),
    [
        ({"json": {"$.items[*]": 1}}, "is not a supported JSON path"),
        ({"json": {"status": 1}}, "is not a JSON path"),
        ({"json": {"$.a": {"matches": "x"}}}, "operators ({equals|exists|matches|one_of: ...})"),
        ({"json": {"$.a": [1, 2]}}, "a load compares a JSON field with one value"),
        ({"body": "x"}, "body"),
        ({"body_contains": ""}, "body_contains: 1 to 1024 bytes of text, not 0"),
        ({"headers": {"Bad Name": "x"}}, "'Bad Name' is not a header name"),
        ({"headers": {"A": "x", "a": "y"}}, "a header is named twice"),
        ({"max_body": "1MiB"}, "`max_body` bounds the body read for `json` fields; this expect has none"),
        ({"json": {"$.a": 1}, "max_body": "65MiB"}, "max_body: 1 byte to 64 MiB"),
        ({"status": 700}, "expected an HTTP status (100-599)"),
    ],
)
def test_settings_refuse_what_the_engine_cannot_check(expect: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        LoadSettings.model_validate(
            {"rate": 1, "duration": 1, "requests": [{"name": "a", "path": "/", "expect": expect}]}
        )
    assert message in str(caught.value)


def test_a_head_request_cannot_expect_a_body() -> None:
    request = {"name": "a", "method": "HEAD", "path": "/", "expect": {"body_contains": "x"}}
    with pytest.raises(ValidationError, match="a HEAD request gets no body"):
        LoadSettings.model_validate({"rate": 1, "duration": 1, "requests": [request]})


def _plan(tmp_path: Path, load: str, gate: str) -> Path:
    path = tmp_path / "gonogo.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            name: shop
            system: {base_url: "http://127.0.0.1:8080"}
            checks:
              load:
                kind: load
                rate: 10/s
                duration: 5s
                requests:
            """
        )
        + textwrap.indent(textwrap.dedent(load), "      ")
        + f"gates:\n  {gate}\n"
    )
    return path


def test_the_plan_names_the_line_of_a_wrong_expectation(tmp_path: Path) -> None:
    path = _plan(
        tmp_path,
        """\
        - name: home
          path: /
          expect:
            status: 200
            json: {"$.items[?(@.id)]": 1}
            bodycontains: ok
        """,
        'load.error_rate: "< 1%"',
    )
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    issues = [str(issue) for issue in caught.value.issues]
    assert any(
        issue.startswith(f"{path}:13:") and "is not a supported JSON path" in issue for issue in issues
    ), issues
    assert any(
        issue.startswith(f"{path}:14:")
        and "unknown key 'bodycontains'; did you mean 'body_contains'?" in issue
        for issue in issues
    ), issues


def test_assertion_gates_need_a_request_with_expect(tmp_path: Path) -> None:
    checked = """\
        - {name: home, path: /, expect: {body_contains: ok}}
        - {name: other, path: /other}
        """
    assert load_plan(_plan(tmp_path, checked, 'load.endpoint.home.errors.assertion: "== 0"')).gates
    assert load_plan(_plan(tmp_path, checked, 'load.errors.assertion: "== 0"')).gates
    with pytest.raises(PlanError, match=r"load\.endpoint\.other\.errors\.assertion"):
        load_plan(_plan(tmp_path, checked, 'load.endpoint.other.errors.assertion: "== 0"'))
    with pytest.raises(PlanError, match=r"load\.errors\.assertion"):
        load_plan(_plan(tmp_path, "- {name: home, path: /}\n", 'load.errors.assertion: "== 0"'))
