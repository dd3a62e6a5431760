"""Journeys under load end to end: the example of docs/load.md (its service and its plan):
sign-up and log-in once per virtual user in `setup`, create, poll, rename (by session cookie)
and delete in the journey, close the account in `teardown`; on the C engine, and on the
Python driver when a step needs it. The service's own counts are the check of ours."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from recording_context import MakeContext

from gonogo.checks.load import LoadCheck, LoadSettings
from service_process import free_port, serving

EXAMPLE = Path(__file__).parents[3] / "docs" / "examples" / "journeys_load"
USERS = 20


def plan() -> dict[str, Any]:
    """The example's load check (docs/load.md), as its plan writes it."""
    check = yaml.safe_load((EXAMPLE / "gonogo.yaml").read_text())["checks"]["crud"]
    del check["kind"]
    assert check["users"] == USERS
    return dict(check)


STEPS = ("create", "wait", "rename", "delete")
JOURNEY = "item"


@pytest.fixture
def service(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    argv = [sys.executable, str(EXAMPLE / "app.py"), "--port", str(port)]
    with serving(argv, port, tmp_path / "service.log", what="service", ready_path="/stats") as (base_url, _):
        yield base_url


@pytest.mark.parametrize("driver", ["c", "python"])
def test_setup_crud_poll_and_teardown_under_load(
    recording_context: MakeContext, service: str, driver: str
) -> None:
    settings = plan()
    if driver == "python":  # a check the C engine cannot judge sends the plan to the Python driver
        settings["journeys"][JOURNEY]["steps"][2]["expect"]["text"] = {"not_contains": "error"}
        settings["duration"] = "2s"
    ctx = recording_context(check_name="load", base_url=service)
    outcome = LoadCheck().run(LoadSettings.model_validate(settings), ctx)
    assert outcome.status == "completed", outcome
    # once, as a milestone: a running count's throttle must not swallow it
    driver_lines = [line for line in ctx.milestones if line.startswith("journeys run on the")]
    assert len(driver_lines) == 1
    assert f"journeys run on the {'C engine' if driver == 'c' else 'Python driver'}" in driver_lines[0]

    fast = ctx.metric("generator.fast_path")
    if driver == "c":
        assert fast.value == 1 and fast.source == "the journeys ran on the C engine"
    else:
        assert fast.value == 0
        assert fast.source == (
            "the journeys ran on the Python driver: journey item, step rename: expect.text other than "
            "one `contains` run on the Python driver"
        )
    # every iteration passed every step, once each: the counts add up
    iterations = ctx.value("iterations")
    assert iterations > USERS, "each user ran several iterations"
    assert ctx.value(f"journey.{JOURNEY}.iterations") == iterations and ctx.value("success_rate") == 1
    assert ctx.value("errors") == 0 and ctx.value("requests") == 4 * iterations
    for step in STEPS:
        assert ctx.value(f"endpoint.{JOURNEY}.{step}.requests") == iterations, step
    assert ctx.value(f"journey.{JOURNEY}.duration.p50") > 0
    # the measured phase waited for every user's sign-up and log-in, and says how long
    assert ctx.value("setup.seconds") > 0 and ctx.value("setup.given_up") == 0
    assert "the users' setups took " in outcome.message, outcome.message

    # the service saw the same: one sign-up, log-in and account closing per user, the rest per iteration
    stats = httpx.get(f"{service}/stats").json()
    assert stats["signup"] == stats["login"] == stats["close"] == USERS
    # and the warm-up's (4 requests each): the users set up first iterate while others' setups run
    assert (
        stats["create"] == stats["rename"] == stats["delete"] == iterations + ctx.value("warmup.requests") / 4
    )
    assert stats["read"] >= 2 * iterations  # the poll: ready on the second read
    assert stats["users"] == 0 and stats["items"] == 0
