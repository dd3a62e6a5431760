"""An operation check's plan mistakes are refused when the plan loads; what it declares follows its
settings; the version and the downtime are read as documented."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from gonogo.checks.operation import OperationCheck
from gonogo.checks.operation.settings import OperationSettings, VersionEndpoint
from gonogo.checks.operation.version import extract_version
from gonogo.checks.operation.watch import Sample, longest_outage
from gonogo.errors import PlanError
from gonogo.plan import load_plan
from gonogo.plan.names import PlanNames

LOAD = {"rate": "10/s", "requests": [{"name": "list", "path": "/items"}]}
INTEGRITY = {
    "write": {
        "name": "put",
        "request": {"method": "POST", "path": "/items", "body": "x {uuid}"},
        "extract": {"id": "json:$.id"},
    },
    "read": {"name": "get", "request": {"path": "/items/{id}"}},
}
DRILL = {"backup": "cp a b", "destroy": ["rm", "-f", "a"], "restore": {"command": "cp b a", "restart": "api"}}


def settings(**values: object) -> OperationSettings:
    return OperationSettings.model_validate(values)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "give operations, a restore_check, or both"),
        (
            {"operations": [{"name": "deploy"}]},
            "give a command, a service to restart (restart: NAME), or both",
        ),
        (
            {"operations": [{"name": "deploy", "restart": "api", "timeout": "5s"}]},
            "shell and timeout are for a command",
        ),
        ({"operations": [{"name": "deploy", "command": "echo 'x"}]}, "cannot be split into words"),
        ({"operations": [{"name": "deploy", "command": ""}]}, "a command must not be empty"),
        ({"operations": [{"name": "a", "command": "x"}, {"name": "a", "command": "y"}]}, "repeated: a"),
        (
            {"operations": [{"name": "deploy", "command": "x", "pause": "100ms"}]},
            "greater than or equal to 1",
        ),
        ({"operations": [{"name": "de.ploy", "command": "x"}]}, "is not a valid name"),
        (
            {
                "operations": [{"name": "restore", "command": "x"}],
                "restore_check": {**DRILL, "integrity": INTEGRITY},
            },
            "an operation named restore",
        ),
        (
            {
                "operations": [{"name": "d", "command": "x"}],
                "version": {"url": "/v", "json": "$.v", "regex": "v"},
            },
            "give json or regex, not both",
        ),
        (
            {"operations": [{"name": "d", "command": "x"}], "version": {"url": "/v", "regex": "v("}},
            "is not a regular expression",
        ),
        (
            {
                "restore_check": {
                    **DRILL,
                    "integrity": {**INTEGRITY, "read": {"name": "get", "request": {"path": "/i/{nope}"}}},
                }
            },
            "nope",
        ),
        ({"restore_check": {**DRILL, "integrity": INTEGRITY, "writes": 0}}, "greater than 0"),
    ],
)
def test_a_wrong_operation_check_says_what_was_expected(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        settings(**values)
    assert message in str(caught.value)


def test_a_plan_stays_small_commands_and_versions_have_short_forms() -> None:
    parsed = settings(
        version="/version",
        operations=[
            {"name": "deploy", "command": "./deploy.sh v2", "restart": "api", "expect_version": "v2"}
        ],
        restore_check={**DRILL, "integrity": INTEGRITY},
    )
    assert parsed.version == VersionEndpoint(url="/version")
    (deploy,) = parsed.operations
    assert (deploy.command, deploy.restart, deploy.repeat, deploy.pause) == ("./deploy.sh v2", "api", 3, 2.0)
    drill = parsed.restore_check
    assert drill is not None
    assert drill.backup.command == "cp a b" and drill.destroy.command == ["rm", "-f", "a"]
    assert (drill.restore.command, drill.restore.restart) == ("cp b a", "api")
    journeys = parsed.integrity_journeys
    assert journeys is not None and [s.name for s in journeys.journeys["integrity"].steps] == ["put", "get"]


def test_what_the_check_declares_gates_and_references_follows_its_settings() -> None:
    bare = settings(operations=[{"name": "deploy", "command": "x"}])
    assert sorted(OperationCheck.metric_names(bare, PlanNames())) == [
        "deploy.duration.max",
        "deploy.runs",
        "deploy.success_rate",
    ]
    assert OperationCheck.default_gates(bare) == {"deploy.success_rate": "== 100%"}
    full = settings(
        load=LOAD,
        version={"url": "/version", "json": "$.version"},
        operations=[
            {"name": "deploy", "command": "x", "expect_version": "2"},
            {"name": "bounce", "restart": "api"},
        ],
        restore_check={**DRILL, "integrity": INTEGRITY},
    )
    names = set(OperationCheck.metric_names(full, PlanNames()))
    assert {"deploy.failed_requests", "deploy.downtime", "deploy.version_changed", "bounce.requests"} <= names
    assert {"restore.writes", "restore.lost_writes", "restore.verified", "restore.duration"} <= names
    gates = OperationCheck.default_gates(full)
    assert gates["deploy.failed_requests"] == "== 0" and gates["deploy.version_changed"] == "== 100%"
    assert "bounce.version_changed" not in gates  # it expects no version: changed or not is no failure
    assert gates["restore.lost_writes"] == "== 0" and gates["restore.verified"] == "== 1"
    references = [(r.name, r.location) for r in OperationCheck.references(full)]
    assert references == [
        ("api", ("operations", 1, "restart")),
        ("api", ("restore_check", "restore", "restart")),
    ]
    # without a version endpoint, the watcher asks for the load's first GET request; with no GET, nothing
    assert "deploy.downtime" in OperationCheck.metric_names(
        settings(load=LOAD, operations=[{"name": "deploy", "command": "x"}]), PlanNames()
    )
    posts = {"rate": "10/s", "requests": [{"name": "add", "method": "POST", "path": "/items", "body": "x"}]}
    assert "deploy.downtime" not in OperationCheck.metric_names(
        settings(load=posts, operations=[{"name": "deploy", "command": "x"}]), PlanNames()
    )


def test_gonogo_validate_refuses_an_unknown_service_and_a_gate_on_what_is_not_measured(
    tmp_path: Path,
) -> None:
    plan = tmp_path / "gonogo.yaml"
    text = """
        name: ops
        system:
          services:
            api: {{command: [python, -m, http.server, "{{port.api}}"]}}
          base_url: "http://127.0.0.1:{{port.api}}"
        checks:
          release:
            kind: operation
            operations:
              - {{name: bounce, restart: {service}}}
        gates:
          release.bounce.{metric}: "== 0"
        """
    plan.write_text(textwrap.dedent(text.format(service="apii", metric="runs")).lstrip())
    with pytest.raises(PlanError) as caught:
        load_plan(plan)
    assert "apii" in str(caught.value) and "api" in str(caught.value)
    # no load: failed requests cannot be measured, so a gate on them could only end "not measured"
    plan.write_text(textwrap.dedent(text.format(service="api", metric="failed_requests")).lstrip())
    with pytest.raises(PlanError, match="failed_requests"):
        load_plan(plan)


@pytest.mark.parametrize(
    ("endpoint", "body", "expected"),
    [
        ({"url": "/v"}, b" 1.4.2\n", ("1.4.2", "")),
        ({"url": "/v", "json": "$.build.version"}, b'{"build": {"version": "v7"}}', ("v7", "")),
        ({"url": "/v", "json": "$.build"}, b'{"build": 7}', ("7", "")),
        ({"url": "/v", "regex": r"release ([\w.-]+)"}, b"<p>release 2.0-rc1</p>", ("2.0-rc1", "")),
        ({"url": "/v", "regex": r"\d+\.\d+"}, b"v3.1", ("3.1", "")),
        ({"url": "/v", "json": "$.version"}, b"<html>", (None, "the answer is not JSON")),
        ({"url": "/v", "json": "$.version"}, b"{}", (None, "no $.version in the answer")),
        ({"url": "/v"}, b"  ", (None, "the answer is empty")),
    ],
)
def test_the_version_is_the_body_a_json_field_or_a_regex_match(
    endpoint: dict[str, str], body: bytes, expected: tuple[str | None, str]
) -> None:
    assert extract_version(VersionEndpoint.model_validate(endpoint), body) == expected


def test_downtime_is_the_longest_stretch_from_a_failed_request_to_the_next_success() -> None:
    def samples(pattern: str) -> list[Sample]:  # one request every 0.1 s from 0: '.' succeeded, 'x' failed
        return [Sample(i / 10, mark == ".", "") for i, mark in enumerate(pattern)]

    assert longest_outage(samples("...."), 0, 1) == 0
    assert longest_outage(samples("..xx...xxxx.."), 0, 2) == pytest.approx(0.4)  # from 0.7 to 1.1
    assert longest_outage(samples("..xx...xxxx.."), 0, 0.9) == pytest.approx(0.2)  # the window ends first
    assert longest_outage(samples("..xx...xxxx.."), 0.8, 2) == pytest.approx(0.3)  # starts inside a stretch
    assert longest_outage(samples("...xxx"), 0, 1) == pytest.approx(0.7)  # still down at the window's end
