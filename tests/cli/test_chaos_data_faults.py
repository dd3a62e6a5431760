"""A chaos experiment with a database-era fault through the real `gonogo` command: the service's
own small disk (`data:`) filled with `disk_full`, under load and integrity writes."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from chaos_support import INTEGRITY, STORE, metrics_of, report_of
from cli_support import gonogo, write_plan

pytestmark = [
    pytest.mark.usefixtures("no_leftovers"),
    pytest.mark.skipif(os.geteuid() != 0, reason="mounting a data volume needs root"),
]


def test_a_full_data_volume_refuses_writes_loses_none_and_is_unmounted_after_the_run(tmp_path: Path) -> None:
    plan_text = textwrap.dedent(
        f"""
        name: data-volume
        system:
          services:
            store:
              command: [python, "{STORE}", --port, "{{port.store}}", --data, "{{run_dir}}/store-data/items"]
              ready: {{http: "http://127.0.0.1:{{port.store}}/health", timeout: 20s, interval: 100ms}}
              grace: 2s
              data: {{path: "{{run_dir}}/store-data", size: 8MiB}}
          base_url: "http://127.0.0.1:{{port.store}}"
        checks:
          full:
            kind: chaos
            load: {{rate: 20/s, requests: [{{name: health, path: /health}}]}}
            hypothesis:
              interval: 250ms
              probes:
                - {{name: health, http: /health, status: 200, latency: "< 2s"}}
            faults:
              - {{disk_full: store}}
            before: 1s
            duration: 3s
            recovery: {{timeout: 20s, sustain: 1s}}
        INTEGRITY
        gates:
          full.integrity.lost: "== 0"
          full.rollback.clean: "== 1"
        score:
          minimum: 50
        """
    )
    integrity = textwrap.indent(INTEGRITY.strip(), "    ") + "\n"
    plan = write_plan(tmp_path, plan_text.replace("INTEGRITY\n", integrity))
    result = gonogo("run", cwd=tmp_path, timeout=240)
    assert result.code == 0, result.text
    assert "data volume: tmpfs of 8.0 MiB at" in result.text and "unmounted" in result.text
    metrics = metrics_of(report_of(plan))
    assert metrics["full.fault_applied"] == 1 and metrics["full.rollback.clean"] == 1
    assert metrics["full.integrity.lost"] == 0 and metrics["full.integrity.acknowledged"] >= 15
    # The writes during the fault were refused (507, "No space left"): not acknowledged.
    assert metrics["full.integrity.attempted"] >= metrics["full.integrity.acknowledged"] + 30
    # Unmounted before the run's scratch folder was deleted: no mount left anywhere under it.
    assert str(tmp_path) not in Path("/proc/self/mountinfo").read_text()
    assert list((tmp_path / ".gonogo" / "runs").glob("*/scratch")) == []
