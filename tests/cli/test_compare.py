"""`gonogo compare` on real runs of the example's API: two unchanged runs read as the same, a
run with DOCSERVICE_SLOWDOWN=0.2 (every response 20% slower) as slower, with an interval of
the shift that excludes 0."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_support import EXAMPLE, gonogo, write_plan

pytestmark = pytest.mark.usefixtures("no_leftovers")

# The load's endpoint answers 50 ms late on purpose (DOCSERVICE_SLOW_ROUTE): its latency is then
# a sleep, not CPU, so a loaded CI machine moves it by far less than the 5% tolerance (2.5 ms),
# while the slowdown adds 20% (10 ms). The journeys check gives the functional side real shapes.
PLAN = f"""
name: slowdown
system:
  services:
    api:
      command: [python, -m, docservice.api, --port, "{{port.api}}", --db, "{{run_dir}}/data/docservice.db",
                --storage, "{{run_dir}}/data/files", --enricher-url, "http://127.0.0.1:9"]
      env:
        PYTHONPATH: "{EXAMPLE / "src"}"
        DOCSERVICE_SLOW_ROUTE: "GET /help/index.md"
        DOCSERVICE_SLOW_SECONDS: "0.05"
        DOCSERVICE_LOG_LEVEL: WARNING
      ready: {{http: "http://127.0.0.1:{{port.api}}/health", timeout: 30s}}
      grace: 5s
  base_url: "http://127.0.0.1:{{port.api}}"
checks:
  smoke:
    kind: journeys
    journeys:
      anonymous:
        iterations: 3
        steps:
          - {{name: health, request: {{path: /health}}}}
          - {{name: documents, request: {{path: /documents}}, expect: {{status: 401}}}}
  load:
    kind: load
    model: open
    rate: 100/s
    duration: 1500ms
    warmup: 250ms
    generator: {{max_late: 10%}}
    requests:
      - {{name: help, path: /help/index.md}}
gates:
  smoke.success_rate: ">= 100%"
  load.endpoint.help.latency.p95: "< 2s"
"""


def test_unchanged_runs_are_the_same_and_a_slowdown_is_slower(tmp_path: Path) -> None:
    write_plan(tmp_path, PLAN)
    for slowdown in ("", "", "0.2"):
        result = gonogo("run", cwd=tmp_path, timeout=120, DOCSERVICE_SLOWDOWN=slowdown)
        assert result.code == 0, result.text
    first, second, slowed = sorted(path.name for path in (tmp_path / ".gonogo" / "runs").iterdir())

    same = gonogo("compare", first, second, "--format", "json", cwd=tmp_path, timeout=60)
    assert same.code == 0, same.text
    document = json.loads(same.out)
    latency = {change["metric"]: change for change in document["latency"]}
    help_latency = latency["load.endpoint.help.latency"]
    assert help_latency["classification"] in ("no significant difference", "significant but within tolerance")
    assert help_latency["a_count"] >= 120 and abs(help_latency["relative_shift"]) < 0.05
    assert document["functional"]["differences"] == [] and document["summary"]["slower"] == 0
    steps = {step["step"]: step for step in document["functional"]["steps"]}
    assert steps["documents"]["a"]["statuses"] == {"401": 3} and len(steps["documents"]["a"]["shapes"]) == 1

    as_json = gonogo("compare", first, slowed, "--format", "json", "-o", "c.json", cwd=tmp_path, timeout=60)
    assert as_json.code == 1, as_json.text
    change = next(c for c in json.loads((tmp_path / "c.json").read_text())["latency"]
                  if c["metric"] == "load.endpoint.help.latency")  # fmt: skip
    assert change["classification"] == "slower" and change["low"] > 0 and change["p_value"] < 0.001
    assert 0.12 < change["relative_shift"] < 0.3  # about 20% (the sleep's own overhead on top)
