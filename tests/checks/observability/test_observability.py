"""The observability check run by the real `gonogo` command on the example service of
docs/observability.md: its health endpoint asks its dependency (reached through gonogo's fault
proxy), and with --lying it always says ok."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import psutil
import pytest

from gonogo.checks.observability import ObservabilityCheck
from gonogo.checks.observability.endpoints import Scrape, _parse, judge, rise
from gonogo.checks.observability.settings import MetricSelector, ObservabilitySettings
from gonogo.errors import PlanError
from gonogo.plan import load_plan
from gonogo.plan.names import PlanNames

EXAMPLE = Path(__file__).resolve().parents[3] / "docs" / "examples" / "observability"


def write_plan(directory: Path, check: str, *, lying: bool = False) -> Path:
    """The app behind its dependency's proxy, with one observability check `telemetry`."""
    shutil.copy(
        EXAMPLE / "app.py", directory / "app.py"
    )  # its path in every command line: leftovers are found by it
    (directory / "site").mkdir(exist_ok=True)
    flags = ", --lying" if lying else ""
    plan = textwrap.dedent(
        f"""
        name: observability-test
        system:
          proxies:
            dep: {{listen: "127.0.0.1:{{port.dep_proxy}}", upstream: "127.0.0.1:{{port.dep}}"}}
          services:
            dep:
              command: [python, -m, http.server, "{{port.dep}}", --bind, 127.0.0.1,
                        --directory, "{directory}/site"]
              ready: {{http: "http://127.0.0.1:{{port.dep}}/", timeout: 20s, interval: 100ms}}
              grace: 2s
            app:
              command: [python, "{directory}/app.py", --port, "{{port.app}}", --db, "{{run_dir}}/orders.db",
                        --stock, "http://127.0.0.1:{{port.dep_proxy}}/" {flags}]
              depends_on: [dep]
              ready: {{http: "http://127.0.0.1:{{port.app}}/metrics", timeout: 20s, interval: 100ms}}
              restart: on-failure
              restart_backoff: 100ms
              grace: 2s
          base_url: "http://127.0.0.1:{{port.app}}"
        checks:
          telemetry:
            kind: observability
            poll: 100ms
            before: 300ms
            sustain: 300ms
        """
    ).lstrip()
    path = directory / "gonogo.yaml"
    path.write_text(plan + textwrap.indent(textwrap.dedent(check).strip(), "    ") + "\ngates: {}\n")
    return path


