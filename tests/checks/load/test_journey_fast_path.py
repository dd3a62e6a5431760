"""Journeys under load end to end on a real JSON service (journey_crud_server.py, started here):
sign-up and log-in once per virtual user in `setup`, create, poll, rename (by session cookie)
and delete in the journey, close the account in `teardown`; on the C engine, and on the
Python driver when a step needs it. The service's own counts are the check of ours."""

from __future__ import annotations

import contextlib
import copy
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from recording_context import MakeContext

from gonogo.checks.load import LoadCheck, LoadSettings

SERVER = Path(__file__).parent / "journey_crud_server.py"
USERS = 20

PLAN: dict[str, Any] = {
    "model": "closed",
    "users": USERS,
    "late_threshold": "100ms",  # 2 shared cores: the service, the generator and the OS
    "setup": {
        "variables": {"email": "user-{uuid}@example.test", "password": "pw-{uuid}"},
        "steps": [
            {
                "name": "signup",
                "request": {
                    "method": "POST",
                    "path": "/signup",
                    "json": {"email": "{email}", "password": "{password}"},
                },
                "expect": {"status": 201},
            },
            {
                "name": "login",
                "request": {
                    "method": "POST",
                    "path": "/login",
                    "json": {"email": "{email}", "password": "{password}"},
                },
                "extract": {"token": "json:$.access_token"},
            },
        ],
    },
    "journeys": {
        "crud": {
            "steps": [
                {
                    "name": "create",
                    "request": {
                        "method": "POST",
                        "path": "/items",
                        "auth": {"bearer": "{token}"},
                        "json": {"title": "item {iteration}", "number": "{iteration}"},
                    },
                    "expect": {"status": 201, "json": {"$.state": "pending"}},
                    "extract": {"item": "json:$.id"},
                },
                {
                    "name": "wait",
                    "request": {"path": "/items/{item}", "auth": {"bearer": "{token}"}},
                    "poll": {"until": {"$.state": "ready"}, "interval": "10ms", "timeout": "3s"},
                },
                {
                    "name": "rename",  # by the session cookie of the setup's login
                    "request": {"method": "PUT", "path": "/items/{item}", "json": {"title": "renamed"}},
                    "expect": {"json": {"$.title": "renamed"}},
                },
                {
                    "name": "delete",
                    "request": {"method": "DELETE", "path": "/items/{item}", "auth": {"bearer": "{token}"}},
                    "expect": {"status": 204},
                },
            ]
        }
    },
    "teardown": {
        "steps": [
            {
                "name": "close",
                "request": {"method": "DELETE", "path": "/account", "auth": {"bearer": "{token}"}},
                "expect": {"status": 204},
            }
        ]
    },
}
STEPS = ("create", "wait", "rename", "delete")


@pytest.fixture
def service() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    process = subprocess.Popen(
        [sys.executable, str(SERVER), str(port)],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, f"the service exited with {process.returncode}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base_url}/stats", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, "the service did not become ready within 20 s"
            time.sleep(0.05)
        yield base_url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


@pytest.mark.parametrize("driver", ["c", "python"])
def test_setup_crud_poll_and_teardown_under_load(
    recording_context: MakeContext, service: str, driver: str
) -> None:
    plan = copy.deepcopy(PLAN)
    plan["duration"] = "5s" if driver == "c" else "2s"
    if driver == "python":  # a check the C engine cannot judge sends the plan to the Python driver
        plan["journeys"]["crud"]["steps"][2]["expect"]["text"] = {"not_contains": "error"}
    ctx = recording_context(check_name="load", base_url=service)
    outcome = LoadCheck().run(LoadSettings.model_validate(plan), ctx)
    assert outcome.status == "completed", outcome
    assert any(
        f"journeys run on the {'C engine' if driver == 'c' else 'Python driver'}" in line
        for line in ctx.progress_messages
    )

    fast = ctx.metric("generator.fast_path")
    if driver == "c":
        assert fast.value == 1 and fast.source == "the journeys ran on the C engine"
    else:
        assert fast.value == 0
        assert fast.source == (
            "the journeys ran on the Python driver: journey crud, step rename: expect.text other than "
            "one `contains` run on the Python driver"
        )
    # every iteration passed every step, once each: the counts add up
    iterations = ctx.value("iterations")
    assert iterations > USERS, "each user ran several iterations"
    assert ctx.value("journey.crud.iterations") == iterations and ctx.value("success_rate") == 1
    assert ctx.value("errors") == 0 and ctx.value("requests") == 4 * iterations
    for step in STEPS:
        assert ctx.value(f"endpoint.crud.{step}.requests") == iterations, step
    assert ctx.value("journey.crud.duration.p50") > 0

    # the service saw the same: one sign-up, log-in and account closing per user, the rest per iteration
    stats = httpx.get(f"{service}/stats").json()
    assert stats["signup"] == stats["login"] == stats["close"] == USERS
    assert stats["create"] == stats["rename"] == stats["delete"] == iterations
    assert stats["read"] >= 2 * iterations  # the poll: ready on the second read
    assert stats["users"] == 0 and stats["items"] == 0
