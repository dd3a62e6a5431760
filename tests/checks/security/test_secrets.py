"""Secrets: the run's passwords and tokens looked for in a real service's log and responses
(services/authz_target.py, with and without its leaks), redacted wherever they are shown,
the journeys kind's own failure artifacts included."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from recording_context import MakeContext
from test_authz import Service, assert_no_secret, build_target, start_service

from gonogo.checks.journeys import JourneysCheck
from gonogo.checks.security.secrets import check_secrets
from gonogo.checks.security.settings import SecretsSettings
from gonogo.checks.security.target import Target
from gonogo.journey.settings import JourneysSettings


@pytest.fixture(scope="module")
def leaky(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, Target]]:
    directory = tmp_path_factory.mktemp("secrets-leaky")
    with start_service(directory, "--log-password", "--echo-token", "--echo-password") as service:
        yield service, build_target(service, directory)


def test_healthy_service_leaks_nothing(tmp_path: Path) -> None:
    with start_service(tmp_path) as service:
        target = build_target(service, tmp_path)
        result = check_secrets(SecretsSettings(), target)
    assert result.findings == []
    assert result.not_measured is None and result.notes == []
    # two passwords and two tokens, one log read, every response of the journey looked at
    assert result.tally.counts["secrets"] == 4
    assert result.tally.counts["logs"] == 1 and result.tally.counts["log_bytes"] > 0
    assert result.tally.counts["responses"] == len(target.exchanges) == 9


def test_a_password_in_the_log_names_the_file_and_line(leaky: tuple[Service, Target]) -> None:
    service, target = leaky
    result = check_secrets(SecretsSettings(), target)
    logged = {f.details["parameter"]: f for f in result.findings if f.rule == "secrets.in-log"}
    assert set(logged) == {"the first user's password `password`", "the second user's password `password`"}
    first = logged["the first user's password `password`"]
    assert first.severity == "high" and first.category == "secrets"
    password = target.users[0].variables["password"]
    lines = service.log.read_text().splitlines()
    expected = next(number for number, line in enumerate(lines, 1) if password in line)
    assert first.details["line"] == expected
    assert first.request == f"{service.log}:{expected}"
    assert "password=<redacted>" in first.response
    assert first.reproduction == f'grep -n -F -- "$PASSWORD" {service.log}'
    for finding in result.findings:
        assert_no_secret(finding, target)


def test_tokens_and_passwords_in_responses(leaky: tuple[Service, Target]) -> None:
    _, target = leaky
    result = check_secrets(SecretsSettings(), target)
    found = {(f.rule, f.operation): f for f in result.findings if f.rule != "secrets.in-log"}
    # the token POST /login issued comes back from GET /me; the password from POST /register
    assert set(found) == {
        ("secrets.token-in-response", "GET /me"),
        ("secrets.password-in-response", "POST /register"),
    }
    token = found[("secrets.token-in-response", "GET /me")]
    assert token.severity == "high"
    assert token.title == "GET /me answers with the first user's token `token`, which POST /login issued"
    assert '"token":"<redacted>"' in token.response
    assert 'Authorization: Bearer \'"$TOKEN"' in token.reproduction
    password = found[("secrets.password-in-response", "POST /register")]
    assert password.severity == "critical"
    assert '"password":"<redacted>"' in password.response
    assert "<redacted>" in password.reproduction  # the body sent held the password
    for finding in result.findings:
        assert_no_secret(finding, target)


def test_responses_of_the_other_parts_and_the_services_chosen(leaky: tuple[Service, Target]) -> None:
    service, target = leaky
    token = target.users[1].auth_headers["Authorization"].removeprefix("Bearer ")
    me = httpx.get(f"{service.base_url}/me", headers={"Authorization": f"Bearer {token}"}).content
    result = check_secrets(SecretsSettings(services=["worker"]), target, [("GET /me (fuzz)", me)])
    assert not [f for f in result.findings if f.rule == "secrets.in-log"]
    assert result.notes == ["no log to read for worker (not a service gonogo started)"]
    other = next(f for f in result.findings if f.operation == "GET /me (fuzz)")
    assert other.severity == "high" and other.details["parameter"] == "the second user's token `token`"
    assert token not in other.response


def test_without_credentials_secrets_are_not_measured(leaky: tuple[Service, Target]) -> None:
    _, target = leaky
    anonymous = Target(**{**vars(target), "users": []})
    result = check_secrets(SecretsSettings(), anonymous)
    assert result.not_measured == "the journeys used no password or token to look for"


def test_the_journeys_failure_artifacts_hold_no_secret(
    leaky: tuple[Service, Target], recording_context: MakeContext
) -> None:
    service, _ = leaky
    register = {
        "name": "register",
        "request": {
            "method": "POST",
            "path": "/register",
            "json": {"email": "{email}", "password": "{password}"},
        },
    }
    login = {
        "name": "login",
        "request": {
            "method": "POST",
            "path": "/login",
            "json": {"email": "{email}", "password": "{password}"},
        },
        "extract": {"token": "json:$.access_token"},
    }
    variables = {"email": "leak-{uuid}@example.test", "password": "pw-{uuid}"}
    settings = JourneysSettings.model_validate(
        {
            "journeys": {
                # /register answers with the password (--echo-password): 201, not the 200 expected
                "password": {"variables": variables, "steps": [{**register, "expect": {"status": 200}}]},
                # /me answers with the token (--echo-token), which the failure message quotes
                "token": {
                    "variables": variables,
                    "steps": [
                        register,
                        login,
                        {
                            "name": "me",
                            "request": {"path": "/me", "auth": {"bearer": "{token}"}},
                            "expect": {"json": {"$.token": "not this one"}},
                        },
                    ],
                },
            }
        }
    )
    ctx = recording_context(check_name="e2e", base_url=service.base_url)
    outcome = JourneysCheck().run(settings, ctx)
    assert outcome.status == "completed"
    failures = json.loads(
        next(ctx.artifacts[a.ref.sha256] for a in ctx.stored if a.ref.name == "journey-failures.json")
    )
    assert [failure["step"] for failure in failures["failures"]] == ["register", "me"]
    for stored in ctx.stored:
        text = ctx.artifacts[stored.ref.sha256].decode()
        assert not re.search(r"pw-[0-9a-f-]{36}", text), stored.ref.name
        assert not re.search(r"eyJ[\w-]+\.eyJ", text), stored.ref.name
    assert '"password":"<redacted>"' in failures["failures"][0]["response_excerpt"]
    assert "<redacted>" in failures["failures"][1]["message"]
