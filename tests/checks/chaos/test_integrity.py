"""Integrity writes read back from a real JSON store (items_server.py): what was written is
what is compared, so a body read back in another shape counts as corrupted. (And a probe's
expected JSON, against the same store.)"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from gonogo.checks.chaos.settings import ChaosSettings
from gonogo.experiment.integrity import IntegrityReport, IntegrityWriter
from gonogo.experiment.probes import HypothesisChecker, ProbeResult
from gonogo.experiment.settings import Hypothesis
from service_process import free_port, serving

SERVER = Path(__file__).with_name("items_server.py")
WRITE: dict[str, Any] = {
    "name": "put",
    "request": {
        "method": "POST",
        "path": "/items",
        # a text, a number kept as a number (a lone placeholder), an array, a nested object
        "json": {"name": "i-{uuid}", "size": "{iteration}", "tags": ["a", "{journey}"], "meta": {"v": 1}},
    },
    "expect": {"status": 201},
    "extract": {"id": "json:$.id"},
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of the item store; its process group is killed however the tests end."""
    port, logs = free_port(), tmp_path_factory.mktemp("item-store")
    with serving([sys.executable, str(SERVER), str(port)], port, logs / "store.log", what="item store") as (
        base_url,
        _,
    ):
        yield base_url


def chaos(**integrity: Any) -> ChaosSettings:
    return ChaosSettings.model_validate(
        {
            "hypothesis": {"probes": [{"name": "health", "http": "/health"}]},
            "faults": [{"kill": "store"}],
            "integrity": {"rate": "50/s", "read_timeout": "2s", "write": WRITE, **integrity},
        }
    )


def write_and_read_back(store: str, settings: ChaosSettings, variables: dict[str, Any]) -> IntegrityReport:
    assert settings.integrity is not None and settings.integrity_journeys is not None
    writer = IntegrityWriter(
        settings.integrity,
        settings.integrity_journeys,
        store,
        files={},
        expand=lambda text: text,
        variables=variables,
    )
    writer.start()
    time.sleep(0.3)
    writer.stop()
    assert writer.error is None
    return writer.verify()


def read(path: str, **expect: Any) -> dict[str, Any]:
    return {"name": "get", "request": {"path": path + "/{id}"}, "expect": {"status": 200, **expect}}


def test_an_honest_store_keeps_every_write_intact(store: str) -> None:
    report = write_and_read_back(store, chaos(read=read("/items")), {})
    assert report.acknowledged >= 5, report.summary()
    assert report.intact == report.acknowledged and report.corrupted == 0, report.problems


@pytest.mark.parametrize("reshaped", ["wrapped", "renamed", "retyped", "nested", "dropped"])
def test_a_json_write_read_back_in_another_shape_is_corrupted(store: str, reshaped: str) -> None:
    report = write_and_read_back(store, chaos(read=read(f"/{reshaped}")), {})
    assert report.acknowledged >= 5, report.summary()
    assert report.corrupted == report.acknowledged and report.intact == 0, report.summary()
    why = report.problems[0]["why"]
    expected = {
        "wrapped": "$.name is missing",
        "renamed": "$.name is missing",
        "retyped": '$.size is "',
        "nested": "$.name is missing",
        "dropped": "$.tags is missing",
    }[reshaped]
    assert expected in why, why


def test_written_json_at_says_where_a_wrapping_service_keeps_the_write(store: str) -> None:
    report = write_and_read_back(store, chaos(read=read("/wrapped"), written_json_at="$.data"), {})
    assert report.acknowledged >= 5 and report.intact == report.acknowledged, report.problems


def test_the_reads_own_expectation_for_a_field_replaces_the_comparison(store: str) -> None:
    own = read("/dropped", json={"$.tags": {"exists": False}})
    report = write_and_read_back(store, chaos(read=own), {})
    assert report.acknowledged >= 5 and report.intact == report.acknowledged, report.problems


def test_every_write_has_its_own_builtins_even_with_setup_variables(store: str) -> None:
    # the setup journey's variables include its own {uuid} and {iteration}; they must not
    # replace the writes' (the store refuses a second item with the same name: 409)
    setup = {"uuid": "setup-uuid", "iteration": 1, "journey": "setup", "token": "t"}
    report = write_and_read_back(store, chaos(read=read("/items")), setup)
    assert report.attempted >= 5 and report.acknowledged == report.attempted, report.summary()
    assert report.intact == report.acknowledged


def test_written_json_at_needs_a_json_write() -> None:
    body_write = {**WRITE, "request": {"method": "POST", "path": "/items", "body": "x"}}
    with pytest.raises(ValidationError, match="written_json_at is for a write that sends json"):
        chaos(write=body_write, read=read("/items"), written_json_at="$.data")


def test_the_read_step_gets_one_expectation_per_written_field() -> None:
    written = {"a b": {"c": "{uuid}"}, "m": {"k-{iteration}": 1}}
    write = {**WRITE, "request": {**WRITE["request"], "json": written}}
    settings = chaos(write=write, read=read("/items"))
    assert settings.integrity_journeys is not None
    expect = settings.integrity_journeys.journeys["integrity"].steps[1].expect
    assert {str(path): matcher.to_plan() for path, matcher in expect.json_fields.items()} == {
        '$["a b"].c': "{uuid}",
        # a key known only once rendered: the object is compared whole
        "$.m": {"k-{iteration}": 1},
    }


def test_a_probe_fills_in_variables_in_its_expected_json_too(store: str, tmp_path: Path) -> None:
    item = httpx.post(f"{store}/items", json={"name": "probe-item", "size": 7}).json()["id"]
    hypothesis = Hypothesis.model_validate(
        {
            "probes": [
                {"name": "item", "http": "/items/{item}", "json": {"$.id": "{item}", "$.size": "{size}"}}
            ]
        }
    )

    def probe(size: int) -> ProbeResult:
        checker = HypothesisChecker(
            hypothesis,
            base_url=store,
            cwd=tmp_path,
            expand=lambda text: text,
            variables={"item": item, "size": size},  # as a setup journey leaves them
            load_window=lambda _: None,
        )
        try:
            (result,) = checker.check().results
        finally:
            checker.close()
        return result

    assert probe(7).ok, probe(7).detail
    assert probe(8).detail == "$.size is 7, expected 8"


def test_a_burst_goes_out_at_once_after_the_steady_writes_and_is_counted_on_its_own(store: str) -> None:
    # read back at an id that is not there: every write is lost, the burst's counted apart
    gone = {"name": "get", "request": {"path": "/items/{id}000"}, "expect": {"status": 200}}
    settings = chaos(read=gone)
    assert settings.integrity is not None and settings.integrity_journeys is not None
    writer = IntegrityWriter(
        settings.integrity, settings.integrity_journeys, store, files={}, expand=lambda t: t, variables={}
    )
    writer.start()
    with pytest.raises(RuntimeError, match="needs the steady writes stopped first"):
        writer.burst(3, "early")
    time.sleep(0.2)
    writer.stop()
    steady = writer.acknowledged
    burst = writer.burst(12, "0ms")
    assert (burst.group, burst.sent, burst.acknowledged) == ("0ms", 12, 12)
    assert burst.last_acknowledged_at is not None and burst.last_acknowledged_at <= time.monotonic()
    report = writer.verify()
    assert report.acknowledged == report.lost == steady + 12 and steady >= 5
    group = report.groups["0ms"]
    assert (group.attempted, group.acknowledged, group.lost, group.intact) == (12, 12, 12, 0)
    assert list(report.groups) == ["0ms"]
    assert sum(1 for p in report.problems if p.get("group") == "0ms") == len(group.problems) == 12
