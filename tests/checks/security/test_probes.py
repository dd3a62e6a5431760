"""The probes against a real service (services/probe_target.py) started as a subprocess: each
seeded defect is found by its family at its severity, and the healthy build gives nothing at
medium or above.

The Target is built as the security check builds it: the first user's journey (register, log
in, then one request per route) sent for real and recorded as exchanges, the OpenAPI document
fetched from the service, and the service's process watched (for RSS and the traversal's
source file) through a `processes(name)` of the subprocess.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from gonogo.checks.security.findings import Finding, PartResult
from gonogo.checks.security.openapi import load_openapi
from gonogo.checks.security.probes import run_probes
from gonogo.checks.security.settings import ProbeSettings
from gonogo.checks.security.target import Budget, Exchange, Target, UserSession
from gonogo.faults.targets import ServiceControl
from gonogo.system.members import ServiceProcess

SERVICE = Path(__file__).with_name("services") / "probe_target.py"
SETTINGS = ProbeSettings(body_size=20_000_000, timing=1.0)
SLOW_WINDOW = 4.0
AT_LEAST_MEDIUM = ("critical", "high", "medium")


class OneProcess:
    """The `processes(name)` part of gonogo's ServiceControl, for the service started here."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process

    def processes(self, name: str) -> list[ServiceProcess]:
        if self.process.poll() is not None:
            return []
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        fields = stat.rpartition(")")[2].split()
        command = Path(f"/proc/{self.process.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        return [ServiceProcess(self.process.pid, int(fields[19]), int(fields[1]), command, True)]


@contextmanager
def start_service(directory: Path, *defects: str) -> Iterator[tuple[str, OneProcess]]:
    """The probe target with `defects` switched on, in `directory`, on a free port; killed (its
    whole process group) however the test ends."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    env = {**os.environ, **{f"PROBE_{defect}": "1" for defect in defects}}
    log = directory / "service.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, str(SERVICE), str(port)],
            cwd=directory,
            env=env,
            start_new_session=True,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                pytest.fail(f"the probe target exited with {process.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the probe target did not become ready within 20 s")
            time.sleep(0.05)
        yield base_url, OneProcess(process)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def _exchange(step: str, response: httpx.Response, variables: dict[str, Any]) -> Exchange:
    request = response.request
    request.read()  # a multipart body is a stream until read
    return Exchange(
        journey="documents",
        step=step,
        method=request.method,
        url=str(request.url),
        headers=tuple(request.headers.multi_items()),
        body=request.content,
        body_complete=True,
        status=response.status_code,
        response_headers=tuple(response.headers.multi_items()),
        response_body=response.content[:2048],
        response_size=len(response.content),
        response_sha256="",
        variables=dict(variables),
    )


def build_target(base_url: str, service: OneProcess, work_dir: Path) -> Target:
    """The first user's journey sent for real, one request per route, recorded."""
    email, password = f"ada-{time.monotonic_ns()}@example.test", "correct horse battery staple"
    variables: dict[str, Any] = {"email": email, "password": password}
    exchanges: list[Exchange] = []
    with httpx.Client(base_url=base_url, timeout=5) as client:

        def step(name: str, method: str, path: str, **options: Any) -> httpx.Response:
            response = client.request(method, path, **options)
            assert response.status_code < 300, (name, response.status_code, response.text)
            exchanges.append(_exchange(name, response, variables))
            return response

        step("register", "POST", "/register", json={"email": email, "password": password})
        token = step("login", "POST", "/login", json={"email": email, "password": password}).json()[
            "access_token"
        ]
        variables["token"] = token
        client.cookies.clear()  # the bearer token authenticates, as the plan says
        auth = {"Authorization": f"Bearer {token}"}
        doc_id = step("create", "POST", "/documents", json={"title": "plan", "body": "notes"}, headers=auth)
        variables["doc_id"] = doc_id.json()["id"]
        step("list", "GET", "/documents", headers=auth)  # `title`, declared, is probed all the same
        step("read", "GET", f"/documents/{variables['doc_id']}", headers=auth)
        step("file", "GET", "/files/readme.txt", headers=auth)
        step("ping", "GET", "/ping", params={"host": "localhost"}, headers=auth)
        step("greet", "GET", "/greet", params={"name": "Ada"})
        step("notify", "POST", "/notify", json={"email": email}, headers=auth)
        step(
            "avatar",
            "POST",
            "/avatars",
            data={"caption": "me"},
            files={"image": ("me.png", b"\x89PNG")},
            headers=auth,
        )
        step(
            "upload",
            "POST",
            "/upload",
            content=b"a small file",
            headers={**auth, "Content-Type": "application/octet-stream"},
        )
    return Target(
        base_url=base_url,
        openapi=load_openapi("/openapi.json", plan_dir=work_dir, base_url=base_url),
        exchanges=exchanges,
        users=[UserSession("first user", auth, variables, frozenset({password, token}))],
        budget=Budget(5000, 120),
        services=cast(ServiceControl, service),
        log_files={},
        request_timeout=2.0,
        progress=lambda _: None,
        work_dir=work_dir,
        service_names=("api",),
    )


def probe(directory: Path, *defects: str, settings: ProbeSettings = SETTINGS) -> tuple[Target, PartResult]:
    with start_service(directory, *defects) as (base_url, service):
        target = build_target(base_url, service, directory)
        return target, asyncio.run(run_probes(settings, target, slow_window=SLOW_WINDOW))


def found(result: PartResult) -> dict[tuple[str, str], Finding]:
    return {(finding.rule, finding.operation): finding for finding in result.findings}


def assert_no_secret(result: PartResult, target: Target) -> None:
    for finding in result.findings:
        for secret in target.secrets:
            for text in (finding.title, finding.request, finding.response, finding.reproduction):
                assert secret not in text, (finding.rule, finding.operation)


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Target, PartResult]:
    return probe(tmp_path_factory.mktemp("probes-healthy"))


