"""Raw mode and text assertions, against a real server that records the bytes it receives
(wire_server.py): what a journey step says is what goes on the wire."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from journeys_support import free_port, stop

from gonogo.errors import PlanError
from gonogo.journey.engine import Engine, Failure, JourneyResult, Sent
from gonogo.journey.settings import JourneysSettings
from gonogo.plan import load_plan

WIRE_SERVER = Path(__file__).with_name("wire_server.py")


@dataclass(frozen=True)
class Received:
    head: bytes
    body: bytes  # as framed on the wire
    early: bool  # body bytes came before the server's 100 Continue


@dataclass(frozen=True)
class Wire:
    base_url: str
    log: Path

    def received(self) -> list[Received]:
        """Every request the server got so far, in order; the log is emptied."""
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        self.log.write_text("")
        return [
            Received(base64.b64decode(item["head"]), base64.b64decode(item["body"]), item["early"])
            for item in map(json.loads, lines)
        ]


@pytest.fixture(scope="module")
def wire(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wire]:
    log = tmp_path_factory.mktemp("wire") / "received.jsonl"
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(WIRE_SERVER), str(port), str(log)],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                errors = process.stderr.read().decode() if process.stderr else ""
                pytest.fail(f"the wire server exited with {process.returncode}:\n{errors}")
            try:
                httpx.get(f"{base_url}/ready", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    pytest.fail("the wire server did not start within 20 s")
                time.sleep(0.05)
        yield Wire(base_url, log)
    finally:
        stop(process)


def run(
    wire: Wire, steps: str | list[dict[str, Any]], record: list[Sent] | None = None, **check: Any
) -> JourneyResult:
    """One iteration of a journey made of `steps` (YAML text or a list), against the wire server."""
    wire.received()  # forget what earlier tests sent
    parsed = yaml.safe_load(steps) if isinstance(steps, str) else steps
    settings = JourneysSettings.model_validate({"journeys": {"j": {"steps": parsed}}, **check})
    engine = Engine(
        settings,
        wire.base_url,
        files={},
        expand=lambda text: text,
        progress=lambda _: None,
        record=record.append if record is not None else None,
    )
    (result,) = asyncio.run(engine.run(on_journey_done=lambda _: None))
    return result


def failure_of(result: JourneyResult) -> Failure:
    (iteration,) = result.iterations
    assert iteration.failure is not None, "the journey was expected to fail"
    return iteration.failure


def request_line(received: Received) -> bytes:
    return received.head.split(b"\r\n", 1)[0]


def header_lines(received: Received) -> list[bytes]:
    return received.head.split(b"\r\n")[1:]


# -- raw mode: exactly what the step says goes on the wire -------------------------------------


def test_a_raw_step_sends_dot_segments_exactly_as_written(wire: Wire) -> None:
    result = run(wire, [{"name": "traverse", "request": {"raw": True, "path": "/files/../x"}}])

    assert result.iterations[0].ok, result.failures
    (received,) = wire.received()
    assert request_line(received) == b"GET /files/../x HTTP/1.1"


def test_a_raw_path_keeps_its_encoding_and_filled_in_variables(wire: Wire) -> None:
    steps = """
    - name: traverse
      request: {raw: true, path: "/files/{up}/%2e%2e/a%2fb\\\\c/./{name}", query: {q: "x y"}}
    """
    journey = {"steps": yaml.safe_load(steps), "variables": {"up": "..", "name": "passwd"}}
    settings = JourneysSettings.model_validate({"journeys": {"j": journey}})
    wire.received()
    engine = Engine(settings, wire.base_url, files={}, expand=lambda t: t, progress=lambda _: None)
    (result,) = asyncio.run(engine.run(on_journey_done=lambda _: None))

    assert result.iterations[0].ok, result.failures
    (received,) = wire.received()
    assert request_line(received) == b"GET /files/../%2e%2e/a%2fb\\c/./passwd?q=x+y HTTP/1.1"


def test_a_raw_header_value_keeps_its_trailing_space(wire: Wire) -> None:
    steps = [
        {
            "name": "empty_token",
            "request": {"raw": True, "path": "/me", "headers": {"Authorization": "Bearer "}},
        }
    ]

    result = run(wire, steps)

    assert result.iterations[0].ok, result.failures
    (received,) = wire.received()
    assert b"Authorization: Bearer " in header_lines(received)


def test_a_raw_step_may_send_any_header_value_and_the_same_header_twice(wire: Wire) -> None:
    steps = """
    - name: odd
      request:
        raw: true
        path: /odd
        headers: {X-Padded: "  both sides  ", X-Tab: "a\\tb\\t", Content-Length: "0", content-length: "0"}
    """
    result = run(wire, steps)

    assert result.iterations[0].ok, result.failures
    (received,) = wire.received()
    lines = header_lines(received)
    assert b"X-Padded:   both sides  " in lines
    assert b"X-Tab: a\tb\t" in lines
    assert lines.count(b"Content-Length: 0") == 1 and lines.count(b"content-length: 0") == 1


def test_a_chunked_raw_body_arrives_chunked(wire: Wire) -> None:
    steps = [
        {
            "name": "upload",
            "request": {"raw": True, "method": "POST", "path": "/up", "chunked": True, "body": "hello"},
        }
    ]

    result = run(wire, steps)

    assert result.iterations[0].ok, result.failures
    (received,) = wire.received()
    assert b"Transfer-Encoding: chunked" in header_lines(received)
    assert not any(line.lower().startswith(b"content-length") for line in header_lines(received))
    assert received.body == b"5\r\nhello\r\n0\r\n\r\n"


def test_expect_continue_waits_for_the_servers_100_before_the_body(wire: Wire) -> None:
    steps = """
    - name: upload
      request: {raw: true, method: PUT, path: /up, expect_continue: true, json: {name: "a b"}}
    """
    result = run(wire, steps)

    assert result.iterations[0].ok, result.failures
    (received,) = wire.received()
    lines = header_lines(received)
    assert b"Expect: 100-continue" in lines
    assert b"Content-Type: application/json" in lines
    assert b"Content-Length: 14" in lines
    assert received.body == b'{"name":"a b"}'
    assert not received.early, "the body went out before the server said 100 Continue"


def test_raw_bodies_form_multipart_and_generated_go_out_whole(wire: Wire) -> None:
    steps = """
    - name: form
      request: {raw: true, method: POST, path: /form, form: {a: "1 2", b: [x, y]}}
    - name: multipart
      request:
        raw: true
        method: POST
        path: /multi
        multipart: {title: t, file: {generate: 100KiB, filename: f.bin}}
    - name: generated
      request: {raw: true, method: POST, path: /blob, chunked: true, body: {generate: 70000}}
    """
    result = run(wire, steps)

    assert result.iterations[0].ok, result.failures
    form, multipart, generated = wire.received()
    assert form.body == b"a=1+2&b=x&b=y"
    assert b"Content-Type: application/x-www-form-urlencoded" in header_lines(form)
    content_type = next(line for line in header_lines(multipart) if line.startswith(b"Content-Type:"))
    assert content_type.startswith(b"Content-Type: multipart/form-data; boundary=")
    length = next(line for line in header_lines(multipart) if line.startswith(b"Content-Length:"))
    assert int(length.split(b":")[1]) == len(multipart.body) > 100 * 1024
    assert b'name="file"; filename="f.bin"' in multipart.body
    # 70000 bytes in 64 KiB blocks: two chunks and the last one
    assert generated.body.startswith(b"10000\r\n") and generated.body.endswith(b"\r\n0\r\n\r\n")
    assert b"Content-Type: application/octet-stream" in header_lines(generated)


def test_a_raw_reply_goes_through_expect_extract_and_cookies(wire: Wire) -> None:
    steps = """
    - name: login
      request: {raw: true, method: POST, path: /login}
      expect: {status: 200, headers: {set-cookie: {matches: "^session="}}, text: {contains: welcome}}
      extract: {greeting: body}
    - name: whoami
      request: {raw: true, path: "/whoami"}
      expect: {text: {contains: "session=s3cr3t-cookie"}}
    - name: echo
      request: {raw: true, path: "/echo/{greeting}"}
      expect: {text: {contains: "GET /echo/welcome HTTP/1.1"}}
    """
    result = run(wire, steps)

    assert result.iterations[0].ok, result.failures
    assert result.iterations[0].variables["greeting"] == "welcome"


def test_raw_steps_are_recorded_as_sent(wire: Wire) -> None:
    sent: list[Sent] = []
    steps = [
        {
            "name": "probe",
            "request": {
                "raw": True,
                "method": "POST",
                "path": "/a/../b",
                "headers": {"Authorization": "Bearer "},
                "body": "payload",
            },
        }
    ]

    run(wire, steps, record=sent)

    (recorded,) = sent
    assert recorded.raw
    assert recorded.url == f"{wire.base_url}/a/../b"
    assert ("Authorization", "Bearer ") in recorded.headers
    assert ("Content-Length", "7") in recorded.headers
    assert recorded.body == b"payload" and recorded.body_complete
    assert recorded.reply.status == 200


def test_a_raw_step_to_a_dead_port_fails_as_a_connection_failure(wire: Wire) -> None:
    settings = JourneysSettings.model_validate(
        {"journeys": {"j": {"steps": [{"name": "s", "request": {"raw": True, "path": "/x"}}]}}}
    )
    dead = f"http://127.0.0.1:{free_port()}"
    engine = Engine(settings, dead, files={}, expand=lambda t: t, progress=lambda _: None)
    (result,) = asyncio.run(engine.run(on_journey_done=lambda _: None))

    failure = failure_of(result)
    assert failure.kind == "connection"
    assert failure.status is None
    assert "connection refused" in failure.message


def test_the_same_request_without_raw_loses_its_dot_segments(wire: Wire) -> None:
    """Why raw mode exists: httpx sends `/files/../x` as `/x` (a variable gets past validation)."""
    journey = {"variables": {"path": "/files/../x"}, "steps": [{"name": "s", "request": {"path": "{path}"}}]}
    settings = JourneysSettings.model_validate({"journeys": {"j": journey}})
    engine = Engine(settings, wire.base_url, files={}, expand=lambda t: t, progress=lambda _: None)
    wire.received()
    (result,) = asyncio.run(engine.run(on_journey_done=lambda _: None))

    failure = failure_of(result)
    assert "'..' segment" in failure.message and "raw: true" in failure.message
    assert wire.received() == [], "nothing was sent"


def test_a_filled_in_header_httpx_would_refuse_fails_the_step_with_the_advice(wire: Wire) -> None:
    journey = {
        "variables": {"token": " padded"},
        "steps": [{"name": "s", "request": {"path": "/x", "headers": {"X-Token": "{token}"}}}],
    }
    settings = JourneysSettings.model_validate({"journeys": {"j": journey}})
    engine = Engine(settings, wire.base_url, files={}, expand=lambda t: t, progress=lambda _: None)
    wire.received()
    (result,) = asyncio.run(engine.run(on_journey_done=lambda _: None))

    failure = failure_of(result)
    assert "starts or ends with a space" in failure.message and "raw: true" in failure.message
    assert wire.received() == []


def test_a_non_ascii_header_value_goes_out_as_utf8_without_raw(wire: Wire) -> None:
    result = run(wire, [{"name": "s", "request": {"path": "/x", "headers": {"X-Name": "Zoë"}}}])

    assert result.iterations[0].ok, result.failures
    (received,) = wire.received()
    assert "X-Name: Zoë".encode() in [line for line in header_lines(received)]


# -- text assertions on a /metrics-like body ---------------------------------------------------


def test_text_assertions_pass_on_a_metrics_endpoint(wire: Wire) -> None:
    steps = r"""
    - name: metrics
      request: {path: /metrics}
      expect:
        text:
          contains: ['http_requests_total{method="GET",code="200"}', "up {one}"]
          not_contains: Traceback
          matches: ['^process_resident_memory_bytes \d', '^up 1$']
          not_matches: 'code="5\d\d"} [1-9]\d{2,}'
    """
    journey = {"variables": {"one": 1}, "steps": yaml.safe_load(steps)}
    settings = JourneysSettings.model_validate({"journeys": {"j": journey}})
    engine = Engine(settings, wire.base_url, files={}, expand=lambda t: t, progress=lambda _: None)
    (result,) = asyncio.run(engine.run(on_journey_done=lambda _: None))

    assert result.iterations[0].ok, result.failures


def test_a_missing_metric_names_the_text_and_the_closest_lines(wire: Wire) -> None:
    steps = """
    - name: metrics
      request: {path: /metrics}
      expect: {text: {contains: 'http_requests_total{method="GET",code="404"}'}}
    """
    failure = failure_of(run(wire, steps))

    assert failure.status == 200
    assert failure.message == (
        "the body (text/plain, 331 bytes) does not contain "
        '"http_requests_total{method=\\"GET\\",code=\\"404\\"}"'
        ' — closest lines: "http_requests_total{method=\\"GET\\",code=\\"200\\"} 1027",'
        ' "http_requests_total{method=\\"POST\\",code=\\"500\\"} 3"'
    )
    assert failure.response_excerpt.startswith("# HELP http_requests_total")


def test_a_regex_without_a_match_is_named_with_the_line_that_came_closest(wire: Wire) -> None:
    steps = r"""
    - name: metrics
      request: {path: /metrics}
      expect: {text: {matches: '^up 0$', not_contains: nothing-here}}
    """
    failure = failure_of(run(wire, steps))

    assert failure.message == (
        "the body (text/plain, 331 bytes) has no match for the regular expression '^up 0$' — "
        'closest lines: "up 1"'
    )


def test_a_text_nothing_resembles_is_shown_with_the_bodys_beginning(wire: Wire) -> None:
    steps = """
    - name: metrics
      request: {path: /metrics}
      expect: {text: {contains: "zzzz"}}
    """
    failure = failure_of(run(wire, steps))

    assert failure.message.startswith(
        'the body (text/plain, 331 bytes) does not contain "zzzz" — '
        'it begins: "# HELP http_requests_total Requests'
    )
    assert failure.message.endswith('…"')


def test_unwanted_text_is_shown_where_it_was_found(wire: Wire) -> None:
    steps = r"""
    - name: metrics
      request: {path: /metrics}
      expect: {text: {not_contains: 'code="500"', not_matches: 'code="5\d\d"} [1-9]'}}
    """
    failure = failure_of(run(wire, steps))

    contained, matched = failure.message.split("; ")
    assert contained.startswith(
        'the body (text/plain, 331 bytes) contains "code=\\"500\\"", expected it not to'
    )
    assert 'there: "… 1027\\nhttp_requests_total{method=\\"POST\\",code=\\"500\\"} 3\\n# HELP' in contained
    assert matched.startswith(
        "the body (text/plain, 331 bytes) matches the regular expression 'code=\"5\\\\d\\\\d\"} [1-9]' "
        'with "code=\\"500\\"} 3", expected no match — there: '
    )


def test_a_text_assertion_on_an_empty_body_says_it_is_empty(wire: Wire) -> None:
    steps = """
    - name: head
      request: {method: HEAD, path: /metrics}
      expect: {text: {contains: up}}
    """
    failure = failure_of(run(wire, steps))

    assert failure.message == 'the body (text/plain, 0 bytes) does not contain "up" — the body is empty'


# -- validation: a request the HTTP client would change is refused without raw ------------------


def plan_error(tmp_path: Path, request: str) -> str:
    plan = tmp_path / "gonogo.yaml"
    plan.write_text(
        "system: {base_url: 'http://127.0.0.1:8080'}\n"
        "checks:\n"
        "  e2e:\n"
        "    kind: journeys\n"
        "    journeys:\n"
        "      j:\n"
        "        steps:\n"
        "          - name: probe\n"
        f"            request: {request}\n"
    )
    with pytest.raises(PlanError) as caught:
        load_plan(plan)
    (issue,) = (str(issue) for issue in caught.value.issues)
    return issue


@pytest.mark.parametrize("path", ["/files/../x", "/./x", "/a/..", "/a/.?q=1"])
def test_dot_segments_without_raw_are_refused_with_the_advice(tmp_path: Path, path: str) -> None:
    issue = plan_error(tmp_path, f"{{path: '{path}'}}")

    assert f"{tmp_path / 'gonogo.yaml'}:9:" in issue
    assert "request.path" in issue
    assert "segment, which the HTTP client would remove" in issue
    assert "set raw: true on the request to send it exactly as written" in issue


def test_the_refusal_says_what_would_have_been_sent(tmp_path: Path) -> None:
    issue = plan_error(tmp_path, "{path: '/files/../etc/passwd'}")

    assert "(it sends '/etc/passwd')" in issue


def test_a_fragment_without_raw_is_refused(tmp_path: Path) -> None:
    issue = plan_error(tmp_path, "{path: '/a#b'}")

    assert "fragment the HTTP client never sends; write %23" in issue


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ("{Authorization: 'Bearer '}", "starts or ends with a space or tab"),
        ("{X-A: ' a'}", "starts or ends with a space or tab"),
        ('{X-A: "a\\r\\nX-B: b"}', "holds a control character"),
        ('{"X A": b}', "is not a token"),
    ],
)
def test_header_values_httpx_refuses_are_refused_without_raw(tmp_path: Path, headers: str, why: str) -> None:
    issue = plan_error(tmp_path, f"{{path: /me, headers: {headers}}}")

    assert "request.headers" in issue
    assert why in issue and "set raw: true" in issue


def test_chunked_and_expect_continue_need_raw(tmp_path: Path) -> None:
    issue = plan_error(tmp_path, "{path: /up, method: POST, body: x, chunked: true}")

    assert "chunked: true needs raw: true" in issue


def test_raw_mode_accepts_what_the_client_would_refuse() -> None:
    request = {"raw": True, "path": "/a/../b#c", "headers": {"Authorization": "Bearer ", "X A": "\r\n"}}
    step = {"name": "s", "request": request}

    JourneysSettings.model_validate({"journeys": {"j": {"steps": [step]}}})


def test_a_check_wide_header_httpx_refuses_needs_every_step_raw() -> None:
    step = {"name": "s", "request": {"path": "/"}}
    with pytest.raises(
        ValueError, match=r"headers.X-A: .*move it to the headers of steps that say raw: true"
    ):
        JourneysSettings.model_validate({"headers": {"X-A": "a "}, "journeys": {"j": {"steps": [step]}}})
    raw_step = {"name": "s", "request": {"path": "/", "raw": True}}
    JourneysSettings.model_validate({"headers": {"X-A": "a "}, "journeys": {"j": {"steps": [raw_step]}}})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("up 1", "e.g. text: {contains: 'up 1'}"),
        ({}, "give at least one of contains, not_contains, matches or not_matches"),
        ({"contains": ""}, "an empty text is in every body"),
        ({"matches": "(unclosed"}, "'(unclosed' is not a valid regular expression"),
        ({"contains": {"a": 1}}, "expected text or a list of texts"),
        ({"contain": "x"}, "contain"),
    ],
)
def test_text_expectation_mistakes_are_refused(text: Any, message: str) -> None:
    step = {"name": "s", "request": {"path": "/"}, "expect": {"text": text}}
    with pytest.raises(ValueError, match=None) as caught:
        JourneysSettings.model_validate({"journeys": {"j": {"steps": [step]}}})
    assert message in str(caught.value)


def test_an_unknown_variable_in_a_text_expectation_is_refused() -> None:
    step = {"name": "s", "request": {"path": "/"}, "expect": {"text": {"contains": "{nope}"}}}
    with pytest.raises(ValueError, match=r"expect.text.contains: \{nope\} is not a variable"):
        JourneysSettings.model_validate({"journeys": {"j": {"steps": [step]}}})


def test_raw_and_text_survive_a_dump_and_back() -> None:
    step = {
        "name": "s",
        "request": {"raw": True, "path": "/a/../b", "chunked": True, "expect_continue": True, "body": "x"},
        "expect": {
            "text": {"contains": "a", "not_contains": ["b", "c"], "matches": "^d$", "not_matches": ["e"]}
        },
    }
    parsed = JourneysSettings.model_validate({"journeys": {"j": {"steps": [step]}}})
    again = JourneysSettings.model_validate(parsed.model_dump(by_alias=True))
    assert again == parsed
    assert parsed.journeys["j"].steps[0].needs_body
