"""Closed-model setups on both drivers, against a service whose log-in takes 1.4 s and
refuses the first attempt (or every attempt): the measured phase waits for every user's
setup; a failed setup is retried after a growing backoff, `setup_attempts` times at most; the
progress line says how far the setups are, in the same words on both drivers (the C engine's
progress dict carries them, summed over its workers)."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from recording_context import MakeContext

from gonogo.checks.load import LoadCheck
from gonogo.loadgen.journey_driver import setup_backoff
from gonogo.loadgen.journey_load import run_journey_load
from gonogo.loadgen.results import ProgressSnapshot
from gonogo.loadgen.settings import LoadSettings
from service_process import free_port, serving

SERVER = Path(__file__).parent / "slow_login_server.py"


@pytest.fixture
def service(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    with serving(
        [sys.executable, str(SERVER), str(port)], port, tmp_path / "service.log", what="service"
    ) as (
        base_url,
        _,
    ):
        yield base_url


def _settings(driver: str, workers: int, login: str, **more: Any) -> LoadSettings:
    item: dict[str, Any] = {"name": "item", "request": {"path": "/item"}, "expect": {"status": 200}}
    if driver == "python":  # a check the C engine cannot judge: the Python driver runs the plan
        item["expect"]["text"] = {"not_contains": "error"}
    return LoadSettings.model_validate(
        {
            "model": "closed",
            "users": 4,
            "workers": workers,
            "think_time": "20ms",
            "duration": "2s",
            "request_timeout": "3s",
            "setup": {
                "steps": [
                    {
                        "name": "login",
                        "request": {"method": "POST", "path": login, "json": {"a": 1}},
                        "expect": {"status": 200},
                    }
                ]
            },
            "journeys": {"browse": {"steps": [item]}},
            **more,
        }
    )


@pytest.mark.parametrize(("driver", "workers"), [("c", 2), ("python", 1)])
def test_the_measured_phase_waits_for_every_setup(service: str, driver: str, workers: int) -> None:
    lines: list[str] = []

    def collect(snapshot: ProgressSnapshot, text: str) -> None:
        lines.append(text)

    settings = _settings(driver, workers, "/login", duration="1s", warmup="0.3s")
    result = run_journey_load(settings, service, files={}, expand=str, on_progress=collect)
    assert result.driver == driver
    # at 1 s every user is still logging in (closed model: a setup is no iteration in flight);
    # one attempt was refused, and is being tried again after its backoff
    assert lines[0] == "0 iterations done, 0 in flight, 0/4 users set up, 4 setting up, 1 setup failures"
    # once all are set up, the measured phase's own iterations: the setup part is gone
    done = [re.fullmatch(r"(\d+) iterations done, \d+ in flight", t) for t in lines]
    assert any(m and int(m[1]) > 0 for m in done), lines
    assert result.iterations.setup_failures == 1
    # the users set up first iterated while the refused one was still logging in: warm-up
    # iterations, not measured ones. The last setup ended past 1.4 s (a log-in) + 0.25 s (the
    # least backoff); the 0.3 s warm-up followed it, then the measured phase
    assert result.iterations.warmup > 0
    assert result.setup_seconds is not None and result.setup_seconds >= 1.65
    assert result.wall_seconds >= result.setup_seconds + 0.3 + result.measured_seconds
    assert 0.5 < result.measured_seconds <= 1.0
    assert result.setups_given_up == 0


@pytest.mark.parametrize("driver", ["c", "python"])
def test_a_user_gives_its_setup_up_after_its_attempts_backing_off(service: str, driver: str) -> None:
    """Every log-in is refused: each user tries `setup_attempts` times, backing off (0.25 s to
    0.5 s, then 0.5 s to 1 s) rather than hammering the server, then gives up; the run then
    ends, with nothing measured, instead of retrying until the end of the run."""
    lines: list[str] = []

    def collect(snapshot: ProgressSnapshot, text: str) -> None:
        lines.append(text)

    settings = _settings(driver, 1, "/refuse", setup_attempts=3, users=2, duration="10s")
    result = run_journey_load(settings, service, files={}, expand=str, on_progress=collect)
    assert result.driver == driver
    assert result.setups_given_up == 2
    assert result.iterations.setup_failures == 6  # 2 users, 3 attempts each
    assert result.iterations.completed == result.iterations.warmup == 0
    assert result.setup_seconds is not None and result.setup_seconds >= 0.75  # the least backoff
    assert result.measured_seconds < 0.1  # the phase began as the last user gave up, and ended
    assert result.wall_seconds < 5.0  # not the 10 s duration: nobody is left to run it
    assert lines and all("0/2 users set up" in line for line in lines), lines


def test_the_setup_backoff_doubles_with_jitter_and_waits_out_a_slow_failure() -> None:
    """The Python driver's rule (the C engine's is the same): 0.5 s doubling per failed
    attempt, at most 8 s, or the failed attempt's duration if longer, times 0.5 to 1."""
    assert [setup_backoff(k, 0.0, 0.0, 0.0) for k in (1, 2, 3, 4, 5, 6)] == [0.25, 0.5, 1, 2, 4, 4]
    assert setup_backoff(1, 0.0, 0.0, 0.999) < 0.5 and setup_backoff(6, 0.0, 0.0, 0.999) < 8
    assert setup_backoff(1, 10.0, 0.0, 0.0) == 5.0  # a 10 s timeout: the server was busy that long
    assert setup_backoff(1, 0.0, 2.0, 0.0) == 2.0  # never below the think time


def test_the_workers_refusal_says_that_step_or_those_steps() -> None:
    """`workers` > 1 on journeys the C engine cannot run: the advice fits one reason or many."""
    raw: dict[str, Any] = {"name": "s", "request": {"path": "/", "raw": True}}

    def refusal(steps: list[dict[str, Any]]) -> str:
        with pytest.raises(ValueError) as refused:
            LoadSettings.model_validate(
                {
                    "model": "closed",
                    "users": 1,
                    "duration": "1s",
                    "workers": 2,
                    "journeys": {"j": {"steps": steps}},
                }
            )
        return str(refused.value)

    assert "set workers: 1, or change that step" in refusal([raw])
    many = refusal([raw, {**raw, "name": "again"}])
    assert "2 features keep these journeys on the Python driver" in many
    assert "set workers: 1, or change those steps" in many


def test_a_run_cut_while_the_setups_ran_measured_nothing_and_says_so(
    service: str, recording_context: MakeContext
) -> None:
    """`max_duration` ends the run while every user is still logging in (1.4 s each): the
    measured phase never began, so the check is in error and records no count of it (a
    `requests == 0` or `unfinished == 0` of a phase that did not happen would pass its gate),
    only what did run: the setups' requests, most in flight when the run was cut."""
    settings = _settings("c", 1, "/login", max_duration="1s")
    settings = settings.model_copy(update={"teardown": settings.setup})
    ctx = recording_context(check_name="load", base_url=service)
    outcome = LoadCheck().run(settings, ctx)
    assert outcome.status == "error", outcome
    assert outcome.message.startswith("nothing measured: cut by max_duration (1s) while the users'"), outcome
    # the server refuses the first log-in: 4 users' attempts in flight, and the refused one
    assert "setup: 5 requests, 1 failed, 4 in flight when the run was cut" in outcome.message, outcome
    assert "teardown: 0 requests" in outcome.message and "created remains" not in outcome.message
    assert ctx.value("setup.requests") == 5
    assert not {"requests", "unfinished", "error_rate", "iterations"} & set(ctx.metrics), sorted(ctx.metrics)
