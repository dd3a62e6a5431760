"""Secrets: the run's passwords and tokens looked for in a real service's log and responses
(services/authz_target.py, with and without its leaks), any credential looked for in its log
whatever its origin (a reset token it prints), redacted wherever they are shown, the journeys
kind's own failure artifacts included."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from recording_context import MakeContext
from test_authz import Service, assert_no_secret, build_target, start_service

from gonogo.checks.journeys import JourneysCheck
from gonogo.checks.security.authz import run_authz
from gonogo.checks.security.secrets import _credentials_in, _masked, _Sent, check_secrets
from gonogo.checks.security.settings import AuthzSettings, SecretsSettings
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
        # (healthy, a forgotten password is logged without the reset token)
        email = target.users[0].variables["email"]
        assert httpx.post(f"{service.base_url}/forgot-password", json={"email": email}).status_code == 202
        result = check_secrets(SecretsSettings(), target)
    assert result.findings == []
    assert result.not_measured is None and result.notes == []
    # two passwords and two tokens, one log read, every response of the journey looked at
    assert result.tally.counts["secrets"] == 4
    assert result.tally.counts["logs"] == 1 and result.tally.counts["log_bytes"] > 0
    assert result.tally.counts["responses"] == len(target.exchanges) == 9


def test_a_password_in_the_log_names_the_file_and_line(tmp_path: Path) -> None:
    with start_service(tmp_path, "--log-password") as service:
        target = build_target(service, tmp_path)
        credentials = {key: target.users[0].variables[key] for key in ("email", "password")}
        for _ in range(2):  # the first user logs in twice more: 3 lines hold its password
            assert httpx.post(f"{service.base_url}/login", json=credentials).status_code == 200
        result = check_secrets(SecretsSettings(), target)
        # as the check names its users: after their journey
        journeys = [replace(user, label=f"{user.label} of basic_auth") for user in target.users]
        titled = check_secrets(SecretsSettings(), replace(target, users=journeys))
    logged = {f.details["parameter"]: f for f in result.findings if f.rule == "secrets.in-log"}
    assert set(logged) == {"a password of the first user", "a password of the second user"}
    first = logged["a password of the first user"]
    assert first.severity == "high" and first.category == "secrets"
    assert first.details["instance"] == "`password`"  # the variable that held it
    lines = service.log.read_text().splitlines()
    expected = next(number for number, line in enumerate(lines, 1) if credentials["password"] in line)
    assert first.details["line"] == expected and first.details["lines"] == 3
    where = f"({service.log.name} line {expected} and 2 more)"
    assert first.title == f"a password of the first user is in the log of api {where}"
    assert first.request == f"{service.log}:{expected}"
    assert "password=<redacted>" in first.response
    assert first.reproduction == f'grep -n -F -- "$PASSWORD" {service.log}'
    assert next(f.title for f in titled.findings if f.details["lines"] == 3) == (
        f"a password of the first user (of journey basic_auth) is in the log of api {where}"
    )
    # the same lines hold `password=…`: a password of the run, reported once, as such
    assert not [f for f in result.findings if f.rule == "secrets.credential-in-log"]
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
    assert token.title == "GET /me answers with a token of the first user, which POST /login issued"
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
    assert other.severity == "high" and other.details["parameter"] == "a token of the second user"
    assert token not in other.response


def test_without_credentials_only_the_logs_are_read(leaky: tuple[Service, Target]) -> None:
    service, target = leaky
    anonymous = Target(**{**vars(target), "users": []})
    result = check_secrets(SecretsSettings(), anonymous)
    assert result.not_measured is None
    assert result.notes == [
        "the journeys used no password or token: the logs were read for any credential only"
    ]
    # the passwords the log holds are no longer the run's own: found as credentials all the same
    [found] = result.findings
    assert found.rule == "secrets.credential-in-log" and found.severity == "high"
    assert found.title.startswith(f"a password (`password`) is in the log of api ({service.log.name} line ")
    assert "password=<redacted>" in found.response and "pw-" not in found.response
    nothing = check_secrets(SecretsSettings(), Target(**{**vars(anonymous), "log_files": {}}))
    assert (
        nothing.not_measured
        == "the journeys used no password or token to look for, and no service log to read"
    )


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
    # and what the check says of its failures (shown in the terminal and every report)
    said = "\n".join([outcome.message, *outcome.details])
    assert len(outcome.details) == 2 and "<redacted>" in said
    assert not re.search(r"pw-[0-9a-f-]{36}", said) and not re.search(r"eyJ[\w-]+\.eyJ", said)


# -- credentials whatever their origin ------------------------------------------------------------


def test_a_reset_token_printed_to_the_log_is_found(tmp_path: Path) -> None:
    # The fastapi-users example prints `Reset token: eyJ…` on forgot-password: a working
    # account-takeover token, which no journey used.
    with start_service(tmp_path, "--log-reset-token") as service:
        target = build_target(service, tmp_path)
        email = target.users[0].variables["email"]
        assert httpx.post(f"{service.base_url}/forgot-password", json={"email": email}).status_code == 202
        result = check_secrets(SecretsSettings(), target)
    lines = service.log.read_text().splitlines()
    number, line = next((n, text) for n, text in enumerate(lines, 1) if "Reset token: " in text)
    reset_token = line.rpartition(" ")[2]
    [found] = result.findings
    assert found.rule == "secrets.credential-in-log"
    assert found.severity == "high" and found.category == "secrets" and found.operation == "log of api"
    assert found.title == f"a JWT gonogo did not send is in the log of api ({service.log.name} line {number})"
    assert found.request == f"{service.log}:{number}"
    assert found.response.endswith("Reset token: <redacted>") and reset_token not in found.response
    assert found.details == {"parameter": "jwt", "file": str(service.log), "line": number, "lines": 1}
    assert found.fix.startswith("never log credentials")
    # the reproduction, run, shows that line
    shown = subprocess.run(["bash", "-c", found.reproduction], capture_output=True, text=True, timeout=10)
    assert shown.stdout.splitlines() == [f"{number}:{line}"]


def test_tokens_gonogo_sent_are_reported_once(tmp_path: Path) -> None:
    # A service that logs every Authorization header: the run's tokens are `secrets.in-log`;
    # what the authorization matrix made of them (truncated, altered, under another scheme) is
    # gonogo's own traffic, not another credential in the log.
    with start_service(tmp_path, "--log-authorization") as service:
        target = build_target(service, tmp_path)
        asyncio.run(run_authz(AuthzSettings(), target))
        result = check_secrets(SecretsSettings(), target)
    log = service.log.read_text()
    jwts = set(re.findall(r"eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]{8,}", log))
    assert jwts - target.secrets, "the matrix's altered tokens should be in the log"
    assert {f.rule for f in result.findings} == {"secrets.in-log"}
    assert {f.details["parameter"] for f in result.findings} == {
        "a token of the first user",
        "a token of the second user",
    }
    for finding in result.findings:
        assert_no_secret(finding, target)


def test_what_counts_as_a_credential_in_a_log_line(leaky: tuple[Service, Target]) -> None:
    _, target = leaky
    sent = _Sent(target, ())
    token = target.users[0].auth_headers["Authorization"].removeprefix("Bearer ")
    foreign = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOjEsImF1ZCI6InJlc2V0In0.c2lnbmF0dXJlLW9mLWl0"
    found = {
        "login email=a@example.test password=hunter22": "password",
        '{"email": "a@example.test", "password": "s3cret!"}': "password",
        "{'email': 'a', 'new_password': 'x9'}": "password",
        'new_password="two words"': "password",
        f"Reset token: {foreign}": "jwt",
        "Authorization: Bearer 0123456789abcdefghijXYZ": "bearer",
    }
    not_found = [
        "password=SecretStr('**********')",  # masked by pydantic
        "hashed_password=$2b$12$abcdefghijklmnopqrstuv",
        '{"password": ""}',
        "password=<redacted>",
        "password=********",
        '"GET /files/..%2f..%2fetc%2fpasswd HTTP/1.1" 404',
        "Password: incorrect",
        '"token_type": "bearer"',
        # what gonogo sent: the run's own password and token, the token cut short or altered
        f"password={target.users[0].variables['password']}",
        f"authorization=Bearer {token}",
        f"authorization=Bearer {token[: len(token) // 2]}",
        f"authorization=Token {token[:-1]}{'A' if token[-1] != 'A' else 'B'}",
    ]
    assert {line: list(_credentials_in(line, sent)) for line in found} == {
        line: [kind] for line, kind in found.items()
    }
    assert [line for line in not_found if _credentials_in(line, sent)] == []
    # every credential of a line is masked when the line is shown
    both = f"reset for a@example.test password=hunter22 token {foreign}"
    spans = [span for _, kind_spans in _credentials_in(both, sent).values() for span in kind_spans]
    assert _masked(both, spans) == "reset for a@example.test password=<redacted> token <redacted>"
