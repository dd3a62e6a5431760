"""Validating the journeys settings: every mistake is caught when the plan loads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from gonogo.checks.journeys import JourneysSettings
from gonogo.errors import PlanError
from gonogo.journey.auth import Auth
from gonogo.plan import load_plan

EXAMPLE = """
base_url: "{base_url}"
request_timeout: 30s
journeys:
  upload_and_fetch:
    iterations: 5
    concurrency: 2
    variables: {email: "user-{iteration}-{uuid}@example.test", password: "s3cret-{uuid}"}
    steps:
      - name: register
        request: {method: POST, path: /register, json: {email: "{email}", password: "{password}"}}
        expect: {status: 201}
        extract: {user_id: "json:$.id"}
      - name: login
        request: {method: POST, path: /login, json: {email: "{email}", password: "{password}"}}
        expect: {status: 200, json: {"$.token_type": "bearer"}}
        extract: {token: "json:$.access_token"}
      - name: upload
        request:
          method: POST
          path: /documents
          headers: {Authorization: "Bearer {token}"}
          multipart:
            file: {generate: 50MB, filename: big.bin, content_type: application/octet-stream}
            title: "report {iteration}"
        expect: {status: 201}
        extract: {doc_id: "json:$.id"}
      - name: wait_processed
        request: {method: GET, path: "/documents/{doc_id}", headers: {Authorization: "Bearer {token}"}}
        poll: {until: {"$.status": "processed"}, interval: 200ms, timeout: 30s}
      - name: download
        request: {path: "/documents/{doc_id}/content", headers: {Authorization: "Bearer {token}"}}
        expect: {status: 200, body_sha256_of: upload}
