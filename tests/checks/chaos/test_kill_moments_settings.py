"""Kill moments as a plan writes them: on by default where they can run, the shorthands, the
offsets and the metric names they declare, and the mistakes refused when the plan loads."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from gonogo.checks.chaos.check import ChaosCheck
from gonogo.checks.chaos.settings import ChaosSettings
from gonogo.errors import PlanError
from gonogo.plan import load_plan
from gonogo.plan.names import PlanNames

INTEGRITY = {
    "write": {
        "name": "put",
        "request": {"method": "POST", "path": "/items", "body": "x"},
        "extract": {"id": "json:$.id"},
    },
    "read": {"name": "get", "request": {"path": "/items/{id}"}},
}


def settings(faults: list[dict[str, Any]] | None = None, **extra: Any) -> ChaosSettings:
    return ChaosSettings.model_validate(
        {
            "hypothesis": {"probes": [{"name": "health", "http": "/health"}]},
            "faults": faults or [{"kill": "api"}],
            **extra,
        }
    )


def test_moments_are_on_by_default_with_integrity_and_a_kill_of_a_whole_service() -> None:
    moments = settings(integrity=INTEGRITY).moments
    assert moments is not None and moments.offsets == [0.0, 0.1, 0.5, 1.5]
    assert moments.labels == ["0ms", "100ms", "500ms", "1500ms"] and moments.burst == 20
    # nothing to lose, or nothing killed whole: the default asks for nothing
    assert settings().moments is None
    assert settings([{"kill": "api", "process": "newest"}], integrity=INTEGRITY).moments is None
    assert settings([{"pause": "api"}], integrity=INTEGRITY).moments is None


def test_each_whole_kill_is_a_target_once_with_its_signal() -> None:
    parsed = settings(
        [
            {"kill": "api", "signal": "SIGTERM"},
            {"kill": "worker"},
            {"kill": "api"},
            {"kill": "w", "process": "newest"},
        ]
    )
    assert parsed.kill_targets == [("api", 15), ("worker", 9)]


@pytest.mark.parametrize(
    ("written", "offsets"),
    [
        ("auto", [0.0, 0.1, 0.5, 1.5]),
        (["0s", "250ms", "2s"], [0.0, 0.25, 2.0]),
        ({"flush_period": "2s"}, [0.0, 0.5, 1.0, 1.5]),
        ({"after": [0, "1s"], "burst": 50, "quiet": "1s"}, [0.0, 1.0]),
    ],
)
def test_the_ways_to_write_them(written: object, offsets: list[float]) -> None:
    moments = settings(integrity=INTEGRITY, kill_moments=written).moments
    assert moments is not None and moments.offsets == offsets


@pytest.mark.parametrize("off", [False, "off", "none", None])
def test_off_turns_them_off(off: object) -> None:
    assert settings(integrity=INTEGRITY, kill_moments=off).moments is None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"integrity": INTEGRITY, "kill_moments": "always"}, "expected auto, off, a list of offsets"),
        ({"integrity": INTEGRITY, "kill_moments": {"after": ["1s"], "flush_period": "2s"}}, "not both"),
        ({"integrity": INTEGRITY, "kill_moments": ["0s", "0.0001s"]}, "repeated: 0ms"),
        ({"integrity": INTEGRITY, "kill_moments": ["45s"]}, "from 0s to 30s"),
        ({"integrity": INTEGRITY, "kill_moments": []}, "give 1 to 10 offsets"),
        ({"integrity": INTEGRITY, "kill_moments": {"burst": 0}}, "greater than or equal to 1"),
        ({"kill_moments": "auto"}, "kill_moments needs integrity"),
    ],
)
def test_a_wrong_setting_says_what_was_expected(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        settings(**extra)


def test_asking_for_them_without_a_whole_kill_is_refused() -> None:
    with pytest.raises(ValidationError, match="has none that kills a whole service"):
        settings([{"kill": "api", "process": "newest"}], integrity=INTEGRITY, kill_moments=["0s"])


def test_each_moment_declares_its_metrics_for_validate() -> None:
    names = set(
        ChaosCheck.metric_names(settings(integrity=INTEGRITY, kill_moments=["0s", "1s"]), PlanNames())
    )
    assert {"integrity.moments", "integrity.moment.0ms.lost", "integrity.moment.1000ms.acknowledged"} <= names
    assert not any(
        name.startswith("integrity.moment")
        for name in ChaosCheck.metric_names(settings(integrity=INTEGRITY, kill_moments="off"), PlanNames())
    )


def plan_text(moments: str, gate: str) -> str:
    return textwrap.dedent(
        f"""
        name: moments
        system:
          services:
            api: {{command: [python, -m, http.server, "{{port.api}}"], restart: on-failure}}
          base_url: "http://127.0.0.1:{{port.api}}"
        checks:
          crash:
            kind: chaos
            hypothesis: {{probes: [{{name: up, http: /}}]}}
            faults: [{{kill: api}}]
            integrity:
              write: {{name: put, request: {{method: POST, path: /, body: x}}, extract: {{id: "json:$.id"}}}}
              read: {{name: get, request: {{path: "/{{id}}"}}}}
            {moments}
        gates:
          {gate}: "== 0"
        """
    )


def test_the_plan_reads_off_as_off_and_refuses_a_gate_on_an_untried_moment(tmp_path: Path) -> None:
    path = tmp_path / "gonogo.yaml"
    path.write_text(plan_text("kill_moments: off", "crash.integrity.lost"))
    assert load_plan(path).checks["crash"].settings.moments is None  # YAML reads `off` as false
    path.write_text(plan_text("kill_moments: [0s, 1s]", "crash.integrity.moment.500ms.lost"))
    with pytest.raises(PlanError, match=re.escape("crash.integrity.moment.500ms.lost")):
        load_plan(path)
    path.write_text(plan_text("", "crash.integrity.moment.500ms.lost"))  # the default's offsets
    assert load_plan(path).checks["crash"].settings.moments is not None
