"""A slow setup shows in the progress line, in the same words on both drivers: users set up,
setting up and setup failures so far (the C engine's progress dict carries them, summed over
its workers), against a service whose log-in takes 1.4 s and refuses the first attempt."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

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


@pytest.mark.parametrize(("driver", "workers"), [("c", 2), ("python", 1)])
def test_a_slow_setup_shows_in_the_progress_line(service: str, driver: str, workers: int) -> None:
    item: dict[str, Any] = {"name": "item", "request": {"path": "/item"}, "expect": {"status": 200}}
    if driver == "python":  # a check the C engine cannot judge: the Python driver runs the plan
        item["expect"]["text"] = {"not_contains": "error"}
    settings = LoadSettings.model_validate(
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
                        "request": {"method": "POST", "path": "/login", "json": {"a": 1}},
                        "expect": {"status": 200},
                    }
                ]
            },
            "journeys": {"browse": {"steps": [item]}},
        }
    )
    lines: list[str] = []

    def collect(snapshot: ProgressSnapshot, text: str) -> None:
        lines.append(text)

    result = run_journey_load(settings, service, files={}, expand=str, on_progress=collect)
    assert result.driver == driver
    # at 1 s every user is still logging in (closed model: a setup is no iteration in flight);
    # one attempt was refused, and is being tried again
    assert lines[0] == "0 iterations done, 0 in flight, 0 users set up, 4 setting up, 1 setup failures"
    done = [
        re.fullmatch(
            r"(\d+) iterations done, \d+ in flight, 4 users set up, 0 setting up, 1 setup failures", t
        )
        for t in lines
    ]
    assert any(m and int(m[1]) > 0 for m in done), lines
    assert result.iterations.setup_failures == 1


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
