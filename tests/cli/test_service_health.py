"""Every run watches its services, whatever its checks: crashes a restart policy healed, error
lines, how each one stopped, and whether its memory grows (real processes, one run)."""

from __future__ import annotations

import sys
from pathlib import Path

from chaos_support import metrics_of, report_of
from cli_support import gonogo, write_plan

APP = Path(__file__).parent / "services" / "health_app.py"


def test_a_run_catches_a_healed_crash_a_leak_and_an_abrupt_stop_and_flags_no_noise(
    tmp_path: Path, no_leftovers: None
) -> None:
    def service(mode: str, *, http: bool = True) -> str:
        ready = f'ready: {{http: "http://127.0.0.1:{{port.{mode}}}/"}}' if http else ""
        return f"""
            {mode}:
              command: ["{sys.executable}", "{APP}", "{{port.{mode}}}", {mode}]
              {ready}
              restart: on-failure
              restart_backoff: 50ms
              grace: 3s"""

    crashy = service("crashy").replace("crashy]", '"crash-after", "150"]')
    crashy += "\n              limits: {memory: 4GB}"
    plan = write_plan(
        tmp_path,
        f"""
        name: health
        system:
          sample_interval: 200ms
          trends: {{warmup: 1s}}
          services:{crashy}{service("leak", http=False)}{service("noisy", http=False)}{service("abrupt")}
          base_url: "http://127.0.0.1:{{port.crashy}}"
        checks:
          traffic:
            kind: load
            duration: 5s
            rate: 40/s
            requests: [{{name: root, path: /}}]
        gates:
          service.crashy.exits.unplanned: "== 0"
          service.leak.rss.leak: "== 0"
          service.noisy.rss.leak: "== 0"
          service.crashy.shutdown.in_flight_lost: "== 0"
          service.abrupt.shutdown.in_flight_lost: "== 0"
        """,
    )
    result = gonogo("run", str(plan), cwd=tmp_path)
    assert result.code == 1, result.text
    report = report_of(plan)
    failed = {gate["metric"] for gate in report["gates"] if gate["status"] != "pass"}
    assert failed == {
        "service.crashy.exits.unplanned",
        "service.leak.rss.leak",
        "service.abrupt.shutdown.in_flight_lost",
    }

    metrics = metrics_of(report)
    # 150 requests per life at 40/s: it crashed and was restarted at least once, not by a fault.
    assert metrics["service.crashy.exits.unplanned"] >= 1
    assert metrics["service.crashy.restarts"] == metrics["service.crashy.exits.unplanned"]
    assert metrics["service.crashy.exits.planned"] == 0
    assert metrics["service.crashy.log.tracebacks"] >= 1 and metrics["service.crashy.log.errors"] >= 1
    # Restarted late in the run: too little of its last life for a trend, yet within its limit.
    assert metrics["service.crashy.rss.within_limit"] == 1
    exits = next(g for g in report["gates"] if g["metric"] == "service.crashy.exits.unplanned")
    assert "exited with code 3" in exits["source"]

    # 10 MB/s kept: a leak; random churn of the same size: no leak.
    assert metrics["service.leak.rss.slope_per_hour"] > 10e9
    assert metrics["service.leak.rss.growth"] > 40e6
    assert metrics["service.noisy.rss.leak"] == 0
    assert metrics["service.leak.fds.limit"] > 0  # the process's own RLIMIT_NOFILE

    # The graceful one answered what was in flight at SIGTERM; the abrupt one dropped it.
    assert metrics["service.crashy.shutdown.clean"] == 1
    assert metrics["service.crashy.shutdown.in_flight"] >= 1
    assert metrics["service.abrupt.shutdown.in_flight_lost"] >= 1
    assert metrics["service.abrupt.shutdown.exit_code"] == -15
    names = {a["name"] for a in report["artifacts"]}
    assert {"crashy-log-errors.txt", "leak-trends.json"} <= names
