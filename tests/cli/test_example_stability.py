"""The example's stability switches (issue 10), each NO-GO on its own gate. The healthy build's
run, with the same soak and observability check, is `test_the_example_is_go`.

A whole demo run per switch would take minutes: each run here keeps only the check that can see
the defect, shortened. The memory leak, the descriptor leak and the lying health check are on
together (one system start instead of three): each breaks a different gate, asserted on its own,
and none of them disturbs what the others are judged by.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_support import gonogo
from test_example import STABILITY, example_plan, report_of

pytestmark = pytest.mark.usefixtures("no_leftovers")


def adjusted(plan: Path, system: dict[str, Any] | None = None, **checks: dict[str, Any]) -> Path:
    """The plan with these settings of its system and its checks replaced."""
    data = yaml.safe_load(plan.read_text())
    data["system"].update(system or {})
    for name, settings in checks.items():
        data["checks"][name].update(settings)
    plan.write_text(yaml.safe_dump(data, sort_keys=False))
    return plan


def failed_gates(report: dict[str, Any]) -> set[str]:
    return {gate["metric"] for gate in report["gates"] if gate["status"] == "fail"}


def metrics_of(report: dict[str, Any]) -> dict[str, float]:
    return {metric["full_name"]: metric["value"] for metric in report["metrics"]}


def test_leaks_and_a_lying_health_check_are_each_no_go_on_their_own_gate(tmp_path: Path) -> None:
    plan = example_plan(tmp_path, unit=False, e2e=False, load="none", chaos=(), stability=STABILITY)
    # 10 s of the soak's 40 requests a second, sampled twice a second: 50 MiB leaked at 128 KiB a
    # request, 400 descriptors; health is given 2 s to say the truth. (At 32 KiB a request, 12 MiB,
    # one CI run did not flag the leak; its metrics were not printed, so the cause is unknown.)
    detect = {"detect_within": "2s"}
    adjusted(
        plan,
        system={"sample_interval": "500ms"},
        soak={"duration": "10s", "warmup": "3s"},
        telemetry={
            "faults": [
                {**fault, **detect}
                for fault in yaml.safe_load(plan.read_text())["checks"]["telemetry"]["faults"]
            ]
        },
    )
    switches = {"DOCSERVICE_LEAK_MEMORY": "128", "DOCSERVICE_LEAK_FDS": "1", "DOCSERVICE_LYING_HEALTH": "1"}
    result = gonogo("run", cwd=tmp_path, timeout=300, **switches)
    assert result.code == 1, result.text
    report = report_of(plan)
    failed, metrics = failed_gates(report), metrics_of(report)
    # the memory leak: the API's RSS, and only the API's
    rss = {name: value for name, value in metrics.items() if name.startswith("soak.api.rss.")}
    assert "soak.api.rss.leak" in failed, rss
    assert metrics["soak.api.rss.growth"] >= 6 * 2**20
    assert not {"soak.worker.rss.leak", "soak.enricher.rss.leak"} & failed
    # the descriptor leak: one per request, projected past the process's RLIMIT_NOFILE
    assert {"soak.api.fds.leak", "soak.api.fds.within_limit"} <= failed
    assert metrics["soak.api.fds.growth"] >= 200
    assert not {"soak.worker.fds.leak", "soak.enricher.fds.leak"} & failed
    # the lying health check: "ok" with the enricher cut and with the database file gone
    assert "telemetry.health.truthful" in failed
    assert metrics["telemetry.health.truthful"] == 0
    assert metrics["telemetry.enricher_down.detected"] == metrics["telemetry.database_gone.detected"] == 0
    assert metrics["telemetry.database_gone.fault_applied"] == 1
    # the metrics endpoint still tells the truth: it parses, and the errors rose
    assert {"telemetry.metrics.parses", "telemetry.database_gone.error_counter_rise"}.isdisjoint(failed)
    reasons = report["verdict"]["reasons"]
    for gate in ("soak.api.rss.leak", "soak.api.fds.leak", "telemetry.health.truthful"):
        assert any(reason.startswith(f"{gate} = ") for reason in reasons), (gate, reasons)


def test_an_api_that_crashes_after_n_requests_is_no_go_though_restarted(tmp_path: Path) -> None:
    plan = example_plan(tmp_path, unit=False, e2e=False, load="none", chaos=(), stability=("soak",))
    adjusted(plan, soak={"duration": "4s", "warmup": "1s"})  # 200 requests: crashes at 120
    result = gonogo("run", cwd=tmp_path, timeout=300, DOCSERVICE_CRASH_AFTER="120")
    assert result.code == 1, result.text
    report = report_of(plan)
    failed, metrics = failed_gates(report), metrics_of(report)
    assert "service.api.exits.unplanned" in failed
    assert metrics["service.api.exits.unplanned"] >= 1
    assert metrics["service.api.restarts"] >= 1  # healed by `restart: on-failure`, counted all the same
    assert "service.worker.exits.unplanned" not in failed and "service.enricher.exits.unplanned" not in failed
    assert any(r.startswith("service.api.exits.unplanned = ") for r in report["verdict"]["reasons"])
    (run_dir,) = (tmp_path / ".gonogo" / "runs").iterdir()
    assert "crashing on purpose after 120 requests" in (run_dir / "logs" / "api.log").read_text()


def test_a_write_behind_buffer_loses_acknowledged_uploads_at_the_kill_moments(tmp_path: Path) -> None:
    plan = example_plan(tmp_path, unit=False, e2e=False, load="none", chaos=("api_kill",))
    # One moment, right after a burst; the experiment itself shortened.
    adjusted(plan, api_kill={"before": "1s", "duration": "2s", "kill_moments": ["0s"]})
    switches = {"DOCSERVICE_WRITE_BEHIND": "1", "DOCSERVICE_FLUSH_INTERVAL": "2"}
    result = gonogo("run", cwd=tmp_path, timeout=300, **switches)
    assert result.code == 1, result.text
    report = report_of(plan)
    metrics = metrics_of(report)
    assert metrics["api_kill.fault_applied"] == 1
    assert metrics["api_kill.integrity.lost"] > 0
    assert any(r.startswith("api_kill.integrity.lost = ") for r in report["verdict"]["reasons"])
