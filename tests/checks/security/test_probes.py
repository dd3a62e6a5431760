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
from gonogo.checks.security.probes._session import outcome
from gonogo.checks.security.probes._source import source_file
from gonogo.checks.security.settings import ProbeSettings
from gonogo.checks.security.target import Budget, Exchange, Target, UserSession
from gonogo.faults.targets import ServiceControl
from gonogo.journey.raw import RawClient
from gonogo.system.members import ServiceProcess
from service_process import free_port, serving

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
    port = free_port()
    env = {**os.environ, **{f"PROBE_{defect}": "1" for defect in defects}}
    argv = [sys.executable, str(SERVICE), str(port)]
    with serving(argv, port, directory / "service.log", what="probe target", cwd=directory, env=env) as (
        base_url,
        process,
    ):
        yield base_url, OneProcess(process)


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
        step("colour", "GET", "/colour", params={"name": "red"})
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
    # the notes say what each probe was sent to: POST /echo declares no body, and gets one all the same
    oversized = next(note for note in result.notes if note.startswith("oversized body (20.0 MB): sent to"))
    assert "POST /echo" in oversized and "POST /upload" in oversized
    slow = next(note for note in result.notes if note.startswith("slow body"))
    assert "POST /echo" in slow and "all at once" in slow
    traversal = next(note for note in result.notes if note.startswith("traversal: asked for"))
    assert f"api's script probe_target.py ({SERVICE.resolve()})" in traversal and "/etc/passwd" in traversal


def test_traversal_finds_the_service_source(defective: tuple[Target, PartResult]) -> None:
    _, result = defective
    finding = found(result)[("traversal.file-outside", "GET /files/{name}")]
    assert (finding.severity, finding.category) == ("critical", "traversal")
    assert finding.details["file"] == str(SERVICE.resolve())
    assert "--path-as-is" in finding.reproduction and "$TOKEN" in finding.reproduction
    assert finding.response.startswith("HTTP/1.1 200")


def test_a_5xx_to_any_payload_is_a_server_error(defective: tuple[Target, PartResult]) -> None:
    # GET /documents/{id} takes an integer id: no injection goes there, but the traversal's
    # payloads make it fail (a traceback, which is a finding of its own at medium)
    _, result = defective
    finding = found(result)[("input.server-error", "GET /documents/{id}")]
    assert (finding.severity, finding.category, finding.details["parameter"]) == ("high", "input", "path id")
    assert "a traversal payload" in finding.title and finding.response.startswith("HTTP/1.1 500")
    assert (
        len(
            [
                f
                for f in result.findings
                if f.rule == "input.server-error" and f.operation == finding.operation
            ]
        )
        == 1
    )


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
    slow = [finding for finding in result.findings if finding.rule == "dos.slow-body"]
    assert len(slow) == 1  # one finding, naming every operation that never timed its body out
    assert slow[0].operation in ("POST /upload", "POST /avatars")  # an upload route
    assert slow[0].severity == "high" and "answers nothing else" in slow[0].title
    assert "POST /register" in slow[0].details["operations"]
    assert "--limit-rate 128" in slow[0].reproduction
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
    # TRACE / answers 405, as a framework's routing does; the application's own routes echo it
    assert severities[("headers.trace", "TRACE /register")] == "low"
    assert [key for key in severities if key[0] == "headers.trace"] == [("headers.trace", "TRACE /register")]
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


def test_a_swagger_document_gives_values_and_body_operations(tmp_path: Path) -> None:
    """A Swagger 2.0 document: the harmless values come from a parameter's `default` (beside its
    `type: int`), a POST that declares no body gets the oversized one, and a 5xx to the harmless
    value is a finding for a journey's request and a note for one made up from the document."""
    settings = ProbeSettings(
        body_size=20_000_000, timing=1.0, headers=False, traversal=False, slow_body=False
    )
    with start_service(tmp_path, "NUMBER", "LOOKUP", "ECHO") as (base_url, service):
        target = build_target(base_url, service, tmp_path)
        target.openapi = load_openapi("/swagger.json", plan_dir=tmp_path, base_url=base_url)
        result = asyncio.run(run_probes(settings, target, slow_window=SLOW_WINDOW))
    findings = found(result)
    count = findings[("input.server-error", "GET /count")]
    assert count.details["parameter"] == "query n"
    assert "a plain word, where the document declares integer" in count.title
    assert not [f for f in result.findings if f.operation == "GET /count" and f.rule != "input.server-error"]
    assert not any("GET /count" in note and "not probed" in note for note in result.notes)
    colour = findings[("input.server-error", "GET /colour")]  # the journey asked for red: known good
    assert "(a plain word)" in colour.title and colour.details["parameter"] == "query name"
    assert not [f for f in result.findings if f.operation == "GET /shade"]  # made up from the document
    assert any(note.startswith("injection: GET /shade not probed: the request made") for note in result.notes)
    echo = findings[("dos.body-in-memory", "POST /echo")]
    assert echo.severity == "high" and "application/json" in echo.request  # nothing said: a JSON body
    assert_no_secret(result, target)


def test_a_response_cut_short_is_said_in_words(tmp_path: Path) -> None:
    with start_service(tmp_path) as (base_url, _):
        response = asyncio.run(RawClient(base_url, timeout=5).request("GET", "/truncated"))
    assert outcome(response) == "200 OK, but the response was cut short (1 of 10 bytes)"


@pytest.fixture(scope="module")
def site_packages(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A virtualenv (no pip) with a package `tinyservice` installed in its site-packages: a
    two-line `__init__.py` and a `server` module that waits."""
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True)
    python = root / "venv" / "bin" / "python"
    found = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    )
    package = Path(found.stdout.strip()) / "tinyservice"
    package.mkdir()
    (package / "__init__.py").write_text("# -*- coding: utf-8 -*-\n\nfrom .core import *\n")
    (package / "core.py").write_text("")
    (package / "server.py").write_text(
        "import time\n\nwhile True:  # serve forever, as a server would\n    time.sleep(1)\n"
    )
    (root / "runner.py").write_text("import time\n\nwhile True:\n    time.sleep(1)\n")
    return python, root


@pytest.mark.parametrize(
    ("arguments", "expected", "label"),
    [
        (["-m", "tinyservice.server"], "tinyservice/server.py", "module tinyservice.server"),
        (
            ["{root}/runner.py", "-b", "127.0.0.1:8000", "tinyservice:app"],
            "tinyservice/__init__.py",
            "module tinyservice",
        ),
    ],
)
def test_the_source_file_of_an_installed_package(
    site_packages: tuple[Path, Path], tmp_path: Path, arguments: list[str], expected: str, label: str
) -> None:
    """A service whose code is installed in its virtualenv (as `pip install httpbin` and
    `gunicorn httpbin:app` are), run from a folder with no code of its own: the file asked for is
    the package's, found where the service's own interpreter imports from."""
    python, root = site_packages
    command = [str(python), *(argument.format(root=root) for argument in arguments)]
    process = subprocess.Popen(command, cwd=tmp_path, start_new_session=True)
    try:
        file = source_file("api", process.pid)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    assert file is not None and file.path.endswith(expected) and "site-packages" in file.path
    assert file.label == f"api's {label}"
    assert file.marker.search(Path(file.path).read_text())
    assert not file.marker.search("# -*- coding: utf-8 -*-")  # a small file is recognised whole
