"""`gonogo run` with a `chaostoolkit` check: the real runner, a real service behind gonogo's fault
proxy (declared in the plan), and an experiment that adds latency to it with chaostoolkit-toxiproxy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psutil
from chaostoolkit_helpers import FIXTURES


def test_gonogo_run_with_a_chaostoolkit_check(tmp_path: Path) -> None:
    plan_dir = tmp_path / "plan"
    shutil.copytree(FIXTURES / "plan", plan_dir)
    env = dict(os.environ)
    # the service runs `python`: the one gonogo runs with
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(
        [sys.executable, "-m", "gonogo", "run"],
        cwd=plan_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (run_dir,) = (plan_dir / ".gonogo" / "runs").iterdir()
    report = json.loads((run_dir / "report.json").read_text())
    assert report["verdict"]["decision"] == "GO"
    gates = {gate["metric"]: gate for gate in report["gates"]}
    assert gates["latency.completed"]["value"] == 1
    assert gates["latency.deviated"]["value"] == 0
    assert gates["latency.activity.slow-home-page.duration"]["value"] >= 0.3  # the toxic acted
    metrics = {metric["full_name"]: metric for metric in report["metrics"]}
    assert metrics["latency.rollbacks"]["value"] == 1 and metrics["latency.rollbacks.failed"]["value"] == 0
    assert metrics["latency.steady_state.after.met"]["dimension"] == "reliability"
    # nothing the run started is left: not the service, not chaos
    leftovers = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if str(plan_dir) in " ".join(process.info["cmdline"] or []):
                leftovers.append(process.info["cmdline"])
        except psutil.Error:
            continue
    assert leftovers == []