"""


def settings(text: str) -> JourneysSettings:
    return JourneysSettings.model_validate(yaml.safe_load(text))


def one_step(step: dict[str, Any], **journey: Any) -> dict[str, Any]:
    return {"journeys": {"j": {"steps": [step], **journey}}}


def error_of(data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        JourneysSettings.model_validate(data)
    return str(caught.value)


def test_the_documented_example_is_valid() -> None:
    parsed = settings(EXAMPLE)

    journey = parsed.journeys["upload_and_fetch"]
    assert parsed.request_timeout == 30.0
    assert journey.iterations == 5 and journey.concurrency == 2
    upload = journey.steps[2]
    file = upload.request.multipart["file"] if upload.request.multipart else None
    assert file is not None and not isinstance(file, str | int | float | bool | list)
    assert file.generate == 50_000_000
    poll = journey.steps[3].poll
    assert poll is not None and poll.interval == 0.2 and poll.timeout == 30.0
    assert journey.body_source_key("upload") == ("upload", "file")
    assert journey.steps[0].extract["user_id"].source == "json"


def test_defaults_are_small_and_safe() -> None:
    parsed = JourneysSettings.model_validate(one_step({"name": "home", "request": {"path": "/"}}))

    journey = parsed.journeys["j"]
    assert (journey.iterations, journey.concurrency) == (1, 1)
    assert journey.steps[0].request.method == "GET"
    assert journey.steps[0].expect.status is None  # any 2xx
    assert parsed.base_url is None and parsed.verify_tls


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ({"name": "s", "request": {"path": "login"}}, "a path starts with /"),
        ({"name": "s", "request": {"path": "https://elsewhere.example/"}}, "a path starts with /"),
        ({"name": "s", "request": {"path": "/", "json": {}, "form": {"a": "b"}}}, "at most one body"),
        ({"name": "s", "request": {"path": "/", "method": "FETCH"}}, "method"),
        ({"name": "s", "request": {"path": "/", "jsn": {}}}, "jsn"),
        ({"name": "s", "request": {"path": "/"}, "expect": {"status": 700}}, "HTTP status (100-599)"),
        ({"name": "s", "request": {"path": "/"}, "expect": {"json": {"id": 1}}}, "is not a JSON path"),
        ({"name": "s", "request": {"path": "/"}, "expect": {"json": {"$.a[x]": 1}}}, "not a supported"),
        ({"name": "s", "request": {"path": "/"}, "expect": {"json": {"$.a": {"matches": "("}}}}, "regular"),
        ({"name": "s", "request": {"path": "/"}, "extract": {"t": "jsn:$.a"}}, "is not an extractor"),
        ({"name": "s", "request": {"path": "/"}, "extract": {"uuid": "status"}}, "built-in name"),
        ({"name": "s", "request": {"path": "/"}, "extract": {"1x": "status"}}, "not a valid variable"),
        ({"name": "s", "request": {"path": "/"}, "poll": {"interval": "1s"}}, "poll needs a condition"),
        ({"name": "s", "request": {"path": "/"}, "poll": {"status": 200, "timeout": "0s"}}, "greater than 0"),
        ({"name": "a.b", "request": {"path": "/"}}, "not a valid name"),
        ({"name": "s"}, "request"),
        (
            {"name": "s", "request": {"path": "/", "multipart": {"f": {"generate": "5MB", "path": "x"}}}},
            "exactly one of path",
        ),
        ({"name": "s", "request": {"path": "/", "multipart": {"f": {"generate": "5s"}}}}, "not a size"),
        ({"name": "s", "request": {"path": "/", "body": {"generate": 10, "size": 1}}}, "size"),
        ({"name": "s", "request": {"path": "/"}, "expect": {"body_sha256": "abc"}}, "64 hexadecimal"),
    ],
)
def test_a_bad_step_is_refused_with_a_clear_message(step: dict[str, Any], message: str) -> None:
    assert message in error_of(one_step(step))


def test_an_unknown_variable_is_caught_before_the_run() -> None:
    data = yaml.safe_load(
        """
        journeys:
          j:
            steps:
              - {name: login, request: {path: /login}, extract: {token: "json:$.token"}}
              - {name: me, request: {path: /me, headers: {Authorization: "Bearer {tokn}"}}}
        """
    )

    message = error_of(data)

    assert "step 'me' (steps[1])" in message
    assert "request.headers.Authorization" in message
    assert "{tokn} is not a variable at this point of the journey; did you mean {token}?" in message


def test_a_variable_is_only_known_after_the_step_that_extracts_it() -> None:
    data = yaml.safe_load(
        """
        journeys:
          j:
            steps:
              - {name: early, request: {path: "/docs/{doc_id}"}}
              - {name: create, request: {method: POST, path: /docs}, extract: {doc_id: "json:$.id"}}
        """
    )

    assert "step 'early' (steps[0]): request.path: {doc_id} is not a variable" in error_of(data)


def test_runner_placeholders_and_escaped_braces_are_not_variables() -> None:
    settings(
        """
        base_url: "http://127.0.0.1:{port.api}/v1"
        journeys:
          j:
            variables: {mail: "{journey}-{iteration}@x", copy: "{mail}"}
            steps:
              - name: s
                request:
                  path: "/x"
                  json: {literal: "{{not_a_variable}}", regex: "\\\\d{2,3}", object: "{}", dir: "{work_dir}"}
                expect: {json: {"$.mail": "{copy}"}}
        """
    )


def test_journey_variables_may_only_use_earlier_ones() -> None:
    data = one_step({"name": "s", "request": {"path": "/"}}, variables={"a": "{b}", "b": "x"})

    assert "variables.a: {b} is not a variable" in error_of(data)


def test_body_sha256_of_must_name_an_earlier_step_that_sends_something() -> None:
    base = {"name": "get", "request": {"path": "/x"}}
    upload = {
        "name": "up",
        "request": {
            "method": "POST",
            "path": "/u",
            "multipart": {"a": {"generate": 10}, "b": {"generate": 20}, "title": "t"},
        },
    }

    later = {"journeys": {"j": {"steps": [{**base, "expect": {"body_sha256_of": "up"}}, upload]}}}
    assert "which is not an earlier step" in error_of(later)

    ambiguous = {"journeys": {"j": {"steps": [upload, {**base, "expect": {"body_sha256_of": "up"}}]}}}
    assert "sends several files; name one, e.g. up.a" in error_of(ambiguous)

    no_field = {"journeys": {"j": {"steps": [upload, {**base, "expect": {"body_sha256_of": "up.title"}}]}}}
    assert "sends no file in multipart field 'title'" in error_of(no_field)

    nothing = {
        "journeys": {"j": {"steps": [base, {**base, "name": "again", "expect": {"body_sha256_of": "get"}}]}}
    }
    assert "sends no file or body" in error_of(nothing)

    fine = {"journeys": {"j": {"steps": [upload, {**base, "expect": {"body_sha256_of": "up.b"}}]}}}
    assert JourneysSettings.model_validate(fine).journeys["j"].body_source_key("up.b") == ("up", "b")


def test_step_names_are_unique_within_a_journey() -> None:
    step = {"name": "s", "request": {"path": "/"}}
    assert "another step (steps[0]) has that name" in error_of({"journeys": {"j": {"steps": [step, step]}}})


def test_a_journey_needs_steps_and_the_check_needs_journeys() -> None:
    assert "journeys" in error_of({"journeys": {}})
    assert "steps" in error_of({"journeys": {"j": {"steps": []}}})
    assert "iterations" in error_of(one_step({"name": "s", "request": {"path": "/"}}, iterations=0))


def test_check_level_headers_may_use_only_the_builtins() -> None:
    data = {"headers": {"X-Token": "{token}"}, **one_step({"name": "s", "request": {"path": "/"}})}
    assert "headers.X-Token: {token} is not a variable" in error_of(data)


def test_a_file_path_uses_runner_placeholders_not_journey_variables() -> None:
    step = {"name": "s", "request": {"path": "/", "body": {"path": "{plan_dir}/{iteration}.bin"}}}
    assert "not journey variables (iteration)" in error_of(one_step(step))


def test_settings_are_frozen() -> None:
    parsed = JourneysSettings.model_validate(one_step({"name": "s", "request": {"path": "/"}}))
    with pytest.raises(ValidationError):
        parsed.request_timeout = 1.0  # type: ignore[misc]


def test_settings_dump_to_plan_form_and_back() -> None:
    parsed = settings(EXAMPLE)
    step = {
        "name": "s",
        "request": {"path": "/", "body": {"path": "a.bin"}},
        "expect": {
            "status": [200, 204],
            "json": {
                "$.a": {"exists": True},
                "$.b": {"equals": {"exists": 1}},
                "$.c": {"matches": "^x", "one_of": ["xa", "xb"]},
                "$.d": 5,
            },
        },
    }
    other = JourneysSettings.model_validate(one_step(step))

    for original in (parsed, other):
        dumped = original.model_dump(mode="json", by_alias=True)
        assert JourneysSettings.model_validate(dumped) == original
    assert other.model_dump(by_alias=True)["journeys"]["j"]["steps"][0]["expect"]["json"]["$.d"] == 5


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ({"basic": ["u", "p"], "bearer": "t"}, "give exactly one of basic"),
        ({}, "give exactly one of basic"),
        ({"basic": ["u"]}, "basic"),
        ({"basic": ["a:b", "p"]}, "cannot contain ':'"),
        ({"bearer": " "}, "the bearer token is empty"),
        ({"bearer": "{tokn}"}, "request.auth.bearer: {tokn} is not a variable"),
        ({"basic": ["{user}", "p"]}, "request.auth.basic: {user} is not a variable"),
        ({"baerer": "t"}, "baerer"),
    ],
)
def test_a_bad_auth_is_refused(auth: dict[str, Any], message: str) -> None:
    assert message in error_of(one_step({"name": "s", "request": {"path": "/", "auth": auth}}))


def test_auth_and_an_authorization_header_are_refused_together_saying_which_to_keep() -> None:
    step = {"name": "s", "request": {"path": "/", "auth": {"bearer": "t"}, "headers": {"authorization": "x"}}}
    message = error_of(one_step(step))
    assert "both auth and headers.authorization set the Authorization header" in message
    assert "keep auth (it writes the header) and remove headers.authorization" in message
    check_level = {"auth": {"bearer": "t"}, "headers": {"Authorization": "x"}}
    assert "keep auth" in error_of({**check_level, **one_step({"name": "s", "request": {"path": "/"}})})


def test_check_level_auth_may_use_only_the_builtins() -> None:
    data = {"auth": {"bearer": "{token}"}, **one_step({"name": "s", "request": {"path": "/"}})}
    assert "auth.bearer: {token} is not a variable" in error_of(data)
    data["auth"] = {"basic": ["ci", 1234]}  # YAML reads a numeric password as a number
    assert JourneysSettings.model_validate(data).auth == Auth(basic=("ci", "1234"))


def test_auth_survives_a_dump_and_back() -> None:
    step = {"name": "s", "request": {"path": "/", "auth": {"basic": ["u", "{uuid}"]}}}
    parsed = JourneysSettings.model_validate(one_step(step))
    assert JourneysSettings.model_validate(parsed.model_dump(by_alias=True)) == parsed


def test_the_plan_loader_locates_an_auth_mistake(tmp_path: Path) -> None:
    plan = tmp_path / "gonogo.yaml"
    plan.write_text(
        "system: {base_url: 'http://127.0.0.1:8080'}\n"
        "checks:\n"
        "  e2e:\n"
        "    kind: journeys\n"
        "    journeys:\n"
        "      j:\n"
        "        steps:\n"
        "          - name: me\n"
        "            request:\n"
        "              path: /me\n"
        "              headers: {Authorization: Bearer x}\n"
        "              auth: {bearer: x}\n"
    )
    with pytest.raises(PlanError) as caught:
        load_plan(plan)
    (issue,) = (str(issue) for issue in caught.value.issues)
    assert issue.startswith(f"{plan}:12:21: checks.e2e.journeys.j.steps[0].request.auth: both auth"), issue