def gonogo_run(directory: Path) -> tuple[int, dict[str, Any], str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # the services' python
    done = subprocess.run(
        [sys.executable, "-m", "gonogo", "run"],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )
    (run_dir,) = (directory / ".gonogo" / "runs").iterdir()
    report = json.loads((run_dir / "report.json").read_text())
    leftovers = [
        p.info["cmdline"]
        for p in psutil.process_iter(["cmdline"])
        if str(directory) in " ".join(p.info["cmdline"] or [])
    ]
    assert leftovers == []
    # every metric the check recorded is one it declares (gonogo validate accepts a gate on it)
    settings = load_plan(directory / "gonogo.yaml").checks["telemetry"].settings
    declared = ObservabilityCheck.metric_names(settings, PlanNames())  # type: ignore[arg-type]
    recorded = [m["full_name"] for m in report["metrics"] if m["full_name"].startswith("telemetry.")]
    assert recorded and [n for n in recorded if n.removeprefix("telemetry.") not in declared] == []
    return done.returncode, report, done.stdout + done.stderr


def failed_gates(report: dict[str, Any]) -> set[str]:
    return {gate["metric"] for gate in report["gates"] if gate["status"] != "pass"}


def artifact(directory: Path, report: dict[str, Any], name: str) -> Any:
    (sha,) = [a["sha256"] for a in report["artifacts"] if a["name"] == name]
    return json.loads((directory / ".gonogo" / "artifacts" / sha[:2] / sha).read_bytes())


DEPENDENCY_DOWN = """
metrics: /metrics
require_metrics: [orders_requests, 'orders_requests_total{route="/orders"}', process_resident_memory_bytes]
error_counters: ['orders_dependency_errors_total{dependency="stock"}']
load: {rate: 20/s, requests: [{name: orders, path: /orders}]}
faults:
  - fault: {proxy: dep, toxic: down}
    detect_within: 2s
    hold: 500ms
"""


def test_a_truthful_health_endpoint_is_go_through_a_dependency_outage_and_a_kill(tmp_path: Path) -> None:
    check = DEPENDENCY_DOWN + "  - {fault: {kill: app}, name: crash, error_counters: [], hold: 200ms}\n"
    write_plan(tmp_path, check)
    code, report, output = gonogo_run(tmp_path)
    assert code == 0, output
    metrics = {m["full_name"]: m["value"] for m in report["metrics"]}
    assert metrics["telemetry.health.truthful"] == 1
    assert metrics["telemetry.metrics.parses"] == 1 and metrics["telemetry.metrics.missing"] == 0
    down = "telemetry.proxy_dep_down"
    assert metrics[f"{down}.fault_applied"] == 1 and metrics[f"{down}.detected"] == 1
    assert 0 <= metrics[f"{down}.time_to_detect"] < 2
    assert metrics[f"{down}.recovered"] == 1 and metrics[f"{down}.time_to_recover"] < 5
    assert metrics[f"{down}.error_counter_rise"] > 0  # the /orders requests failed and were counted
    assert metrics["telemetry.crash.detected"] == 1 and metrics["telemetry.crash.recovered"] == 1
    assert 0 < metrics["telemetry.crash.time_to_recover"] < 10  # counted from the kill: the restart
    assert "telemetry.crash.error_counter_rise" not in metrics  # error_counters: [] for the kill
    assert {"telemetry.health.truthful", f"{down}.error_counter_rise"} <= {
        g["metric"] for g in report["gates"]
    }
    # the timeline says what health answered before, during and after the fault
    timeline = artifact(tmp_path, report, "telemetry-proxy_dep_down-timeline.json")
    seen = {(a["phase"], a["status"], a["verdict"]) for a in timeline["health_answers"]}
    assert {("before", 200, "healthy"), ("during", 503, "unhealthy"), ("recovery", 200, "healthy")} <= seen
    unhealthy = next(a for a in timeline["health_answers"] if a["verdict"] == "unhealthy")
    assert '"unavailable"' in unhealthy["body"] and unhealthy["since_fault"] >= 0
    counter = 'orders_dependency_errors_total{dependency="stock"}'
    counts = [r["counters"][counter] for r in timeline["metrics_readings"]]
    assert counts[-1] > counts[0]


def test_a_lying_health_endpoint_is_no_go_on_truthful_and_a_metric_it_lacks_on_missing(
    tmp_path: Path,
) -> None:
    write_plan(
        tmp_path, DEPENDENCY_DOWN.replace("process_resident_memory_bytes", "orders_queue_depth"), lying=True
    )
    code, report, output = gonogo_run(tmp_path)
    assert code == 1, output
    # each NO-GO for its own reason: the other gates of the check pass
    assert failed_gates(report) == {"telemetry.health.truthful", "telemetry.metrics.missing"}
    metrics = {m["full_name"]: m["value"] for m in report["metrics"]}
    assert metrics["telemetry.health.truthful"] == 0
    assert metrics["telemetry.proxy_dep_down.fault_applied"] == 1
    assert metrics["telemetry.proxy_dep_down.detected"] == 0
    assert "telemetry.proxy_dep_down.time_to_detect" not in metrics  # never: not measured, not 0
    assert metrics["telemetry.proxy_dep_down.error_counter_rise"] > 0  # the metrics told the truth
    assert metrics["telemetry.metrics.parses"] == 1 and metrics["telemetry.metrics.missing"] == 1
    reasons = report["verdict"]["reasons"]
    assert any(r.startswith("telemetry.health.truthful = 0") for r in reasons), reasons
    (check,) = report["checks"]
    assert "health still not unhealthy 2.00 s after proxy dep down" in check["message"], check["message"]
    assert "metrics missing: orders_queue_depth" in check["message"]
    timeline = artifact(tmp_path, report, "telemetry-proxy_dep_down-timeline.json")
    assert {a["status"] for a in timeline["health_answers"]} == {200}  # what it said, kept as evidence


# -- settings and parsing: fast ----------------------------------------------------------


def plan_with(tmp_path: Path, check: str) -> Path:
    path = tmp_path / "gonogo.yaml"
    path.write_text(
        textwrap.dedent(
            """
            name: bad
            system:
              proxies: {dep: {listen: "127.0.0.1:{port.p}", upstream: "127.0.0.1:{port.d}"}}
              base_url: "http://127.0.0.1:9"
            checks:
              telemetry:
                kind: observability
            """
        ).lstrip()
        + textwrap.indent(textwrap.dedent(check).strip(), "    ")
        + "\n"
    )
    return path


@pytest.mark.parametrize(
    ("check", "line", "message"),
    [
        (
            "error_counters: [errors_total]\nfaults: [{fault: {proxy: dep, toxic: down}}]",
            8,
            "checks.telemetry.error_counters: needs metrics: the Prometheus endpoint",
        ),
        ("faults:\n  - {fault: {proxy: dpe, toxic: down}}", 9, "fault.proxy: 'dpe' is not a proxy"),
        ("faults:\n  - {fault: {kil: api}}", 9, "faults[0].fault: a fault needs exactly one of kill"),
        (
            "faults:\n  - {fault: {proxy: dep, toxic: down}}\n  - {fault: {proxy: dep, toxic: down}}",
            10,
            "faults[1]: its metrics would be named proxy_dep_down.*, as those of faults[0]",
        ),
        ("faults:\n  - {fault: {proxy: dep, toxic: down}, name: health}", 9, "names the check's own figures"),
        (
            "metrics: /metrics\nerror_counters: ['errors_total{code=500}']\nfaults: [{fault: {stress: cpu}}]",
            9,
            "error_counters[0]: 'errors_total{code=500}': the labels must read key=\"value\"",
        ),
        ("unhealthy_status: [200, 503]\nfaults: [{fault: {stress: cpu}}]", 8, "200 is also a healthy_status"),
        (
            "health: ftp://x/health\nfaults: [{fault: {stress: cpu}}]",
            8,
            "expected an http:// or https:// URL",
        ),
    ],
)
def test_a_wrong_setting_is_refused_at_its_line(tmp_path: Path, check: str, line: int, message: str) -> None:
    path = plan_with(tmp_path, check)
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    text = str(caught.value)
    assert message in text and f"{path}:{line}:" in text, text
    where, _, said = text.partition(": ")[2].partition(": ")
    assert not said.startswith(where.rsplit(".", 1)[-1]), text  # the field is named once


def test_the_example_plan_of_the_docs_is_valid_and_gated_by_the_kinds_own_gates() -> None:
    plan = load_plan(EXAMPLE / "gonogo.yaml")
    gates = {gate.metric: gate.expr.text for gate in plan.gates if gate.metric.startswith("telemetry.")}
    assert gates == {
        "telemetry.health.truthful": "== 100%",
        "telemetry.metrics.parses": "== 1",
        "telemetry.metrics.missing": "== 0",
        "telemetry.proxy_stock_down.error_counter_rise": "> 0",
        "telemetry.database_gone.error_counter_rise": "> 0",
    }


def test_gates_and_names_follow_the_settings() -> None:
    settings = ObservabilitySettings.model_validate(
        {
            "metrics": "http://127.0.0.1:{port.api}/metrics",
            "error_counters": ['http_requests_total{status="503", route="/a\\"b"}'],
            "faults": [
                {"fault": {"proxy": "db", "toxic": "down"}},
                {"fault": {"kill": "api"}, "error_counters": [], "expect": "unhealthy"},
                {"fault": {"disk_fill": "{run_dir}/data"}, "expect": "healthy"},
            ],
        }
    )
    assert [settings.fault_name(i) for i in range(3)] == ["proxy_db_down", "kill_api", "disk_fill"]
    assert settings.error_counters[0] == MetricSelector(
        "http_requests_total", (("status", "503"), ("route", '/a"b'))
    )
    assert ObservabilityCheck.default_gates(settings) == {
        "health.truthful": "== 100%",
        "metrics.parses": "== 1",
        "metrics.missing": "== 0",
        "proxy_db_down.error_counter_rise": "> 0",
        "disk_fill.error_counter_rise": "> 0",
    }


def test_counters_are_read_as_prometheus_does() -> None:
    page = textwrap.dedent(
        """
        # TYPE http_requests counter
        http_requests_total{route="/a",status="503"} 4
        http_requests_total{route="/b",status="503"} 2
        http_requests_total{route="/b",status="200"} 9
        http_requests_created{route="/b",status="200"} 1.7e9
        # TYPE latency_seconds histogram
        latency_seconds_bucket{le="+Inf"} 3
        latency_seconds_count 3
        latency_seconds_sum 0.4
        """
    ).encode()
    scrape = _parse(0.0, page)
    assert scrape.parsed
    errors = MetricSelector("http_requests_total", (("status", "503"),))
    assert scrape.total(errors) == 6 and scrape.total(MetricSelector("http_requests")) == 15
    assert scrape.total(MetricSelector("never_counted_total")) == 0  # a labelled counter not yet counted
    for name in ("http_requests", "http_requests_total", "latency_seconds", "latency_seconds_bucket"):
        assert scrape.present(MetricSelector(name)), name
    assert not scrape.present(MetricSelector("http_requests_total", (("status", "500"),)))
    assert not _parse(0.0, b"<html>oops</html>").parsed and not _parse(0.0, b"").parsed
    assert Scrape(0.0, None, "refused").total(errors) is None
    # a counter that goes down was restarted with its process: it rose by what it reads now
    assert rise([5, None, 7, 2, 3]) == 2 + 2 + 1


def test_a_health_answer_is_judged_by_the_settings() -> None:
    faults = [{"fault": {"kill": "api"}}]
    plain = ObservabilitySettings.model_validate({"faults": faults})
    assert judge(200, b"", plain)[0] == "healthy"
    assert judge(503, b"", plain) == ("unhealthy", "expected status 200, got 503")
    assert judge(404, b"", plain)[0] == "unhealthy"  # anything not healthy, by default
    strict = ObservabilitySettings.model_validate(
        {"faults": faults, "healthy_json": {"$.status": "ok"}, "unhealthy_status": [503]}
    )
    assert judge(200, b'{"status": "ok"}', strict)[0] == "healthy"
    assert judge(200, b'{"status": "degraded"}', strict)[0] == "neither"  # 200 is not an unhealthy status
    assert judge(503, b'{"status": "down"}', strict)[0] == "unhealthy"
    verdict, why = judge(404, b"", strict)
    assert verdict == "neither" and "not an unhealthy status (503)" in why
    assert judge(200, b"<html>", strict)[1].startswith("the answer is not JSON")


def test_health_that_says_unhealthy_once_then_healthy_while_the_fault_lasts_is_not_truthful() -> None:
    from gonogo.checks.observability.check import _FaultTimeline
    from gonogo.checks.observability.endpoints import HealthAnswer

    settings = ObservabilitySettings.model_validate(
        {"faults": [{"fault": {"sqlite_lock": "/tmp/db.sqlite"}, "name": "locked"}]}
    )

    def timeline(verdicts: str) -> _FaultTimeline:
        t = _FaultTimeline(0, "locked", settings.faults[0], [], healthy_before=True, applied=True)
        t.injected, t.removed, t.recovered = 0.0, 10.0, 10.5
        for moment, verdict in enumerate(verdicts, start=1):
            said = "unhealthy" if verdict == "u" else "healthy"
            t.answers.append(
                ("during", HealthAnswer(float(moment), said, 503 if verdict == "u" else 200, "", "", 0.01))
            )
        t.detected = next(a.at + a.latency for _, a in t.answers if a.verdict == "unhealthy")
        return t

    assert timeline("uuuuuuuuu").truthful()
    assert timeline("huuuuuuuuuuu").truthful()  # before the first unhealthy answer: still detecting
    flapped = timeline("uhhhhhhhh")
    assert not flapped.truthful() and flapped.unhealthy_after_detection() == pytest.approx(1 / 9)
