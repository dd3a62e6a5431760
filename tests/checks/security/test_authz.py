"""The authorization matrix against a real service (services/authz_target.py), with each seeded
defect found at its severity and the healthy build giving nothing at medium or above.

The Target is built as the security check builds it: the plan's journey run for real by the
journey engine, recording what it sent, once per user. The helpers here (`start_service`,
`build_target`) are also what test_secrets.py uses.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gonogo.checks.security.authz import _altered, _declares_security, run_authz
from gonogo.checks.security.findings import Finding, PartResult
from gonogo.checks.security.openapi import load_openapi
from gonogo.checks.security.settings import AuthzSettings
from gonogo.checks.security.target import Budget, Exchange, Target, UserSession
from gonogo.journey.engine import Engine, Sent
from gonogo.journey.redact import secrets_of
from gonogo.journey.settings import JourneysSettings
from service_process import free_port, serving

SERVICE = Path(__file__).with_name("services") / "authz_target.py"

JOURNEY: dict[str, Any] = {
    "journeys": {
        "documents": {
            "variables": {"email": "user-{uuid}@example.test", "password": "pw-{uuid}"},
            "steps": [
                {
                    "name": "register",
                    "request": {
                        "method": "POST",
                        "path": "/register",
                        "json": {"email": "{email}", "password": "{password}"},
                    },
                    "expect": {"status": 201},
                    "extract": {"user_id": "json:$.id"},
                },
                {
                    "name": "login",
                    "request": {
                        "method": "POST",
                        "path": "/login",
                        "json": {"email": "{email}", "password": "{password}"},
                    },
                    "expect": {"status": 200},
                    "extract": {"token": "json:$.access_token"},
                },
                {
                    "name": "me",
                    "request": {"path": "/me", "auth": {"bearer": "{token}"}},
                    "expect": {"status": 200},
                },
                {
                    "name": "create",
                    "request": {
                        "method": "POST",
                        "path": "/documents",
                        "auth": {"bearer": "{token}"},
                        "json": {"title": "plan of {email}", "body": "notes {uuid}"},
                    },
                    "expect": {"status": 201},
                    "extract": {"doc_id": "json:$.id"},
                },
                {
                    "name": "list",
                    "request": {"path": "/documents", "auth": {"bearer": "{token}"}},
                    "expect": {"status": 200},
                },
                {
                    "name": "read",
                    "request": {"path": "/documents/{doc_id}", "auth": {"bearer": "{token}"}},
                    "expect": {"status": 200},
                },
                {
                    "name": "update",
                    "request": {
                        "method": "PUT",
                        "path": "/documents/{doc_id}",
                        "auth": {"bearer": "{token}"},
                        "json": {"title": "revised plan of {email}", "body": "notes {uuid}"},
                    },
                    "expect": {"status": 200},
                },
                {
                    "name": "scratch",
                    "request": {
                        "method": "POST",
                        "path": "/documents",
                        "auth": {"bearer": "{token}"},
                        "json": {"title": "scratch of {email}"},
                    },
                    "expect": {"status": 201},
                    "extract": {"scratch_id": "json:$.id"},
                },
                {
                    "name": "discard",
                    "request": {
                        "method": "DELETE",
                        "path": "/documents/{scratch_id}",
                        "auth": {"bearer": "{token}"},
                    },
                    "expect": {"status": 204},
                },
            ],
        }
    }
}


@dataclass
class Service:
    base_url: str
    log: Path


@contextmanager
def start_service(directory: Path, *switches: str) -> Iterator[Service]:
    """The authz target with `switches` (`--no-owner-check`, …) on a free port, its stdout and
    stderr in a log file; killed (its whole process group) however the test ends."""
    port = free_port()
    log = directory / f"api{'-'.join(switches) or '-healthy'}.log"
    argv = [sys.executable, str(SERVICE), str(port), *switches]
    with serving(argv, port, log, what="authz target") as (base_url, _):
        yield Service(base_url, log)


def _journey_as_one_user(base_url: str, settings: JourneysSettings) -> tuple[list[Sent], dict[str, Any]]:
    recorded: list[Sent] = []
    engine = Engine(
        settings,
        base_url,
        files={},
        expand=lambda text: text,
        progress=lambda _: None,
        record=recorded.append,
    )
    results = asyncio.run(engine.run(on_journey_done=lambda _: None))
    iteration = results[0].iterations[0]
    assert iteration.ok, iteration.failure
    return recorded, iteration.variables


def _exchange(sent: Sent) -> Exchange:
    reply = sent.reply
    return Exchange(
        journey=sent.journey,
        step=sent.step,
        method=sent.method,
        url=sent.url,
        headers=sent.headers,
        body=sent.body,
        body_complete=sent.body_complete,
        status=reply.status,
        response_headers=tuple(reply.headers.multi_items()),
        response_body=reply.body,
        response_size=reply.size,
        response_sha256=reply.sha256 or "",
        variables=sent.variables,
    )


def _session(label: str, recorded: list[Sent], variables: dict[str, Any]) -> UserSession:
    last = next(
        sent for sent in reversed(recorded) if any(k.lower() == "authorization" for k, _ in sent.headers)
    )
    auth = {key: value for key, value in last.headers if key.lower() == "authorization"}
    return UserSession(label, auth, variables, frozenset(secrets_of(variables, auth)))


def build_target(
    service: Service,
    work_dir: Path,
    *,
    second_user: bool = True,
    requests: int = 2000,
    journey: dict[str, Any] = JOURNEY,
) -> Target:
    """The Target the security check would build: the journey run for real as a first and (by
    default) a second user, the OpenAPI document fetched from the service, its log file."""
    settings = JourneysSettings.model_validate(journey)
    first, first_variables = _journey_as_one_user(service.base_url, settings)
    users = [_session("first user", first, first_variables)]
    if second_user:
        users.append(_session("second user", *_journey_as_one_user(service.base_url, settings)))
    return Target(
        base_url=service.base_url,
        openapi=load_openapi("/openapi.json", plan_dir=work_dir, base_url=service.base_url),
        exchanges=[_exchange(sent) for sent in first],
        users=users,
        budget=Budget(requests, 60),
        services=None,
        log_files={"api": service.log},
        request_timeout=5.0,
        progress=lambda _: None,
        work_dir=work_dir,
    )


def by_rule(result: PartResult) -> dict[tuple[str, str], Finding]:
    return {(finding.rule, finding.operation): finding for finding in result.findings}


def assert_no_secret(finding: Finding, target: Target) -> None:
    for secret in target.secrets:
        for text in (finding.request, finding.response, finding.reproduction, finding.title):
            assert secret not in text, (finding.rule, secret)


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, Target, PartResult]]:
    directory = tmp_path_factory.mktemp("authz-healthy")
    with start_service(directory) as service:
        target = build_target(service, directory)
        yield service, target, asyncio.run(run_authz(AuthzSettings(), target))


def test_healthy_build_gives_no_finding_at_medium_or_above(
    healthy: tuple[Service, Target, PartResult],
) -> None:
    _, target, result = healthy
    assert [
        finding for finding in result.findings if finding.severity in ("critical", "high", "medium")
    ] == []
    tally = result.tally
    # 6 credentialed exchanges (me, create, list, read, update, discard), each replayed at least
    # without credentials and with malformed ones; the export operation tried anonymously.
    assert tally.counts["replays"] >= 6 * 6
    assert tally.counts["requests"] == target.budget.used
    assert "GET /documents/{doc_id}/export" in tally.operations
    assert "DELETE /documents/{doc_id}" in tally.operations
    # the scratch document the journey deleted was created again for the DELETE's replays
    assert tally.counts["recreated"] >= 1
    assert result.notes == []


def test_expired_token_refused_on_the_healthy_build(
    healthy: tuple[Service, Target, PartResult], tmp_path: Path
) -> None:
    service, target, _ = healthy
    user_id = target.users[0].variables["user_id"]
    expired = httpx.get(f"{service.base_url}/token/expired", params={"sub": user_id}).json()["token"]
    target.budget = Budget(200, 30)
    result = asyncio.run(run_authz(AuthzSettings(expired=f"Bearer {expired}"), target))
    assert not [finding for finding in result.findings if finding.rule == "authn.expired-token"]


def test_missing_owner_check_is_broken_object_level_authorization(tmp_path: Path) -> None:
    with start_service(tmp_path, "--no-owner-check", "--no-auth") as service:
        target = build_target(service, tmp_path)
        result = asyncio.run(run_authz(AuthzSettings(), target))
        # Without an OpenAPI document: operations are named after the variables in their paths
        # (the first user's id and document id are both 1 here: the path says which it is).
        target.openapi, target.budget = None, Budget(2000, 60)
        undocumented = by_rule(asyncio.run(run_authz(AuthzSettings(), target)))
    assert {key for key in undocumented if key[0] == "authz.bola"} == {
        ("authz.bola", "GET /documents/{doc_id}"),
        ("authz.bola", "PUT /documents/{doc_id}"),
        ("authz.bola", "DELETE /documents/{scratch_id}"),  # the variable the journey deleted
    }
    assert ("authn.no-credentials", "GET /documents/{doc_id}/export") not in undocumented
    found = by_rule(result)
    read = found[("authz.bola", "GET /documents/{doc_id}")]
    assert read.severity == "critical" and read.category == "authz"
    email = target.users[0].variables["email"]
    assert repr(email) in read.details["evidence"]  # (the body changed since: the journey updated it)
    assert read.fix.startswith("check that the resource's owner is the caller")
    assert "$SECOND_TOKEN" in read.reproduction and "--path-as-is" in read.reproduction
    delete = found[("authz.bola", "DELETE /documents/{doc_id}")]
    assert delete.severity == "critical"
    assert delete.details["proof"].startswith("the first user's GET of the same path answers 404")
    # the PUT without any token (--no-auth) changes the first user's document: critical
    update = found[("authn.no-credentials", "PUT /documents/{doc_id}")]
    assert update.severity == "critical" and update.category == "authn"
    assert "Authorization" not in update.request
    # the export route, secured in the OpenAPI document but called by no journey, is tried
    # anonymously with the first user's document id and returns its title
    export = found[("authn.no-credentials", "GET /documents/{doc_id}/export")]
    assert export.severity == "critical" and export.details["source"] == "openapi"
    # reads of the first user's own list or profile by the second user are the second's own
    assert ("authz.bola", "GET /documents") not in found
    assert ("authz.bola", "GET /me") not in found
    # no malformed-token finding: the signature is still checked
    assert not [key for key in found if key[0] == "authn.altered-signature"]
    for finding in result.findings:
        assert_no_secret(finding, target)


def test_unchecked_signature_and_expiry_are_missing_authentication(tmp_path: Path) -> None:
    with start_service(tmp_path, "--any-signature", "--ignore-expiry") as service:
        target = build_target(service, tmp_path)
        user_id = target.users[0].variables["user_id"]
        expired = httpx.get(f"{service.base_url}/token/expired", params={"sub": user_id}).json()["token"]
        result = asyncio.run(run_authz(AuthzSettings(expired=f"Bearer {expired}"), target))
    found = by_rule(result)
    me = found[("authn.altered-signature", "GET /me")]
    assert me.severity == "critical"  # it returns the first user's profile
    assert me.reproduction.startswith('ALTERED="${TOKEN%?}')
    assert 'Authorization: Bearer \'"$ALTERED"' in me.reproduction
    assert found[("authn.altered-signature", "DELETE /documents/{doc_id}")].severity == "critical"
    assert found[("authn.expired-token", "GET /documents/{doc_id}")].severity == "critical"
    # the rest is refused: no credentials, another scheme, a truncated token
    rules = {rule for rule, _ in found}
    assert rules == {"authn.altered-signature", "authn.expired-token"}
    for finding in result.findings:
        assert_no_secret(finding, target)


def test_without_a_second_user_bola_is_not_tried_and_the_budget_stops_the_matrix(
    healthy: tuple[Service, Target, PartResult], tmp_path: Path
) -> None:
    service, _, _ = healthy
    target = build_target(service, tmp_path, second_user=False, requests=5)
    result = asyncio.run(run_authz(AuthzSettings(), target))
    assert any("broken object-level authorization was not tried" in note for note in result.notes)
    assert any("the request budget (5) was reached" in note for note in result.notes)
    assert result.tally.counts["requests"] == 5


def test_nothing_to_try_is_not_measured(healthy: tuple[Service, Target, PartResult]) -> None:
    _, target, _ = healthy
    anonymous = Target(
        **{**vars(target), "exchanges": [e for e in target.exchanges if not e.authenticated], "openapi": None}
    )
    result = asyncio.run(run_authz(AuthzSettings(), anonymous))
    assert result.not_measured is not None and result.not_measured.startswith("no request of the journeys")
    assert result.tally.counts["requests"] == 0


def test_an_altered_jwt_signature_changes_its_bytes() -> None:
    # The last character of an HS256 signature holds 4 bits and 2 of padding: flipping the top
    # bit of its 6 always changes the decoded signature.
    assert _altered("aaa.bbb.cccA") == "aaa.bbb.cccg"
    assert _altered("aaa.bbb.cccg") == "aaa.bbb.cccA"
    assert _altered("0f9e") == "0f9f"
    assert _altered("0f9f") == "0f9a"
    assert _altered("xyz9") == "xyz0"


# -- a document that says nothing about security ---------------------------------------------------

ECHO_STEP: dict[str, Any] = {
    "name": "echo",
    "request": {
        "method": "POST",
        "path": "/anything",
        "auth": {"bearer": "{token}"},
        "json": {"title": "plan of {email}"},
    },
    "expect": {"status": 200},
}


def _with_steps(*steps: dict[str, Any]) -> dict[str, Any]:
    journey = copy.deepcopy(JOURNEY)
    journey["journeys"]["documents"]["steps"] += list(steps)
    return journey


def _swagger(tmp_path: Path, name: str, **extra: Any) -> bool:
    """Whether gonogo reads a small Swagger 2.0 document with `extra` as speaking about security."""
    operation: dict[str, Any] = {"responses": {"200": {"description": "ok"}}}
    document: dict[str, Any] = {
        "swagger": "2.0",
        "info": {"title": "httpbin-like", "version": "1"},
        "paths": {"/headers": {"get": operation}, "/bearer": {"get": dict(operation)}},
    }
    if "bearer_security" in extra:
        document["paths"]["/bearer"]["get"]["security"] = extra.pop("bearer_security")
    document.update(extra)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(document))
    return _declares_security(load_openapi(str(path), plan_dir=tmp_path, base_url=None))


def test_only_a_document_that_declares_security_makes_an_operation_public(tmp_path: Path) -> None:
    schemes = {"bearer": {"type": "apiKey", "name": "Authorization", "in": "header"}}
    assert not _swagger(tmp_path, "silent")  # httpbin's: no security anywhere
    assert not _swagger(tmp_path, "unused", securityDefinitions=schemes)  # declared, used by none
    assert not _swagger(tmp_path, "empty", security=[{}])
    assert _swagger(tmp_path, "global", securityDefinitions=schemes, security=[{"bearer": []}])
    assert _swagger(tmp_path, "operation", securityDefinitions=schemes, bearer_security=[{"bearer": []}])


def test_without_security_in_the_document_every_credentialed_request_is_replayed(tmp_path: Path) -> None:
    journey = _with_steps(ECHO_STEP)
    with start_service(tmp_path, "--openapi-without-security") as service:
        target = build_target(service, tmp_path, journey=journey)
        assert target.openapi is not None and not any(op.secured for op in target.openapi.operations)
        healthy = asyncio.run(run_authz(AuthzSettings(), target))
    with start_service(tmp_path, "--openapi-without-security", "--no-auth") as service:
        target = build_target(service, tmp_path, journey=journey)
        broken = by_rule(asyncio.run(run_authz(AuthzSettings(), target)))
    # 6 credentialed requests of the document routes, each replayed without credentials and with
    # 5 malformed ones (empty, `Bearer `, 2 other schemes, truncated, altered), as on a document
    # that secures them; the echo answers without credentials, so no malformed one follows.
    assert healthy.tally.counts["replays"] >= 6 * 7 + 1
    assert [f for f in healthy.findings if f.severity in ("critical", "high", "medium")] == []
    # the public echo (httpbin's POST /anything) echoes the first user's email it was sent: no
    # evidence of anything, so it stays low
    echo = by_rule(healthy)[("authn.no-credentials", "POST /anything")]
    assert echo.severity == "low" and echo.details["evidence"] == []
    assert echo.title.endswith("(the OpenAPI document declares no security)")
    # with the authentication of PUT /documents/{doc_id} gone, its anonymous replay finds it
    update = broken[("authn.no-credentials", "PUT /documents/{doc_id}")]
    assert update.severity == "critical" and "Authorization" not in update.request
    assert broken[("authn.no-credentials", "POST /anything")].severity == "low"


# -- a token still valid after logout -------------------------------------------------------------

LOGOUT_JOURNEY: dict[str, Any] = {
    "journeys": {
        "documents": {
            **JOURNEY["journeys"]["documents"],
            "steps": [
                *JOURNEY["journeys"]["documents"]["steps"][:6],  # register … read
                {
                    "name": "logout",
                    "request": {"method": "POST", "path": "/logout", "auth": {"bearer": "{token}"}},
                    "expect": {"status": 204},
                },
            ],
        }
    }
}


def test_a_logout_that_revokes_nothing_leaves_the_token_valid(tmp_path: Path) -> None:
    with start_service(tmp_path) as service:
        target = build_target(service, tmp_path, journey=LOGOUT_JOURNEY)
        healthy = asyncio.run(run_authz(AuthzSettings(), target))
    with start_service(tmp_path, "--keep-token-after-logout") as service:
        target = build_target(service, tmp_path, journey=LOGOUT_JOURNEY)
        kept = asyncio.run(run_authz(AuthzSettings(), target))
        finding = by_rule(kept)[("authn.token-after-logout", "POST /logout")]
        reproduced = None
        if shutil.which("curl") is not None:
            token = target.users[0].auth_headers["Authorization"].removeprefix("Bearer ")
            reproduced = subprocess.run(
                ["bash", "-c", finding.reproduction],
                env={**os.environ, "TOKEN": token},
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout
    # healthy: the read after logout is refused; every replay as the second user is too (its
    # own journey logged it out), which a note says
    assert healthy.tally.counts["after_logout"] == 1
    assert [f for f in healthy.findings if f.severity in ("critical", "high", "medium")] == []
    assert any("the second user's own logout probably revoked" in note for note in healthy.notes)
    # kept: GET /documents, the read nearest the logout on no single document, still answers
    assert [f for f in kept.findings if f.severity in ("critical", "high", "medium")] == [finding]
    assert finding.severity == "high" and finding.category == "authn"
    assert finding.details["read"] == "GET /documents"
    assert finding.title == (
        "POST /logout leaves the credentials valid: GET /documents still answers 200 with those it logged out"
    )
    assert finding.fix.startswith("revoke the session/token on logout")
    assert finding.request.startswith("GET /documents ") and finding.response.startswith("HTTP/1.1 200")
    logout, _, read = finding.reproduction.partition(" && ")
    assert "-X POST" in logout and logout.endswith(f"{target.base_url}/logout") and "$TOKEN" in logout
    assert read.endswith(f"{target.base_url}/documents") and 'Authorization: Bearer \'"$TOKEN"' in read
    assert_no_secret(finding, target)
    if reproduced is not None:  # logged out, then read: 204, then 200
        statuses = [line.split()[1] for line in reproduced.splitlines() if line.startswith("HTTP/")]
        assert statuses == ["204", "200"]
    assert not any("logout probably revoked" in note for note in kept.notes)