@pytest.fixture(scope="module")
def defective(tmp_path_factory: pytest.TempPathFactory) -> tuple[Target, PartResult]:
    defects = ("TRAVERSAL", "COMMAND", "BLIND_COMMAND", "TEMPLATE", "UPLOAD", "SLOW", "HEADERS")
    return probe(tmp_path_factory.mktemp("probes-defective"), *defects)


def test_the_healthy_build_gives_nothing_at_medium_or_above(healthy: tuple[Target, PartResult]) -> None:
    _, result = healthy
    serious = [(f.rule, f.operation, f.title) for f in result.findings if f.severity in AT_LEAST_MEDIUM]
    assert serious == []
    counts = result.tally.counts
    assert counts["requests"] > 100 and counts["payloads"] > 100
    assert {"GET /files/{name}", "GET /documents", "POST /upload", "POST /avatars"} <= result.tally.operations
    assert not result.notes or all("stopped early" not in note for note in result.notes)


def test_traversal_finds_the_service_source(defective: tuple[Target, PartResult]) -> None:
    _, result = defective
    finding = found(result)[("traversal.file-outside", "GET /files/{name}")]
    assert (finding.severity, finding.category) == ("critical", "traversal")
    assert finding.details["file"] == str(SERVICE.resolve())
    assert "--path-as-is" in finding.reproduction and "$TOKEN" in finding.reproduction
    assert finding.response.startswith("HTTP/1.1 200")


def test_injection_findings(defective: tuple[Target, PartResult]) -> None:
    _, result = defective
    findings = found(result)
    command = findings[("injection.command", "GET /ping")]
    assert (command.severity, command.details["parameter"]) == ("critical", "query host")
    assert "uid=" in command.response
    template = findings[("injection.template", "GET /greet")]
    assert template.severity == "critical" and "1787569" in template.response
    timing = findings[("injection.timing", "POST /notify")]
    assert (timing.severity, timing.details["parameter"]) == ("high", "json email")
    assert "sleep" in timing.details["payload"]


