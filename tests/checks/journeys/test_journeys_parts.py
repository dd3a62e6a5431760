"""The journeys check's parts on their own: paths, variables, matchers, payloads, percentiles."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import IO, Any, cast

import httpx
import pytest

from gonogo.checks.journeys.metrics import percentile
from gonogo.journey.jsonpath import JsonPath, JsonPathError
from gonogo.journey.matchers import json_equal, parse_matcher
from gonogo.journey.payload import FilePayload, GeneratedPayload
from gonogo.journey.reply import Reply, excerpt
from gonogo.journey.variables import (
    ExtractionError,
    VariableError,
    names_in,
    parse_extractor,
    render,
    render_value,
)


def expand(text: str) -> str:
    return text.replace("{base_url}", "http://svc").replace("{port.api}", "8080")


DOCUMENT = {"id": 7, "items": [{"name": "a"}, {"name": "b"}], "odd-key": {"a.b": True}, "none": None}


@pytest.mark.parametrize(
    ("path", "found", "value"),
    [
        ("$", True, DOCUMENT),
        ("$.id", True, 7),
        ("$.items[1].name", True, "b"),
        ("$.items[-1].name", True, "b"),
        ("$['odd-key'][\"a.b\"]", True, True),
        ("$.odd-key", True, {"a.b": True}),
        ("$.none", True, None),
        ("$.items[2]", False, None),
        ("$.id.x", False, None),
        ("$.missing", False, None),
        ("$.items.name", False, None),
    ],
)
def test_json_paths_find_one_place(path: str, found: bool, value: Any) -> None:
    assert JsonPath.parse(path).find(DOCUMENT) == (found, value)


@pytest.mark.parametrize("path", ["id", "$.", "$..id", "$.items[*]", "$[?(@.a)]", "$.a b"])
def test_unsupported_json_paths_are_refused(path: str) -> None:
    with pytest.raises(JsonPathError):
        JsonPath.parse(path)


def test_render_fills_variables_and_leaves_other_braces_alone() -> None:
    variables = {"id": 42, "name": "ann", "flag": True, "obj": {"a": [1]}}

    assert render("/u/{id}/{name}", variables, expand) == "/u/42/ann"
    assert render("{flag}|{obj}", variables, expand) == 'true|{"a":[1]}'
    assert render("{base_url}:{port.api}", variables, expand) == "http://svc:8080"
    assert render("{{id}} {} {1,2} { id }", variables, expand) == "{id} {} {1,2} { id }"


def test_a_lone_placeholder_keeps_the_variables_type_in_json() -> None:
    variables = {"id": 42, "items": [1, 2]}

    rendered = render_value({"id": "{id}", "label": "#{id}", "list": "{items}", "{id}": 1}, variables, expand)

    assert rendered == {"id": 42, "label": "#42", "list": [1, 2], "42": 1}


def test_an_unknown_variable_fails_with_the_names_that_exist() -> None:
    with pytest.raises(VariableError) as caught:
        render("Bearer {tokn}", {"token": "t", "iteration": 1}, expand)

    message = str(caught.value)
    assert message.startswith("{tokn} is not a variable at this point of the journey; did you mean {token}?")
    assert "defined here: iteration, token" in message


def test_names_in_skips_runner_placeholders_and_escapes() -> None:
    template = {"{a}": ["{b}", "{{c}}", "{port.x}", "{base_url}", "{work_dir}/{d}"]}
    assert names_in(template) == {"a", "b", "d"}


def reply(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return Reply(
        status=status,
        headers=httpx.Headers(headers or {"content-type": "application/json"}),
        body=body,
        size=len(body),
        sha256=hashlib.sha256(body).hexdigest(),
        complete=True,
    )


def test_extractors_read_json_headers_status_and_body() -> None:
    response = reply(b'{"a": {"b": [5]}}', 201, {"Location": "/x/5", "content-type": "application/json"})

    assert parse_extractor("json:$.a.b[0]").extract(response) == 5
    assert parse_extractor("header:location").extract(response) == "/x/5"
    assert parse_extractor("status").extract(response) == 201
    assert parse_extractor("body").extract(response) == '{"a": {"b": [5]}}'
    with pytest.raises(ExtractionError, match=r"\$.a.c is not in the response body"):
        parse_extractor("json:$.a.c").extract(response)
    with pytest.raises(ExtractionError, match="no Etag header"):
        parse_extractor("header:Etag").extract(response)
    with pytest.raises(ExtractionError, match="not JSON"):
        parse_extractor("json:$.a").extract(reply(b"<html>", headers={"content-type": "text/html"}))


def test_json_equality_keeps_booleans_apart_from_numbers() -> None:
    assert json_equal(1, 1.0)
    assert not json_equal(True, 1)
    assert not json_equal("1", 1)
    assert json_equal({"a": [1, {"b": None}]}, {"a": [1.0, {"b": None}]})
    assert not json_equal({"a": 1}, {"a": 1, "b": 2})


def test_matchers() -> None:
    def check(spec: Any, found: bool, value: Any) -> str | None:
        return parse_matcher(spec).check("$.x", found, value, lambda v: v)

    assert check("done", True, "done") is None
    assert check("done", True, "todo") == '$.x is "todo", expected "done"'
    assert check("done", False, None) == "$.x is missing"
    assert check({"exists": True}, False, None) == "$.x is missing, expected it to exist"
    assert check({"exists": False}, True, 3) == "$.x is 3, expected it to be absent"
    assert check({"exists": False}, False, None) is None
    assert check({"matches": "^ab"}, True, "abc") is None
    assert check({"matches": "^ab"}, True, 5) is not None
    assert check({"one_of": [1, 2]}, True, 2) is None
    assert check({"one_of": [1, 2]}, True, 3) == "$.x is 3, expected one of [1, 2]"
    assert check({"equals": {"exists": True}}, True, {"exists": True}) is None
    assert check({"exists": True, "other": 1}, True, {"exists": True, "other": 1}) is None  # a plain value


def test_generated_payload_is_deterministic_whatever_the_read_sizes() -> None:
    whole = GeneratedPayload(200_003, "seed").read()
    pieces = GeneratedPayload(200_003, "seed")
    chunks = [pieces.read(size) for size in (1, 7, 65_536, 100_000, 50_000, 10)]

    assert len(whole) == 200_003
    assert b"".join(chunks) == whole
    assert chunks[-1] == b""
    assert GeneratedPayload(200_003, "other seed").read() != whole


def test_a_payload_hashes_what_was_read_and_supports_what_httpx_does_with_it() -> None:
    payload = GeneratedPayload(100_000, "s")
    # httpx measures the length (tell, seek to the end, seek back) then rewinds and reads
    assert payload.tell() == 0
    assert payload.seek(0, os.SEEK_END) == 100_000
    payload.seek(0)
    data = b"".join(iter(lambda: payload.read(65_536), b""))

    assert payload.sha256() == hashlib.sha256(data).hexdigest()
    with pytest.raises(OSError):
        payload.seek(10)


def test_a_payload_not_read_to_the_end_still_knows_its_checksum() -> None:
    payload = GeneratedPayload(100_000, "s")
    payload.read(10)

    assert payload.sha256() == hashlib.sha256(GeneratedPayload(100_000, "s").read()).hexdigest()


def test_a_file_payload_streams_the_file(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(150_000))
    payload = FilePayload(path)
    try:
        assert payload.size == 150_000
        assert payload.read(100) + payload.read() == path.read_bytes()
        assert payload.sha256() == hashlib.sha256(path.read_bytes()).hexdigest()
    finally:
        payload.close()


def test_multipart_streaming_reads_a_payload_without_buffering_it() -> None:
    payload = GeneratedPayload(300_000, "m")
    file = cast(IO[bytes], payload)
    request = httpx.Request("POST", "http://x/", files={"f": ("f.bin", file, "application/octet-stream")})
    assert int(request.headers["Content-Length"]) > 300_000
    chunks = list(request.stream)  # type: ignore[arg-type]

    assert max(len(chunk) for chunk in chunks) <= 64 * 1024
    assert payload.sha256() == hashlib.sha256(GeneratedPayload(300_000, "m").read()).hexdigest()
    assert int(request.headers["Content-Length"]) == sum(len(chunk) for chunk in chunks)


def test_percentiles_are_nearest_rank() -> None:
    samples = [4.0, 1.0, 3.0, 2.0]
    assert percentile(samples, 50) == 2.0
    assert percentile(samples, 95) == 4.0
    assert percentile(samples, 25) == 1.0
    assert percentile([float(i) for i in range(1, 101)], 99) == 99.0
    assert percentile([float(i) for i in range(1, 11)], 99) == 10.0
    assert percentile([5.0], 50) == 5.0


def test_an_excerpt_is_at_most_2_kb_and_describes_binary_content() -> None:
    assert excerpt(b"x" * 5000, 5000, "text/plain") == "x" * 2048
    assert excerpt(bytes(range(256)) * 10, 2560, "application/octet-stream") == (
        "<2560 bytes of binary content, application/octet-stream>"
    )
    assert excerpt("é".encode() * 1500, 3000, "").startswith("é")
