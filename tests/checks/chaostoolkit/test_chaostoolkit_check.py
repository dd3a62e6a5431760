"""The `chaostoolkit` check end to end: the real `chaos run` against a real local HTTP service and
gonogo's own fault proxy, driven by chaostoolkit-toxiproxy; journals ingested on their own."""

from __future__ import annotations

import json
import shutil
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from chaostoolkit_helpers import FIXTURES
from pydantic import ValidationError

from gonogo.checks.base import CheckOutcome
from gonogo.checks.chaostoolkit import ChaosToolkitCheck, ChaosToolkitSettings
from gonogo.errors import PlanError
from gonogo.faults import FaultProxy
from gonogo.plan import parse_plan
from gonogo.plugins import load_kind

if TYPE_CHECKING:
    from chaostoolkit_helpers import PortsContext

SERVICE_EXPERIMENT = FIXTURES / "service-experiment.json"
LOCAL_EXPERIMENT = FIXTURES / "local-experiment.yaml"
TOXIPROXY_EXPERIMENT = FIXTURES / "toxiproxy-experiment.json"
LATENCY = 0.4  # seconds, the latency toxic of the toxiproxy experiment


def run(ctx: PortsContext, **settings: Any) -> CheckOutcome:
    return ChaosToolkitCheck().run(ChaosToolkitSettings(**settings), ctx)


