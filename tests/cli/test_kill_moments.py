"""Kill moments, through the real `gonogo run`: a service that acknowledges writes before it
commits them, whose loss steady mixed traffic hides, is caught by the kills that come right
after a burst of writes; the same service committing first passes them all."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from chaos_support import metrics_of, report_of
from cli_support import gonogo, write_plan

pytestmark = pytest.mark.usefixtures("no_leftovers")

SERVICE = Path(__file__).parents[2] / "docs" / "examples" / "kill_moments" / "store.py"
MOMENTS = ("0ms", "100ms", "500ms", "1500ms")  # the default offsets


def service(name: str, flags: str) -> str:
    return f"""
    {name}:
      command: [{sys.executable}, "{SERVICE}", --port, "{{port.{name}}}",
                --db, "{{run_dir}}/{name}.db"{flags}]
      ready: {{http: "http://127.0.0.1:{{port.{name}}}/health", timeout: 20s, interval: 50ms}}
      restart: on-failure
      restart_backoff: 100ms
      restart_backoff_max: 200ms
      grace: 2s"""


def crash(name: str) -> str:
    """A kill experiment as the docs write it, without a word about kill moments: the default."""
    return f"""
  {name}_crash:
    kind: chaos
    base_url: "http://127.0.0.1:{{port.{name}}}"
    load: {{rate: 50/s, requests: [{{name: count, path: /items}}]}}
    hypothesis:
      interval: 250ms
      probes: [{{name: health, http: /health, status: 200}}]
    faults: [{{kill: {name}}}]
    before: 1s
    duration: 1s
    recovery: {{timeout: 20s, sustain: 1s}}
    integrity:
      rate: 10/s
      write: {{name: put, request: {{method: POST, path: /items, body: "item {{uuid}}"}},
              expect: {{status: 201}}, extract: {{id: "json:$.id"}}}}
      read: {{name: get, request: {{path: "/items/{{id}}"}}, expect: {{status: 200}}}}"""


def moments_evidence(plan: Path, report: dict[str, Any], check: str) -> dict[str, Any]:
    (artifact,) = [a for a in report["artifacts"] if a["name"] == f"{check}-kill-moments.json"]
    sha = artifact["sha256"]
    evidence: dict[str, Any] = json.loads((plan.parent / ".gonogo" / "artifacts" / sha[:2] / sha).read_text())
    return evidence


def test_writes_acknowledged_before_commit_are_lost_right_after_a_burst_and_no_go(tmp_path: Path) -> None:
    # One run, two builds of the service: `behind` answers first and commits every 2 s (or at
    # once while reads keep coming); `committed` commits before it answers.
    plan = write_plan(
        tmp_path,
        "name: write-behind\nsystem:\n  sample_interval: 200ms  # an exit is noticed, and the restart "
        "begun, this soon\n  services:"
        + service("behind", "")
        + service("committed", ", --commit-before-ack")
        + "\nchecks:"
        + crash("behind")
        + crash("committed")
        + """
gates:
  behind_crash.integrity.lost: "== 0"
  committed_crash.integrity.lost: "== 0"
  committed_crash.recovered: "== 1"
score:
  minimum: 50
""",
    )
    result = gonogo("run", cwd=tmp_path, timeout=180)
    assert result.code == 1, result.text
    report = report_of(plan)
    metrics = metrics_of(report)
    # NO-GO for the write-behind build alone: the committing one passes every gate
    assert [r.split(" ")[0] for r in report["verdict"]["reasons"]] == ["behind_crash.integrity.lost"]
    behind = moments_evidence(plan, report, "behind_crash")
    # Under the experiment's mixed traffic nothing acknowledged was lost: the kill alone passed.
    assert behind["steady_writes"]["acknowledged"] > 5
    assert behind["steady_writes"]["lost"] == 0, behind["steady_writes"]
    # Right after a burst, with nothing else in flight, the buffer held the writes.
    assert metrics["behind_crash.integrity.moments"] == len(MOMENTS)
    lost = {label: metrics[f"behind_crash.integrity.moment.{label}.lost"] for label in MOMENTS}
    assert lost["0ms"] > 0, lost
    assert metrics["behind_crash.integrity.lost"] == sum(lost.values())
    (check,) = [c for c in report["checks"] if c["name"] == "behind_crash"]
    assert "kill moments: 0 s after a burst: " in check["message"], check["message"]
    # The evidence names each moment: its offset, the writes at risk, the writes lost (by id).
    first = behind["moments"][0]
    assert first["moment"] == "0ms" and first["tried"] and first["burst"] == 20
    assert first["acknowledged"] == 20 and first["killed_after"] < 0.1
    assert len(first["lost_writes"]) == first["lost"] == lost["0ms"]
    assert all(isinstance(write["id"], str) for write in first["lost_writes"])

    # Committed before acknowledged: every moment tried, nothing lost.
    assert metrics["committed_crash.integrity.moments"] == len(MOMENTS)
    for index, label in enumerate(MOMENTS):
        assert metrics[f"committed_crash.integrity.moment.{label}.acknowledged"] == 20 + index
        assert metrics[f"committed_crash.integrity.moment.{label}.lost"] == 0
    assert metrics["committed_crash.integrity.lost"] == 0
    assert metrics["committed_crash.integrity.acknowledged"] > 20 + 21 + 22 + 23
    for moment in moments_evidence(plan, report, "committed_crash")["moments"]:
        assert moment["killed_after"] >= moment["kill_after"]
        assert moment["ready_after"]["committed"] is not None
        assert [kill["ok"] for kill in moment["kills"]] == [True]
    # the moments' kills are planned, told as such, and not counted as crashes
    killed = [e for e in report["events"] if e["source"] == "committed" and "kill moment" in e["message"]]
    assert len(killed) >= len(MOMENTS)
    assert metrics["service.committed.exits.unplanned"] == 0
