"""`gonogo run` of gates with a timeframe on a real server one of whose endpoints never answers
in time: the series (of the requests' waiting ages) is what such a gate is judged on, also with
no whole-run figure; an abort gate that stopped the load fails with its breach; a gate without
a value says which check should have recorded it and why it did not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_support import gonogo, write_plan

pytestmark = pytest.mark.usefixtures("no_leftovers")

SERVER = Path(__file__).parents[1] / "checks" / "load" / "stream_server.py"

PLAN = f"""
name: stuck
system:
  services:
    api:
      command: [python, "{SERVER}", "{{port.api}}"]
      ready: {{http: "http://127.0.0.1:{{port.api}}/health", timeout: 20s}}
      grace: 2s
  base_url: "http://127.0.0.1:{{port.api}}"
checks:
  chat:
    kind: load
    rate: 10/s
    duration: 6s
    request_timeout: 1s           # the stuck endpoint's requests all time out, after waiting 1 s
    requests:
      - {{name: stuck, path: "/stall?n=1&first=5000"}}
      - {{name: health, path: /health}}
  slow:                           # answers in 0.5 s: the last ones finish after the 2 s
    kind: load
    rate: 5/s
    duration: 2s
    requests: [{{name: wait, path: "/stall?n=1&first=500"}}]
gates:
  slow.error_rate: "< 1% for 2s"
  chat.endpoint.stuck.latency.p95: {{expr: "< 300ms for 2s", abort_on_fail: true}}
  chat.endpoint.health.latency.p99: "< 2s for 2s"
  chat.endpoint.stuck.latency.p50: "< 1s"
"""


def test_timeframe_gates_read_the_series_and_an_abort_gate_fails(tmp_path: Path) -> None:
    write_plan(tmp_path, PLAN)
    result = gonogo("run", cwd=tmp_path)
    assert result.code == 1, result.text
    (run_dir,) = sorted((tmp_path / ".gonogo" / "runs").iterdir())[-1:]
    report: dict[str, Any] = json.loads((run_dir / "report.json").read_text())
    check, slow = report["checks"]
    # the measured phase is the planned 2 s, the drain said apart (as with journeys)
    assert " responses in 2.0s (" in slow["message"] and "s more to finish" in slow["message"], slow
    slow_gate = next(g for g in report["gates"] if g["metric"] == "slow.error_rate")
    assert " s of drain" in slow_gate["source"], slow_gate
    assert check["message"].startswith("stopped early: gate chat.endpoint.stuck.latency.p95"), check
    gates = {g["metric"]: g for g in report["gates"]}
    metrics = {m["full_name"] for m in report["metrics"]}
    # no response, so no whole-run latency: the gate that stopped the load fails on its series
    assert "chat.endpoint.stuck.latency.p95" not in metrics
    stuck = gates["chat.endpoint.stuck.latency.p95"]
    assert stuck["status"] == "fail", stuck
    assert stuck["value"] >= 0.3 and "longest breach" in stuck["source"]
    assert "no whole-run figure" in stuck["source"]
    # the value is what the gate was judged on; the whole run's figure is beside it
    health = gates["chat.endpoint.health.latency.p99"]
    assert health["status"] == "pass" and health["value"] < 2.0, health
    assert "never in breach" in health["source"] and "whole run" in health["source"]
    missing = gates["chat.endpoint.stuck.latency.p50"]
    assert missing["status"] == "not_measured"
    assert missing["source"].startswith(
        "check chat ran (completed) and recorded no value of endpoint.stuck.latency.p50: none of its"
    ), missing
    assert "requests got a response" in missing["source"]
