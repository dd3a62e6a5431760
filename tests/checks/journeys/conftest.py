"""A real test server in a subprocess, and the check run against it with a recording context."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from journeys_support import Run, free_port, stop
from recording_context import MakeContext, RecordingContext

from gonogo.checks.base import CheckOutcome
from gonogo.checks.journeys import JourneysCheck, JourneysSettings

SERVER = Path(__file__).with_name("journeys_server.py")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of the test service; the process is killed however the tests end."""
    data = tmp_path_factory.mktemp("server-data")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(SERVER), str(port), str(data)],
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
                pytest.fail(f"the test server exited with {process.returncode}:\n{errors}")
            try:
                if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the test server did not become ready within 20 s")
            time.sleep(0.05)
        yield base_url
    finally:
        stop(process)


@pytest.fixture
def run_check(server: str, tmp_path: Path, recording_context: MakeContext) -> Run:
    """Run the journeys check on settings given as YAML text, a dict or a settings object."""

    def run(
        plan: str | dict[str, Any] | JourneysSettings,
        *,
        base_url: str | None = None,
        use_server: bool = True,
    ) -> tuple[CheckOutcome, RecordingContext]:
        if isinstance(plan, JourneysSettings):
            settings = plan
        else:
            data = yaml.safe_load(plan) if isinstance(plan, str) else plan
            settings = JourneysSettings.model_validate(data)
        ctx = recording_context(
            check_name="e2e",
            plan_dir=tmp_path,
            work_dir=tmp_path / "work",
            base_url=base_url if base_url is not None or not use_server else server,
        )
        outcome = JourneysCheck().run(settings, ctx)
        return outcome, ctx

    return run