def in_plan_dir(ctx: PortsContext, source: Path, name: str | None = None) -> str:
    """Copy a fixture into the plan's directory, as a project keeps its experiments; its name there."""
    target = ctx.plan_dir / "chaos" / (name or source.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return f"chaos/{target.name}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# -- running experiments ----------------------------------------------------------------------


def test_http_process_and_python_probes_and_a_rollback(
    ctx: PortsContext, health_server: str, tmp_path: Path
) -> None:
    marker, doomed = tmp_path / "marker", tmp_path / "doomed"
    marker.touch()
    doomed.touch()
    ctx.base_url = health_server
    outcome = run(
        ctx,
        experiment=in_plan_dir(ctx, SERVICE_EXPERIMENT),
        configuration={"base_url": "{base_url}", "marker": str(marker), "doomed": str(doomed)},
    )
    assert outcome.status == "completed", outcome
    title = "the service keeps answering while a file it does not need disappears"
    assert outcome.message.startswith(
        f"experiment '{title}' completed, steady state met before and after, 2 activities, 0 failed, "
        "1 rollback, 0 failed, in "
    ), outcome.message
    assert outcome.details == []
    values = ctx.values()
    assert values["completed"] == 1 and values["deviated"] == 0
    assert values["steady_state.before.met"] == 1 and values["steady_state.after.met"] == 1
    assert (values["activities"], values["activities.failed"]) == (2, 0)
    assert (values["probes.failed"], values["actions.failed"]) == (0, 0)
    assert (values["rollbacks"], values["rollbacks.failed"]) == (1, 0)
    assert 0 < values["duration"] < 60
    assert values["activity.service-still-answers.duration"] > 0
    assert values["activity.remove-doomed-file.duration"] > 0
    assert values["rollback.restore-doomed-file.duration"] > 0
    assert doomed.exists()  # removed by the method, put back by the rollback

    # the command: chaos from gonogo's own environment, --var from the configuration, filled in
    (command,) = ctx.commands
    assert command.argv[:3] == [sys.executable, "-m", "chaostoolkit"]
    assert f"base_url={health_server}" in command.argv
    assert command.argv[-1] == str(ctx.plan_dir / "chaos" / SERVICE_EXPERIMENT.name)
    assert command.returncode == 0

    # every metric points at the stored journal and says where it comes from
    journal = json.loads(ctx.artifact("journal.json"))
    assert journal["status"] == "completed"
    completed = ctx.metric("completed")
    assert (completed.unit, completed.dimension) == ("number", "reliability")
    assert completed.artifact is not None and completed.artifact.name == "journal.json"
    assert completed.source.startswith(f"journal.json (Chaos Toolkit journal of experiment '{title}')")
    assert "written by `chaos" in completed.source
    assert completed.window is not None and completed.window[0] < completed.window[1]
    assert ctx.metric("activities").unit == "count" and ctx.metric("duration").unit == "seconds"
    assert ctx.metric("activity.service-still-answers.duration").labels == {
        "activity": "service-still-answers",
        "type": "probe",
        "status": "succeeded",
    }
    assert {"service-experiment.json", "chaostoolkit.log", "chaos-run.log"} <= set(ctx.artifact_names)
    assert not (ctx.plan_dir / "chaos" / "chaostoolkit.log").exists()  # chaos's log goes to work_dir


def test_a_deviating_hypothesis(ctx: PortsContext, health_server: str, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    marker.touch()
    ctx.base_url = health_server
    # The method removes the file the hypothesis needs; only a deviation plays the rollback here.
    outcome = run(
        ctx,
        experiment=in_plan_dir(ctx, SERVICE_EXPERIMENT),
        configuration={"base_url": "{base_url}", "marker": str(marker), "doomed": str(marker)},
        rollback_strategy="deviated",
    )
    assert outcome.status == "completed", outcome  # it measured; gates on `deviated` decide
    assert "deviated, steady state met before, not after" in outcome.message
    values = ctx.values()
    assert values["deviated"] == 1 and values["completed"] == 1  # chaos's status is still "completed"
    assert (values["steady_state.before.met"], values["steady_state.after.met"]) == (1, 0)
    assert values["rollbacks"] == 1
    assert "--rollback-strategy" in ctx.commands[0].argv
    assert ctx.commands[0].returncode == 1  # chaos exits 1 on a deviation
    # chaos stops the hypothesis at its first probe out of tolerance
    assert outcome.details == ["steady-state probe 'marker-is-a-file' after the method: not within tolerance"]
    assert marker.exists()  # put back by the rollback


def test_a_yaml_experiment(ctx: PortsContext) -> None:
    outcome = run(ctx, experiment=in_plan_dir(ctx, LOCAL_EXPERIMENT), configuration={"greeting": "hello"})
    assert outcome.status == "completed", outcome
    values = ctx.values()
    assert (values["completed"], values["deviated"], values["steady_state.after.met"]) == (1, 0, 1)
    assert (values["activities"], values["activities.failed"], values["rollbacks"]) == (2, 0, 0)
    assert values["activity.echo-greets.duration"] > 0  # the activity run by reference
    assert ctx.stored[0].media_type == "application/yaml"


def test_a_hypothesis_that_is_not_met_before_the_method(ctx: PortsContext) -> None:
    outcome = run(ctx, experiment=in_plan_dir(ctx, LOCAL_EXPERIMENT), configuration={"greeting": "goodbye"})
    assert outcome.status == "completed", outcome
    assert "steady state not met before the method, so the method was not run" in outcome.message
    values = ctx.values()
    assert (values["completed"], values["steady_state.before.met"], values["activities"]) == (1, 0, 0)
    assert "steady_state.after.met" not in values  # not measured: never checked
    assert any("'echo-greets' before the method: not within tolerance" in d for d in outcome.details)


def test_chaostoolkit_toxiproxy_drives_the_fault_proxy(ctx: PortsContext, health_server: str) -> None:
    upstream_port = int(health_server.rsplit(":", 1)[1])
    with FaultProxy.start() as faults:
        ctx.ports["faults"] = faults.api_port
        outcome = run(
            ctx,
            experiment=in_plan_dir(ctx, TOXIPROXY_EXPERIMENT),
            configuration={
                "toxiproxy_port": "{port.faults}",
                "upstream_port": str(upstream_port),
                "proxy_port": str(free_port()),
            },
        )
        assert outcome.status == "completed", outcome
        stats = faults.stats("api")
        proxy = httpx.get(f"{faults.api_url}/proxies/api", timeout=10).json()
    values = ctx.values()
    assert (values["completed"], values["deviated"], values["activities.failed"]) == (1, 0, 0)
    # the toxic was added, and acted on the probe's connection ...
    assert stats["toxics"]["latency"]["type"] == "latency"
    assert stats["toxics"]["latency"]["applied"] >= 1
    assert stats["connections_total"] >= 1
    # ... which saw the latency, as the journal tells
    assert values["activity.api-through-proxy.duration"] >= LATENCY * 0.9
    assert values["activity.add-latency.duration"] < 10
    # ... and the rollback removed it
    assert (values["rollbacks"], values["rollbacks.failed"]) == (1, 0)
    assert proxy["toxics"] == []
    assert f"toxiproxy_port={faults.api_port}" in ctx.commands[0].argv


# -- what goes wrong ---------------------------------------------------------------------------


def test_a_mistake_in_the_experiment_is_located_before_chaos_runs(ctx: PortsContext) -> None:
    experiment = json.loads(SERVICE_EXPERIMENT.read_text())
    probes = experiment["steady-state-hypothesis"]["probes"]
    probes[0]["tolerence"] = probes[0].pop("tolerance")
    probes[2]["tolerance"] = 0.5
    text = json.dumps(experiment, indent=2)
    (ctx.plan_dir / "broken.json").write_text(text)
    line = next(number for number, content in enumerate(text.splitlines(), 1) if '"tolerence"' in content)
    outcome = run(ctx, experiment="broken.json")
    assert outcome.status == "error"
    path = ctx.plan_dir / "broken.json"
    assert outcome.message == f"{path}: not a valid Chaos Toolkit experiment (2 problem(s)):"
    assert (
        f"{path}:{line}:22: $[\"steady-state-hypothesis\"].probes[0].tolerence: unknown key 'tolerence'; "
        in (outcome.details[0])
    )
    assert "did you mean 'tolerance'?" in outcome.details[0]
    assert any(
        '$["steady-state-hypothesis"].probes[2].tolerance: a tolerance is a boolean, an integer' in d
        and d.endswith("got a number 0.5")
        for d in outcome.details
    ), outcome.details
    assert ctx.commands == [] and ctx.metrics == {}  # chaos never ran, nothing measured
    assert ctx.artifact_names == ["broken.json"]


def test_a_mistake_in_a_yaml_experiment_has_its_line(ctx: PortsContext) -> None:
    text = LOCAL_EXPERIMENT.read_text().replace("type: regex", "type: regexp")
    (ctx.plan_dir / "broken.yaml").write_text(text.replace("  - ref: echo-greets", "  - ref: echo-greet"))
    outcome = run(ctx, experiment="broken.yaml")
    assert outcome.status == "error"
    assert outcome.details == [
        f'{ctx.plan_dir / "broken.yaml"}:12:15: $["steady-state-hypothesis"].probes[0].tolerance.type: '
        "unknown tolerance type 'regexp'; expected probe, regex, jsonpath or range"
    ]


def test_chaos_refusing_the_experiment_writes_no_journal(ctx: PortsContext) -> None:
    text = LOCAL_EXPERIMENT.read_text().replace("module: os", "module: no_such_module_for_gonogo")
    (ctx.plan_dir / "unimportable.yaml").write_text(text)
    outcome = run(ctx, experiment="unimportable.yaml")
    assert outcome.status == "error"
    assert outcome.message.startswith("chaos run exited 1 without writing a journal: ")
    assert "no_such_module_for_gonogo" in outcome.message
    assert ctx.metrics == {}
    assert outcome.details and outcome.details[0].startswith("last output of chaos run: ")


def test_an_experiment_that_outlives_its_timeout(ctx: PortsContext) -> None:
    text = LOCAL_EXPERIMENT.read_text().replace('arguments: ["0.05"]', 'arguments: ["60"]')
    (ctx.plan_dir / "slow.yaml").write_text(text)
    outcome = run(ctx, experiment="slow.yaml", timeout="2s")
    assert outcome.status == "error"
    assert outcome.message.startswith("chaos run timed out after ")
    assert "nothing was measured" in outcome.message
    assert ctx.metrics == {}
    assert ctx.commands[0].timed_out and ctx.commands[0].duration < 30


def test_a_missing_experiment(ctx: PortsContext) -> None:
    outcome = run(ctx, experiment="chaos/none.json")
    assert outcome == CheckOutcome(
        "error", f"{ctx.plan_dir / 'chaos/none.json'}: no such file; expected a Chaos Toolkit experiment"
    )


# -- ingesting journals ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "expected", "message"),
    [
        (
            "journal-completed.json",
            {"completed": 1, "deviated": 0, "steady_state.before.met": 1, "steady_state.after.met": 1,
             "activities": 2, "activities.failed": 0, "rollbacks": 1, "rollbacks.failed": 0},
            "completed, steady state met before and after, 2 activities, 0 failed, 1 rollback, 0 failed",
        ),
        (
            "journal-deviated.json",
            {"completed": 1, "deviated": 1, "steady_state.before.met": 1, "steady_state.after.met": 0,
             "activities": 2, "activities.failed": 0, "rollbacks": 1},
            "deviated, steady state met before, not after, 2 activities, 0 failed",
        ),
        (
            "journal-failed.json",
            {"completed": 0, "deviated": 0, "steady_state.before.met": 0, "activities": 0,
             "activities.failed": 0, "rollbacks": 0},
            "failed, steady state not met before the method, so the method was not run, 0 activities",
        ),
        (
            "journal-aborted.json",
            {"completed": 0, "deviated": 0, "steady_state.before.met": 1, "activities": 3,
             "activities.failed": 1, "probes.failed": 1, "actions.failed": 0, "rollbacks": 1,
             "rollbacks.failed": 0},
            "aborted, steady state met before, not checked after, 3 activities, 1 failed",
        ),
    ],
)  # fmt: skip
def test_a_journal_on_its_own(
    ctx: PortsContext, fixture: str, expected: dict[str, float], message: str
) -> None:
    in_plan_dir(ctx, FIXTURES / fixture)
    outcome = run(ctx, journal=f"chaos/{fixture}")
    assert outcome.status == "completed", outcome
    assert message in outcome.message
    values = ctx.values()
    assert {name: values.get(name) for name in expected} == expected
    if "steady_state.after.met" not in expected:
        assert "steady_state.after.met" not in values
    assert ctx.commands == []
    assert ctx.artifact(fixture) == (FIXTURES / fixture).read_bytes()
    assert values["duration"] > 0


def test_a_failed_hypothesis_probe_gives_its_error(ctx: PortsContext) -> None:
    in_plan_dir(ctx, FIXTURES / "journal-failed.json")
    outcome = run(ctx, journal="chaos/journal-failed.json")
    assert any(
        d.startswith("steady-state probe 'service-answers' before the method failed: ")
        and "ActivityFailed" in d
        for d in outcome.details
    ), outcome.details
    aborted = FIXTURES / "journal-aborted.json"
    in_plan_dir(ctx, aborted)
    ctx.metrics.clear()
    outcome = run(ctx, journal="chaos/journal-aborted.json")
    assert "activity 'api-through-proxy' (probe) aborted: no error given" in outcome.details


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (lambda text: text[: len(text) // 2], "the JSON ends before the journal is complete (truncated?)"),
        (lambda text: "", "the file is empty"),
        (
            lambda text: '{"metrics": {}}',
            "no 'experiment', 'status', 'run'; expected a Chaos Toolkit journal",
        ),
        (lambda text: "[1, 2]", "a JSON list, not a Chaos Toolkit journal"),
        (lambda text: SERVICE_EXPERIMENT.read_text(), "this is an experiment, not the journal of a run"),
        (
            lambda text: text.replace(
                '"status": "completed",\n  "deviated"', '"status": null,\n  "deviated"'
            ),
            "status is None; a finished run's is one of completed, failed, aborted, interrupted",
        ),
    ],
)
def test_a_file_that_is_not_a_journal(ctx: PortsContext, content: Any, expected: str) -> None:
    path = ctx.plan_dir / "journal.json"
    path.write_text(content((FIXTURES / "journal-completed.json").read_text()))
    outcome = run(ctx, journal="journal.json")
    assert outcome.status == "error"
    assert outcome.message.startswith(f"{path}: "), outcome.message
    assert expected in outcome.message
    assert ctx.metrics == {}


def test_a_missing_journal(ctx: PortsContext) -> None:
    outcome = run(ctx, journal="nowhere.json")
    assert outcome.status == "error"
    assert outcome.message == f"{ctx.plan_dir / 'nowhere.json'}: no such file; expected a Chaos Toolkit " + (
        "journal (the journal.json written by `chaos run`)"
    )


# -- the kind, its settings, a plan ------------------------------------------------------------


def test_the_kind_is_registered() -> None:
    assert load_kind("chaostoolkit") is ChaosToolkitCheck
    assert ChaosToolkitCheck.kind == "chaostoolkit"


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({}, "give either `experiment`"),
        ({"experiment": "a.json", "journal": "j.json"}, "not both or neither"),
        ({"journal": "j.json", "configuration": {"a": "b"}}, "configuration only apply when running"),
        ({"experiment": "a.json", "rollback_strategy": "sometimes"}, "'default', 'always', 'never' or"),
        ({"experiment": "a.json", "timeout": 0}, "a timeout of 0"),
        ({"experiment": " "}, "must name a file"),
        ({"experiment": "a.json", "configuration": {"a=b": "c"}}, "cannot be passed as --var"),
        ({"experiment": "a.json", "configuration": {"port": 8474}}, "Input should be a valid string"),
        ({"experiment": "a.json", "var": {}}, "Extra inputs are not permitted"),
    ],
)
def test_settings_errors(settings: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        ChaosToolkitSettings(**settings)


PLAN = """
name: shop
system:
  base_url: http://127.0.0.1:8080
checks:
  latency:
    kind: chaostoolkit
    experiment: chaos/latency.json
    configuration:
      toxiproxy_port: "{port.faults}"
      base_url: "{base_url}"
    var_file: chaos/vars.yaml
    rollback_strategy: always
    timeout: 5m
  nightly:
    kind: chaostoolkit
    journal: chaos/journal.json
    needs_system: false
gates:
  latency.deviated: "== 0"
  latency.completed: "== 1"
  nightly.steady_state.after.met: "== 1"
"""


def test_a_plan_using_the_kind_validates(tmp_path: Path) -> None:
    plan = parse_plan(PLAN, tmp_path / "gonogo.yaml")
    latency = plan.checks["latency"]
    assert isinstance(latency.settings, ChaosToolkitSettings)
    assert latency.settings.timeout == 300.0 and latency.timeout is None  # the kind applies it
    assert latency.settings.var_files == ["chaos/vars.yaml"]
    assert latency.settings.configuration["toxiproxy_port"] == "{port.faults}"
    nightly = plan.checks["nightly"]
    assert isinstance(nightly.settings, ChaosToolkitSettings)
    assert nightly.settings.journal == "chaos/journal.json"


def test_a_plan_with_a_mistake_names_the_field(tmp_path: Path) -> None:
    text = PLAN.replace("rollback_strategy: always", "rollback_stratgy: always")
    with pytest.raises(PlanError) as caught:
        parse_plan(text, tmp_path / "gonogo.yaml")
    issues = [str(issue) for issue in caught.value.issues]
    assert any("rollback_stratgy" in issue and "rollback_strategy" in issue for issue in issues), issues