def test_sql_injection_and_non_ascii(tmp_path: Path) -> None:
    settings = ProbeSettings(
        body_size=20_000_000, timing=1.0, headers=False, traversal=False, oversized=False, slow_body=False
    )
    target, result = probe(tmp_path, "SQL", "NON_ASCII", settings=settings)
    findings = found(result)
    tautology = findings[("injection.sql-tautology", "GET /documents")]
    assert (tautology.severity, tautology.category) == ("critical", "injection")
    # every row of every user, where the journey's own title gives the first user's only
    assert re.search(r"returns (\d+) rows where the harmless values return at most (\d+)", tautology.title)
    assert tautology.details["parameter"] == "query title"
    assert findings[("injection.server-error", "GET /documents")].severity == "high"  # the lone quote
    non_ascii = findings[("input.server-error", "GET /greet")]
    assert (non_ascii.severity, non_ascii.category) == ("high", "input")
    caption = findings[("input.server-error", "POST /avatars")]  # a multipart field
    assert (caption.severity, caption.details["parameter"]) == ("high", "multipart caption")
    assert 'filename="me.png"' in caption.request  # the file part sent as the journey sent it
    assert_no_secret(result, target)


def test_oversized_and_slow_bodies(defective: tuple[Target, PartResult]) -> None:
    _, result = defective
    findings = found(result)
    memory = findings[("dos.body-in-memory", "POST /upload")]
    assert memory.severity == "high" and memory.details["rss_growth"] >= 10_000_000
    assert memory.details["service"] == "api"
    assert memory.reproduction.startswith("python3 -c ") and "@body.bin" in memory.reproduction
    assert "20,000,000 bytes" in memory.request
    slow = next(finding for finding in result.findings if finding.rule == "dos.slow-body")
    assert slow.operation in ("POST /upload", "POST /avatars")  # an upload route
    assert slow.severity == "high" and "answers nothing else" in slow.title
    assert "--limit-rate 128" in slow.reproduction
    # the other operations refuse the body with 413 before reading it
    assert not [key for key in findings if key[0] == "dos.body-in-memory" and key[1] != "POST /upload"]


def test_header_findings(defective: tuple[Target, PartResult]) -> None:
    _, result = defective
    severities = {
        key: finding.severity for key, finding in found(result).items() if key[0].startswith("headers.")
    }
    assert severities[("headers.cors-credentials", "GET /")] == "high"
    assert severities[("headers.cookie-httponly", "POST /login")] == "medium"
    assert severities[("headers.cookie-samesite", "POST /login")] == "low"
    assert severities[("headers.trace", "TRACE /")] == "low"
    assert severities[("headers.server-version", "GET /documents")] == "low"
    assert severities[("headers.nosniff", "GET /documents")] == "low"
    assert severities[("headers.csp", "GET /")] == "low"
    traces = [finding for finding in result.findings if finding.rule == "headers.stack-trace"]
    assert traces and all(finding.severity == "medium" for finding in traces)
    assert {"GET /documents/{id}"} <= {finding.operation for finding in traces}


def test_findings_hold_no_secret(defective: tuple[Target, PartResult]) -> None:
    target, result = defective
    assert_no_secret(result, target)
    cookie = found(result)[("headers.cookie-httponly", "POST /login")]
    assert "<redacted>" in cookie.response


def test_a_crash_is_critical(tmp_path: Path) -> None:
    only_oversized = ProbeSettings(
        body_size=20_000_000, headers=False, traversal=False, injection=False, slow_body=False
    )
    _, result = probe(tmp_path, "CRASH", settings=only_oversized)
    crash = found(result)[("dos.crash", "POST /upload")]
    assert (crash.severity, crash.category) == ("critical", "dos")
    assert crash.details["exited"][0]["service"] == "api"


def test_a_spent_budget_stops_the_probes(tmp_path: Path) -> None:
    with start_service(tmp_path) as (base_url, service):
        target = build_target(base_url, service, tmp_path)
        target.budget = Budget(25, 60)
        result = asyncio.run(run_probes(SETTINGS, target, slow_window=SLOW_WINDOW))
    assert result.tally.counts["requests"] == 25
    assert any("request budget (25)" in note for note in result.notes)
