"""Fuzzing from the OpenAPI document, against a real item service with seeded defects
(services/fuzz_target.py): each defect is found at its severity, the healthy build has nothing
at medium or above, and the crash is seen by gonogo's own supervisor (gonogo.system.System).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from gonogo.checks.security.findings import PartResult
from gonogo.checks.security.fuzz import run_fuzz
from gonogo.checks.security.openapi import OpenApi, load_openapi
from gonogo.checks.security.settings import FuzzSettings
from gonogo.checks.security.target import Budget, Target, UserSession
from gonogo.faults.targets import ServiceControl
from gonogo.plan.model import SystemSpec
from gonogo.system import Reaper, System

SERVICE = Path(__file__).parent / "services" / "fuzz_target.py"
TOKEN = "fuzz-token-" + secrets.token_hex(6)
HANG = 1.0  # seconds: the hang limit of these tests

StartService = Callable[[str], str]
Fuzz = Callable[..., PartResult]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _await_health(base_url: str, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + 20
    while True:
        if process is not None and process.poll() is not None:
            errors = process.stderr.read().decode() if process.stderr else ""
            pytest.fail(f"the fuzz target exited with {process.returncode}:\n{errors}")
        try:
            if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            pytest.fail("the fuzz target did not become ready within 20 s")
        time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    if process.stderr:
        process.stderr.close()


@pytest.fixture
def start_service() -> Iterator[StartService]:
    """Start the fuzz target with the defects named (comma-separated, "" for the healthy
    build); every process is killed when the test ends."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(defects: str) -> str:
        port = _free_port()
        env = {**os.environ, "FUZZ_TARGET_DEFECTS": defects, "FUZZ_TARGET_TOKEN": TOKEN}
        process = subprocess.Popen(
            [sys.executable, str(SERVICE), str(port)],
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        processes.append(process)
        base_url = f"http://127.0.0.1:{port}"
        _await_health(base_url, process)
        return base_url

    yield start
    for process in processes:
        _stop(process)


@pytest.fixture(scope="module")
def healthy_service() -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "FUZZ_TARGET_DEFECTS": "", "FUZZ_TARGET_TOKEN": TOKEN}
    process = subprocess.Popen(
        [sys.executable, str(SERVICE), str(port)],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        base_url = f"http://127.0.0.1:{port}"
        _await_health(base_url, process)
        yield base_url
    finally:
        _stop(process)


@pytest.fixture
def progress() -> list[str]:
    return []


@pytest.fixture
def fuzz(tmp_path: Path, progress: list[str], monkeypatch: pytest.MonkeyPatch) -> Fuzz:
    """Run the fuzzing part on a service, from the document it serves, as a user with TOKEN.
    The working directory is an empty folder, to show that nothing is written there."""
    monkeypatch.chdir(tmp_path)

    def run(
        base_url: str,
        *,
        budget: Budget | None = None,
        services: ServiceControl | None = None,
        service_names: tuple[str, ...] = (),
        openapi: OpenApi | None = None,
        **settings: object,
    ) -> PartResult:
        user = UserSession("first user", {"Authorization": f"Bearer {TOKEN}"}, {}, frozenset({TOKEN}))
        target = Target(
            base_url=base_url,
            openapi=openapi or load_openapi("/openapi.json", plan_dir=tmp_path, base_url=base_url),
            exchanges=[],
            users=[user],
            budget=budget or Budget(2_000, 120),
            services=services,
            log_files={},
            request_timeout=5.0,
            progress=progress.append,
            work_dir=tmp_path / "work",
            service_names=service_names,
        )
        return run_fuzz(FuzzSettings.model_validate({"max_examples": 12, "hang": HANG, **settings}), target)

    return run


def _rules(result: PartResult) -> dict[tuple[str, str], str]:
    """(rule, operation) → severity of every finding."""
    return {(finding.rule, finding.operation): finding.severity for finding in result.findings}


def test_the_healthy_build_has_nothing_at_medium_or_above(
    fuzz: Fuzz, healthy_service: str, tmp_path: Path, progress: list[str], capfd: pytest.CaptureFixture[str]
) -> None:
    result = fuzz(healthy_service)

    serious = [finding for finding in result.findings if finding.severity in ("critical", "high", "medium")]
    assert serious == [], serious
    assert result.not_measured is None
    assert result.tally.operations == {
        "GET /health",
        "POST /items",
        "POST /items/{item_id}/restock",
        "GET /items/{item_id}",
        "GET /search",
    }
    # A body in a media type Schemathesis cannot write: the operation is skipped, with the reason.
    assert "POST /ledger: not fuzzed: No supported serializers for media types: application/x-ledger" in (
        result.notes
    )
    assert result.tally.counts["cases"] > 20
    assert result.tally.counts["requests"] == result.tally.counts["cases"]
    assert progress and all(line.startswith("fuzz: ") for line in progress)
    assert progress[-1].startswith("fuzz: 6/6 operations")
    assert capfd.readouterr() == ("", "")  # quiet: progress goes through the target only
    # Hypothesis keeps only its Unicode tables, in the user's cache: nothing in the folder gonogo
    # runs from (no .hypothesis/ of examples)
    assert set(path.name for path in tmp_path.iterdir()) <= {"work"}


def test_a_500_on_a_non_ascii_name_is_high_with_a_reproduction_that_reproduces_it(
    fuzz: Fuzz, start_service: StartService
) -> None:
    result = fuzz(start_service("non-ascii"))

    errors = [finding for finding in result.findings if finding.rule == "fuzz.server-error"]
    assert [(finding.operation, finding.severity, finding.category) for finding in errors] == [
        ("POST /items", "high", "fuzz")
    ]
    finding = errors[0]
    assert finding.details["status"] == 500
    assert finding.request.startswith("POST /items\n")
    assert "Authorization: <redacted>" in finding.request
    assert finding.response.startswith("HTTP 500")
    for text in (finding.request, finding.response, finding.reproduction):
        assert TOKEN not in text
    assert '-H "Authorization: Bearer $TOKEN"' in finding.reproduction
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed: the reproduction is not replayed")
    replay = subprocess.run(
        ["bash", "-c", finding.reproduction + " --silent --output /dev/null --write-out '%{http_code}'"],
        env={**os.environ, "TOKEN": TOKEN},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert replay.stdout == "500", replay.stderr


def test_a_response_that_violates_its_declared_schema_is_medium(
    fuzz: Fuzz, start_service: StartService
) -> None:
    result = fuzz(start_service("schema"), seed=7)  # any seed: every item it reads violates the schema

    assert _rules(result)[("fuzz.response-schema", "GET /items/{item_id}")] == "medium"
    finding = next(finding for finding in result.findings if finding.rule == "fuzz.response-schema")
    assert "integer" in finding.details["violation"]
    assert "units" in finding.response
    assert not [finding for finding in result.findings if finding.severity in ("critical", "high")]


def test_a_request_that_is_never_answered_is_a_high_hang(fuzz: Fuzz, start_service: StartService) -> None:
    result = fuzz(start_service("hang"), operations=["GET /search"])

    assert _rules(result) == {("fuzz.hang", "GET /search"): "high"}
    finding = result.findings[0]
    assert "limit=-" in finding.request
    assert "GET /search: left after a request that got no answer (a hang)" in result.notes
    assert "1 operation(s)" not in " ".join(result.notes)
    assert result.tally.operations == {"GET /search"}
    assert any("left out by fuzz.operations" in note for note in result.notes)


class _Events:
    """A SystemObserver that ignores what it is told: the tests read the system's history."""

    def on_event(self, source: str, kind: str, message: str) -> None:
        pass

    def on_sample(
        self,
        service: str,
        at: datetime,
        cpu_percent: float,
        rss_bytes: float,
        open_fds: float,
        threads: float,
    ) -> None:
        pass

    def on_scrape(self, service: str, at: datetime, gauges: dict[str, float] | None) -> None:
        pass


@pytest.fixture
def supervised(tmp_path: Path) -> Iterator[Callable[[str], tuple[System, str]]]:
    """The fuzz target started by gonogo's own supervisor, restarted when it crashes."""
    reaper = Reaper.start("test-fuzz-" + secrets.token_hex(6), log_path=tmp_path / "reaper.log")
    systems: list[System] = []

    def start(defects: str) -> tuple[System, str]:
        port = _free_port()
        service = {
            "command": [sys.executable, str(SERVICE), str(port)],
            "env": {"FUZZ_TARGET_DEFECTS": defects, "FUZZ_TARGET_TOKEN": TOKEN},
            "ready": {"http": f"http://127.0.0.1:{port}/health", "interval": 0.05},
            "restart": "on-failure",
            "restart_backoff": 0.2,
            "grace": 2,
        }
        spec = SystemSpec.model_validate({"services": {"api": service}, "sample_interval": 0.2})
        system = System(
            spec,
            plan_dir=tmp_path,
            expand=lambda text: text,
            log_dir=tmp_path / "logs",
            reaper=reaper,
            observer=_Events(),
        )
        systems.append(system)
        system.start()
        return system, f"http://127.0.0.1:{port}"

    try:
        yield start
    finally:
        for system in systems:
            system.stop()
        reaper.close()


def test_a_crash_seen_by_the_supervisor_is_critical_and_fuzzing_goes_on_after_the_restart(
    fuzz: Fuzz, supervised: Callable[[str], tuple[System, str]]
) -> None:
    system, base_url = supervised("crash")

    result = fuzz(base_url, services=system, service_names=("api",))

    crashes = [finding for finding in result.findings if finding.rule == "fuzz.crash"]
    assert [(finding.operation, finding.severity) for finding in crashes] == [
        ("POST /items/{item_id}/restock", "critical")
    ]
    crash = crashes[0]
    assert crash.details["service"] == "api"
    assert crash.details["exit_code"] == 3
    assert "exited with code 3" in crash.title
    # The last case sent before the exit: a restock of more than the 1000 units it survives.
    assert crash.request.startswith("POST /items/")
    amount = int(crash.request.split("amount=")[1].split()[0].split("&")[0])
    assert amount > 1000
    assert "$TOKEN" in crash.reproduction and TOKEN not in crash.reproduction
    assert [event.kind for event in system.history("api")].count("exited") >= 1
    # Restarted by the supervisor, the service was fuzzed further.
    assert {"GET /items/{item_id}", "GET /search"} <= result.tally.operations
    assert not any("did not come back" in note for note in result.notes)


def test_a_crash_without_a_supervisor_is_inferred_from_the_closed_port_and_fuzzing_stops(
    fuzz: Fuzz, start_service: StartService
) -> None:
    result = fuzz(start_service("crash"))

    assert _rules(result)[("fuzz.crash", "POST /items/{item_id}/restock")] == "critical"
    assert any("did not come back" in note for note in result.notes)
    assert "3 operation(s) not fuzzed" in result.notes
    assert "GET /search" not in result.tally.operations


def test_fuzzing_stops_cleanly_when_the_budget_is_spent(fuzz: Fuzz, healthy_service: str) -> None:
    result = fuzz(healthy_service, budget=Budget(5, 60))

    assert result.tally.counts["requests"] == 5
    assert any("the request budget (5) was reached" in note for note in result.notes)
    assert result.not_measured is None


def test_a_document_schemathesis_refuses_is_not_measured(fuzz: Fuzz, healthy_service: str) -> None:
    document = {"openapi": "4.0.0", "info": {"title": "x", "version": "1"}, "paths": {}}

    result = fuzz(healthy_service, openapi=OpenApi(document, "plan/openapi.yaml"))

    assert result.not_measured is not None
    assert result.not_measured.startswith("plan/openapi.yaml: Schemathesis cannot use the OpenAPI document:")
    assert "4.0.0" in result.not_measured
    assert result.tally.counts["requests"] == 0


def test_no_operation_to_fuzz_is_not_measured(fuzz: Fuzz, healthy_service: str) -> None:
    document = load_openapi("/openapi.json", plan_dir=Path("."), base_url=healthy_service).document

    result = fuzz(healthy_service, openapi=OpenApi(document, "/openapi.json"), exclude=["* /*"])

    assert result.not_measured == (
        "/openapi.json: no operation to fuzz (6 operation(s) left out by fuzz.operations / fuzz.exclude)"
    )


def test_paths_are_sent_under_the_path_of_the_documents_server(fuzz: Fuzz, healthy_service: str) -> None:
    document = load_openapi("/openapi.json", plan_dir=Path("."), base_url=healthy_service).document
    document["servers"] = [
        {"url": "https://api.example.com/{version}", "variables": {"version": {"default": "v2"}}}
    ]

    result = fuzz(healthy_service, openapi=OpenApi(document, "/openapi.json"), operations=["get /health"])

    # The service has no /v2 prefix: its 404, undeclared, shows where the request went.
    assert [(finding.rule, finding.request.splitlines()[0]) for finding in result.findings] == [
        ("fuzz.undeclared-status", "GET /v2/health")
    ]
    assert result.findings[0].reproduction.endswith(f"{healthy_service}/v2/health")
