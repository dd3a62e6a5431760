"""Operations under load, run by `gonogo run` against the example service of docs/operation.md
(docs/examples/operation/app.py): a reload that hands the socket over is GO, a restart that
closes it is NO-GO on its failed requests; a restore drill reads every write back, and a
restore that drops the last writes, or a drill that destroys nothing, is NO-GO."""

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
import yaml

from gonogo import plugins
from gonogo.plan import load_plan
from gonogo.plan.names import PlanNames, matches

EXAMPLE = Path(__file__).resolve().parents[3] / "docs" / "examples" / "operation"


def gonogo_run(plan_dir: Path) -> tuple[int, str, dict[str, Any]]:
    """Run the plan as a user would; (exit code, output, the run's JSON report)."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    done = subprocess.run(
        [sys.executable, "-m", "gonogo", "run"],
        cwd=plan_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    (run_dir,) = (plan_dir / ".gonogo" / "runs").iterdir()
    report: dict[str, Any] = json.loads((run_dir / "report.json").read_text())
    # nothing the run started outlives it
    leftovers = [
        p.pid for p in psutil.process_iter(["cmdline"]) if str(plan_dir) in " ".join(p.info["cmdline"] or [])
    ]
    assert not leftovers, f"left behind: {leftovers}"
    # every metric recorded is one the kind declares, or a gate on it would have been refused
    plan = load_plan(plan_dir / "gonogo.yaml")
    for metric in report["metrics"]:
        check, _, name = metric["full_name"].partition(".")
        if check in plan.checks:
            spec = plan.checks[check]
            declared = plugins.load_kind(spec.kind).metric_names(spec.settings, PlanNames())
            assert declared is None or matches(name, declared), f"{metric['full_name']} is not declared"
    return done.returncode, done.stdout + done.stderr, report


def metrics_of(report: dict[str, Any]) -> dict[str, float]:
    return {m["full_name"]: m["value"] for m in report["metrics"]}


def gates_of(report: dict[str, Any]) -> dict[str, str]:
    return {g["metric"]: g["status"] for g in report["gates"]}


def test_the_documented_zero_downtime_deploy_and_restore_drill_is_go(tmp_path: Path) -> None:
    # docs/operation.md shows the example's checks as they are
    shown = (EXAMPLE.parents[1] / "operation.md").read_text().split("```yaml\n")[1].split("```")[0]
    example = yaml.safe_load((EXAMPLE / "gonogo.yaml").read_text())
    assert yaml.safe_load(shown)["checks"] == example["checks"]
    for name in ("app.py", "gonogo.yaml"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    code, output, report = gonogo_run(tmp_path)
    assert code == 0, output
    metrics = metrics_of(report)
    for operation in ("deploy", "rollback"):
        assert metrics[f"release.{operation}.runs"] == 2
        assert metrics[f"release.{operation}.success_rate"] == 1
        assert metrics[f"release.{operation}.failed_requests"] == 0
        assert metrics[f"release.{operation}.requests"] >= 80  # 50/s for two runs of at least a second
        assert metrics[f"release.{operation}.downtime"] == 0
        assert metrics[f"release.{operation}.version_changed"] == 1
    assert metrics["release.restore.writes"] >= 10
    assert metrics["release.restore.lost_writes"] == 0
    assert metrics["release.restore.verified"] == 1
    assert 0 < metrics["release.restore.duration"] < 10
    assert set(gates_of(report).values()) == {"pass"}
    artifacts = {a["name"] for a in report["artifacts"]}
    assert {"release-operations.json", "release-restore.json", "release-deploy-1.log"} <= artifacts
    (check,) = [c for c in report["checks"] if c["name"] == "release"]
    assert "version 1 → 2" in check["message"] and "version 2 → 1" in check["message"]


def test_a_restart_that_closes_the_port_a_lossy_restore_and_a_hollow_drill_are_no_go(tmp_path: Path) -> None:
    app = EXAMPLE / "app.py"
    integrity = """
        integrity:
          rate: 20/s
          write:
            name: put
            request: {method: POST, path: /items, body: "item {uuid}"}
            expect: {status: 201}
            extract: {id: "json:$.id"}
          read: {name: get, request: {path: "/items/{id}"}, expect: {status: 200}}
    """
    plan = f"""
        name: operation-no-go
        system:
          services:
            api:
              command: [python, "{app}", serve, --port, "{{port.api}}", --db, "{{run_dir}}/data.db",
                        --version-file, "{{run_dir}}/version", --pid-file, "{{run_dir}}/api.pid"]
              ready: {{http: "http://127.0.0.1:{{port.api}}/health", timeout: 20s, interval: 100ms}}
              grace: 5s
          base_url: "http://127.0.0.1:{{port.api}}"
        checks:
          naive:
            kind: operation
            load: {{rate: 100/s, requests: [{{name: count, path: /items}}]}}
            before: 1s
            operations:
              - {{name: bounce, restart: api, repeat: 1, pause: 1s}}
              - {{name: broken, command: "sh -c 'echo no such release >&2; exit 3'", repeat: 1, pause: 1s}}
            restore_check:
              backup: [python, "{app}", backup, --db, "{{run_dir}}/data.db", --to, "{{work_dir}}/backup.db"]
              destroy: [rm, -f, "{{run_dir}}/data.db"]
              restore: [python, "{app}", restore, --db, "{{run_dir}}/data.db",
                        --from, "{{work_dir}}/backup.db", --lose-last, "3"]
              writes: 1s
              writes_after_backup: 500ms
{textwrap.indent(textwrap.dedent(integrity), "              ")}
          hollow:
            kind: operation
            restore_check:
              backup: "true"
              destroy: "true"
              restore: "true"
              writes: 500ms
              writes_after_backup: 500ms
{textwrap.indent(textwrap.dedent(integrity), "              ")}
        score: {{minimum: 50}}
    """
    (tmp_path / "gonogo.yaml").write_text(textwrap.dedent(plan).lstrip())
    code, output, report = gonogo_run(tmp_path)
    assert code == 1, output
    metrics, gates = metrics_of(report), gates_of(report)
    # the restart succeeded, but users met a closed port meanwhile
    assert metrics["naive.bounce.success_rate"] == 1 and gates["naive.bounce.success_rate"] == "pass"
    assert metrics["naive.bounce.failed_requests"] > 0 and gates["naive.bounce.failed_requests"] == "fail"
    assert metrics["naive.bounce.downtime"] > 0.05
    assert metrics["naive.broken.success_rate"] == 0 and gates["naive.broken.success_rate"] == "fail"
    assert gates["naive.broken.failed_requests"] == "pass"
    # the restore came from the backup, but without its last three items
    assert metrics["naive.restore.lost_writes"] == 3 and gates["naive.restore.lost_writes"] == "fail"
    assert metrics["naive.restore.verified"] == 1
    # nothing destroyed, nothing restored: every write is there, which proves nothing
    assert metrics["hollow.restore.lost_writes"] == 0
    assert metrics["hollow.restore.verified"] == 0 and gates["hollow.restore.verified"] == "fail"
    messages = {c["name"]: c["message"] for c in report["checks"]}
    assert "broken run 1: exited with code 3" in messages["naive"] and "no such release" in messages["naive"]
    assert "writes made after the backup came back" in messages["hollow"]
    assert "naive.bounce.failed_requests" in output and "naive.restore.lost_writes" in output
