"""The experiment file's typed models: what `chaos run` accepts passes, every mistake is located."""

from __future__ import annotations

import json
from typing import Any

import pytest
from chaostoolkit_helpers import FIXTURES

from gonogo.checks.chaostoolkit import load_experiment, parse_experiment
from gonogo.checks.chaostoolkit.experiment import Activity, ActivityRef, HttpProvider, RangeTolerance
from gonogo.errors import InputFileError


def base() -> dict[str, Any]:
    return json.loads((FIXTURES / "service-experiment.json").read_text())


def problems(document: dict[str, Any] | str) -> list[str]:
    data = document if isinstance(document, str) else json.dumps(document, indent=2)
    with pytest.raises(InputFileError) as caught:
        parse_experiment(data.encode(), "exp.json")
    first, *issues = str(caught.value).splitlines()
    assert first.startswith("exp.json: "), first
    return [issue.strip() for issue in issues] or [first]


def test_the_fixtures_are_valid() -> None:
    service = load_experiment(FIXTURES / "service-experiment.json")
    assert service.steady_state_hypothesis is not None
    assert [probe.tolerance for probe in service.steady_state_hypothesis.probes] == [200, 0, True]
    assert isinstance(service.steady_state_hypothesis.probes[0].provider, HttpProvider)
    local = load_experiment(FIXTURES / "local-experiment.yaml")
    assert isinstance(local.method[1], ActivityRef) and local.method[1].ref == "echo-greets"
    assert local.steady_state_hypothesis is not None
    assert isinstance(local.steady_state_hypothesis.probes[1].tolerance, RangeTolerance)
    toxiproxy = load_experiment(FIXTURES / "toxiproxy-experiment.json")
    assert isinstance(toxiproxy.method[0], Activity)
    # a journal's copy of its experiment (with `dry`) is an experiment too
    journal = json.loads((FIXTURES / "journal-completed.json").read_text())
    assert parse_experiment(json.dumps(journal["experiment"]).encode(), "x.json").title


def test_every_mistake_is_reported_with_its_json_path() -> None:
    document = base()
    del document["method"][0]["provider"]["path"]
    document["method"][1]["provider"]["type"] = "shell"
    document["rollbacks"][0]["type"] = "rollback"
    document["rollbacks"].append({"type": "probe", "name": "no-provider"})
    document["tags"] = ["ok", 3]
    found = problems(document)
    paths = [issue.split(": ", 2)[1] for issue in found]
    assert paths == [
        "$.tags[1]",
        "$.method[0].provider",
        "$.method[1].provider.type",
        "$.rollbacks[0].type",
        "$.rollbacks[1]",
    ], found
    assert found[1].endswith("required field 'path' is missing")
    assert found[2].endswith("unknown provider type 'shell'; expected python, process or http")
    assert found[3].endswith("expected 'probe' or 'action'; got a string 'rollback'")
    assert found[4].endswith("required field 'provider' is missing")
    assert all(issue.startswith("exp.json:") and issue.split(":")[1].isdigit() for issue in found)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.pop("method"), "$: required field 'method' is missing"),
        (lambda d: d.update(title=""), "$.title: string should have at least 1 character"),
        (
            lambda d: d.update(steady_state_hypothesis={}),
            "unknown key 'steady_state_hypothesis'; did you mean",
        ),
        (
            lambda d: d["method"].append({"ref": "not-declared"}),
            "$.method[2].ref: no activity named 'not-declared' is declared in the experiment",
        ),
        (
            lambda d: d["steady-state-hypothesis"]["probes"][0].update(
                tolerance={"type": "range", "range": [1]}
            ),
            "tolerance.range: a range is two numbers: [lowest, highest]",
        ),
        (
            lambda d: d["steady-state-hypothesis"]["probes"][0].update(
                tolerance={"type": "regex", "pattern": "("}
            ),
            "tolerance.pattern: not a valid regular expression",
        ),
        (
            lambda d: d["steady-state-hypothesis"]["probes"][0].update(tolerance={"pattern": "x"}),
            "tolerance: a tolerance needs a `type`: probe, regex, jsonpath or range",
        ),
        (
            lambda d: d["steady-state-hypothesis"]["probes"][0].pop("tolerance"),
            "probes[0]: required field 'tolerance' is missing",
        ),
        (
            lambda d: d["method"][1].update(pauses={"after": "later"}),
            "$.method[1].pauses.after: a pause is a number of seconds, or ${name} of a configuration value",
        ),
        (lambda d: d["method"][1].update(timeout="5"), "$.method[1].timeout: input should be a valid number"),
        (
            lambda d: d["method"][1].update(background="yes"),
            "$.method[1].background: input should be a valid",
        ),
    ],
)
def test_one_mistake(change: Any, expected: str) -> None:
    document = base()
    change(document)
    found = problems(document)
    assert any(expected in issue for issue in found), found


def test_what_is_not_an_experiment() -> None:
    assert problems("[]") == ["exp.json: $: expected a mapping with at least title, description and method "
                              "(a Chaos Toolkit experiment), got a list []"]  # fmt: skip
    assert "truncated?" in problems(json.dumps(base())[:200])[0]
    journal = (FIXTURES / "journal-completed.json").read_text()
    assert "this is the journal of a run, not an experiment" in problems(journal)[0]
    with pytest.raises(InputFileError, match=r"exp.yaml:2:\d+: not valid YAML"):
        parse_experiment(b"title: x\n  - broken: [\n", "exp.yaml")
