"""A chaos experiment's mistakes are found when the plan loads, located and explained."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from gonogo.checks.chaos.settings import ChaosSettings
from gonogo.experiment.faults import describe_fault, expand_fault
from gonogo.experiment.settings import ClockFault, HttpFault, KillFault, ProxyFault

BASE = {"hypothesis": {"probes": [{"name": "health", "http": "/health"}]}}


def settings(**extra: object) -> ChaosSettings:
    return ChaosSettings.model_validate({**BASE, **extra})


def test_each_fault_is_read_by_its_own_key() -> None:
    parsed = settings(
        faults=[
            {"kill": "worker", "signal": "SIGTERM", "repeat": 3, "every": "2s"},
            {"proxy": "db", "toxic": "latency", "attributes": {"latency": 200}, "toxicity": "50%"},
            {"http": "payments", "status": 503, "rate": "30%", "path": "/charge"},
            {"clock": "api", "skew": "-90s"},
        ]
    )
    kill, proxy, http, clock = parsed.faults
    assert isinstance(kill, KillFault) and kill.signal == 15 and kill.every == 2.0
    assert isinstance(proxy, ProxyFault) and proxy.toxicity == 0.5
    assert isinstance(http, HttpFault) and http.rate == 0.3
    assert isinstance(clock, ClockFault) and clock.skew == -90.0


@pytest.mark.parametrize(
    ("faults", "message"),
    [
        ([{"kil": "worker"}], "a fault needs exactly one of kill, pause"),
        ([{"kill": "a", "pause": "b"}], "a fault needs exactly one of"),
        ([{"http": "p", "status": 503, "delay": "1s"}], "exactly one of status, delay, truncate"),
        ([{"network": "{port.db}"}], "exactly one of loss (e.g. 30%) or partition"),
        ([{"clock": "api", "skew": "1h"}], "expected e.g. +1h or -90s"),
        ([{"proxy": "db", "toxic": "latncy"}], "'latency'"),
        ([], "at least 1 item"),
        (
            [{"kill": "web", "process": {"matching": "worker", "pid_file": "w.pid"}}],
            "matching or pid_file, not both",
        ),
        ([{"kill": "web", "process": {"pid_file": "w.pid", "pick": "oldest"}}], "pick does not apply"),
        ([{"kill": "web", "process": {"matching": "worker("}}], "is not a regular expression"),
        ([{"kill": "web", "process": "youngest"}], "'newest', 'oldest' or 'random'"),
    ],
)
def test_a_wrong_fault_says_what_was_expected(faults: list[object], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        settings(faults=faults)
    assert message in str(caught.value)


def test_a_kill_can_target_one_process_inside_the_service() -> None:
    short, matching, pid_file = settings(
        faults=[
            {"kill": "web", "process": "random"},
            {"kill": "web", "process": {"matching": "gunicorn: worker", "pick": "oldest"}},
            {"kill": "jobs", "process": {"pid_file": "{run_dir}/runner.pid"}},
        ]
    ).faults
    assert isinstance(short, KillFault) and short.process is not None and short.process.pick == "random"
    assert isinstance(matching, KillFault) and matching.process is not None
    assert (matching.process.matching, matching.process.pick) == ("gunicorn: worker", "oldest")
    assert isinstance(pid_file, KillFault) and pid_file.process is not None
    assert pid_file.process.pid_file == "{run_dir}/runner.pid"


def test_integrity_must_extract_what_applied_count_names() -> None:
    write = {
        "name": "put",
        "request": {"method": "POST", "path": "/items", "body": "x"},
        "extract": {"id": "json:$.id"},
    }
    read = {"name": "get", "request": {"path": "/items/{id}"}}
    settled = {"name": "done", "request": {"path": "/items/{id}"}, "poll": {"until": {"$.done": True}}}
    with pytest.raises(ValidationError, match="applied_count names 'runs'"):
        settings(
            faults=[{"kill": "api"}],
            integrity={"write": write, "read": read, "settled": settled, "applied_count": "runs"},
        )
    with pytest.raises(ValidationError, match="nope"):
        settings(
            faults=[{"kill": "api"}],
            integrity={"write": write, "read": {**read, "request": {"path": "/items/{nope}"}}},
        )
    parsed = settings(faults=[{"kill": "api"}], integrity={"write": write, "read": read})
    journeys = parsed.integrity_journeys
    assert journeys is not None
    # what was written is compared with what is read back
    assert journeys.journeys["integrity"].steps[1].expect.body_sha256_of == "put"


def test_gonogo_validate_locates_a_chaos_mistake(tmp_path: Path) -> None:
    plan = tmp_path / "gonogo.yaml"
    plan.write_text(
        textwrap.dedent(
            """
            name: bad
            system: {base_url: "http://127.0.0.1:9"}
            checks:
              c:
                kind: chaos
                hypothesis: {probes: [{name: h, http: /health}]}
                faults:
                  - {kil: worker}
            gates: {}
            """
        ).lstrip()
    )
    done = subprocess.run(
        [sys.executable, "-m", "gonogo", "validate", str(plan)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert (
        f"{plan}:8:" in done.stderr and "checks.c.faults[0]: a fault needs exactly one of kill" in done.stderr
    )
    assert "Traceback" not in done.stderr


def test_a_fault_is_described_with_the_runs_values_not_its_placeholders() -> None:
    values = {"{run_dir}": "/runs/7", "{port.api}": "40123"}

    def expand(text: str) -> str:
        for placeholder, value in values.items():
            text = text.replace(placeholder, value)
        return text

    parsed = settings(
        faults=[
            {"disk_fill": "{run_dir}/data"},
            {"network": "{port.api}", "loss": "30%"},
            {"kill": "api", "process": {"pid_file": "{run_dir}/worker.pid"}},
        ]
    )
    described = [describe_fault(expand_fault(fault, expand)) for fault in parsed.faults]
    assert described[0].startswith("disk filled at /runs/7/data ")
    assert described[1] == "30% packet loss on port 40123"
    assert "/runs/7/worker.pid" in described[2]
    assert not any("{" in text for text in described)
