"""The operation check against the example service, in-process: a system already failing runs no
operation, and a run that leaves the version as it was does not count as changed."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from recording_context import MakeContext

from gonogo.checks.operation import OperationCheck
from gonogo.checks.operation.settings import OperationSettings

APP = Path(__file__).resolve().parents[3] / "docs" / "examples" / "operation" / "app.py"


def test_no_operation_runs_on_a_failing_system_and_an_unchanged_version_is_not_a_change(
    tmp_path: Path, recording_context: MakeContext
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    files = [
        "--db",
        str(tmp_path / "data.db"),
        "--version-file",
        str(tmp_path / "v"),
        "--pid-file",
        str(tmp_path / "pid"),
    ]
    app = subprocess.Popen(
        [sys.executable, str(APP), "serve", "--port", str(port), *files], start_new_session=True
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        operation = {"name": "deploy", "command": "true", "expect_version": "2", "repeat": 1, "pause": "1s"}

        # every request of the load fails (404) before any operation: none runs
        failing = OperationSettings.model_validate(
            {
                "load": {"rate": "50/s", "requests": [{"name": "gone", "path": "/nope"}]},
                "before": "1s",
                "operations": [operation],
            }
        )
        ctx = recording_context(base_url=base_url)
        outcome = OperationCheck().run(failing, ctx)
        assert outcome.status == "error" and "not steady before any operation" in outcome.message, outcome
        assert "requests of the load failed" in outcome.message and "404" in outcome.message
        assert ctx.commands == [] and ctx.metrics == {}

        # the command succeeds, but the service still answers version 1
        steady = OperationSettings.model_validate(
            {"version": {"url": "/version", "json": "$.version"}, "before": "1s", "operations": [operation]}
        )
        ctx = recording_context(base_url=base_url, work_dir=tmp_path / "work2")
        outcome = OperationCheck().run(steady, ctx)
        assert outcome.status == "completed", outcome
        assert ctx.value("deploy.success_rate") == 1
        assert ctx.value("deploy.version_changed") == 0
        assert ctx.value("deploy.downtime") == 0
        assert "version '1' afterwards, expected '2'" in "\n".join(outcome.details)
        (run,) = json.loads(ctx.artifact("check-operations.json"))["runs"]
        assert (run["version_before"], run["version_after"], run["exit_code"]) == ("1", "1", 0)
    finally:
        app.send_signal(signal.SIGTERM)
        app.wait(10)
