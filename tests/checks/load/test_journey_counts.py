"""Every iteration of a journey load counted somewhere, on both drivers, against a service
that counts too (counts_server.py): setups that fail and are tried again, warm-up iterations
that time out, the drain after the measured phase, and failures_total adding up."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from recording_context import MakeContext

from gonogo.checks.load import LoadCheck, LoadSettings
from service_process import free_port, serving

SERVER = Path(__file__).parent / "counts_server.py"
CLOSE_SECONDS = 0.1  # counts_server.py's: a teardown lasts at least that
USERS = 4
SLOW_CREATES = 2  # the first creates outlast request_timeout: warm-up iterations failed at `create`


@pytest.fixture
def service(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    argv = [sys.executable, str(SERVER), str(port), str(SLOW_CREATES)]
    with serving(argv, port, tmp_path / "service.log", what="service", ready_path="/stats") as (base_url, _):
        yield base_url


def plan(driver: str) -> dict[str, Any]:
    read: dict[str, Any] = {"name": "read", "request": {"path": "/items/{id}"}, "expect": {"status": 200}}
    if driver == "python":  # a check the C engine cannot judge: the Python driver runs the plan
        read["expect"]["text"] = {"not_contains": "error"}
    return {
        "model": "closed",
        "users": USERS,
        "think_time": "20ms",
        "warmup": "2s",  # a progress line inside it
        "duration": "1s",
        "request_timeout": "300ms",
        "late_threshold": "200ms",
        "setup": {
            "steps": [
                {"name": "signup", "request": {"method": "POST", "path": "/signup", "json": {"a": 1}}},
                {
                    "name": "login",
                    "request": {"method": "POST", "path": "/login", "json": {"a": 1}},
                    "expect": {"status": 200},
                    "extract": {"token": "json:$.token"},
                },
            ]
        },
        "journeys": {
            "item": {
                "steps": [
                    {
                        "name": "create",
                        "request": {"method": "POST", "path": "/items", "json": {"t": "{token}"}},
                        "expect": {"status": 201},
                        "extract": {"id": "json:$.id"},
                    },
                    read,
                    {"name": "delete", "request": {"method": "DELETE", "path": "/items/{id}"}},
                ]
            }
        },
        "teardown": {"steps": [{"name": "close", "request": {"method": "DELETE", "path": "/account"}}]},
    }


@pytest.mark.parametrize("driver", ["c", "python"])
def test_every_iteration_and_failure_adds_up_on_both_drivers(
    recording_context: MakeContext, service: str, driver: str
) -> None:
    ctx = recording_context(check_name="load", base_url=service)
    outcome = LoadCheck().run(LoadSettings.model_validate(plan(driver)), ctx)
    assert outcome.status == "completed", outcome
    assert ctx.value("generator.fast_path") == (1 if driver == "c" else 0)
    stats = httpx.get(f"{service}/stats").json()
    artifact = ctx.metric("iterations").artifact
    assert artifact is not None and artifact.name == "load-journey-failures.json"
    document = json.loads(ctx.artifacts[artifact.sha256])
    iterations = document["iterations"]
    # the records say what they are: examples, or the C engine's per-step summaries
    assert document["kept_are"].startswith("examples" if driver == "python" else "per step:")

    # setup: every second log-in refused; each user tried again until set up (after its
    # think time), so the service saw as many sign-ups as log-ins, twice the users
    assert stats["login"] == stats["signup"] == 2 * USERS, stats
    assert iterations["setup_failures"] == stats["login_refused"] == USERS
    assert stats["close"] == USERS and iterations["teardown_failures"] == 0
    # their requests have figures of their own, as the service counted them
    assert ctx.value("setup.requests") == stats["signup"] + stats["login"]
    assert ctx.value("setup.errors") == stats["login_refused"]
    assert ctx.value("teardown.requests") == stats["close"] and ctx.value("teardown.errors") == 0
    assert f"setup: {stats['signup'] + stats['login']} requests, {USERS} failed" in outcome.message
    assert f"teardown: {USERS} requests, 0 failed" in outcome.message

    # every iteration started, warm-up or measured, did create; each ended passed or failed,
    # the slow creates as warm-up iterations failed at `create` (nothing lost in the warm-up)
    started = iterations["warmup"] + iterations["started"]
    assert stats["create"] == started, (stats, iterations)
    assert iterations["unfinished"] == iterations["warmup_unfinished"] == 0
    warm_failed = iterations["warmup_completed"] - iterations["warmup_passed"]
    assert warm_failed == SLOW_CREATES
    assert document["warmup_failures_by_step"]["item.create"] == SLOW_CREATES
    # … by kind, with an example kept, and said in the outcome
    assert ctx.value("warmup.errors") == ctx.value("warmup.errors.timeout") == SLOW_CREATES
    assert ctx.value("warmup.errors.4xx") == ctx.value("warmup.errors.assertion") == 0
    kept = document["warmup_failures"]
    assert kept and all(f["step"] == "create" and f["kind"] == "timeout" for f in kept), kept
    assert f"failed ({SLOW_CREATES} timeout)" in outcome.message, outcome.message
    assert stats["read"] == stats["delete"] == started - SLOW_CREATES
    assert ctx.value("success_rate") == 1 and ctx.value("iterations") == iterations["completed"]

    # failures_total: the failed requests of the measured steps, the setups and teardowns
    assert document["failures_by_part"] == {"measured_steps": 0, "setup": USERS, "teardown": 0}
    assert document["failures_total"] == USERS
    assert sum(f["step"] == "login" for f in document["failures"]) == USERS

    # rates over the measured phase, not the drain after it
    assert ctx.value("requests") == 3 * iterations["completed"]
    window = ctx.metric("iterations").window
    assert window is not None and 0.5 < (window[1] - window[0]).total_seconds() <= 1.0, window
    assert document["drain_seconds"] >= 0
    # the teardowns wait for the drain: none while an iteration ran, their time counted apart
    assert stats.get("close_during_iterations", 0) == 0, stats
    assert document["teardown_seconds"] >= CLOSE_SECONDS
    # progress on each phase's own clock, the warm-up's with its own errors (4 refused
    # log-ins and the slow creates' timeouts, all within its first second)
    warm = [line for line in ctx.progress_messages if line.startswith("warm-up 1/2s: ")]
    assert warm and int(warm[0].split(" responses/s, ")[1].split(" errors")[0]) > 0, ctx.progress_messages
    assert any(line.startswith("load 0/1s: ") for line in ctx.progress_messages), ctx.progress_messages
    if driver == "python":  # the setup shows in the progress line while it runs
        assert any("users set up" in line and "setup failures" in line for line in ctx.progress_messages)
