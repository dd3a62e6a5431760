"""Plans for the chaos tests: the small store service (services/store.py) under experiments."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from gonogo import plugins
from gonogo.plan import load_plan
from gonogo.plan.names import SERVICE_PREFIX, PlanNames, matches, service_metric_patterns

STORE = Path(__file__).parent / "services" / "store.py"


def store_plan(
    directory: Path,
    checks: str,
    gates: str,
    *,
    store_flags: str = "",
    restart: str = "on-failure",
    data: str = "{run_dir}/items",
    clock: str = "real",
    dep_protocol: str = "tcp",
) -> Path:
    """A plan with the store service (restarted by gonogo), a dependency behind the fault proxy,
    and the given checks and gates (YAML, indented as under `checks:` / `gates:`)."""
    system = textwrap.dedent(
        f"""
        name: chaos-test
        system:
          proxies:
            dep:
              listen: "127.0.0.1:{{port.dep_proxy}}"
              upstream: "127.0.0.1:{{port.dep}}"
              protocol: {dep_protocol}
          services:
            dep:
              command: [python, -m, http.server, "{{port.dep}}", --bind, 127.0.0.1]
              ready: {{http: "http://127.0.0.1:{{port.dep}}/", timeout: 20s}}
              grace: 2s
            store:
              command: [python, "{STORE}", --port, "{{port.store}}", --data, "{data}",
                        --dependency, "http://127.0.0.1:{{port.dep_proxy}}/" {store_flags}]
              depends_on: [dep]
              ready: {{http: "http://127.0.0.1:{{port.store}}/health", timeout: 20s, interval: 100ms}}
              restart: {restart}
              clock: {clock}
              restart_backoff: 200ms
              grace: 2s
          base_url: "http://127.0.0.1:{{port.store}}"
        score:
          minimum: 50
        """
    ).lstrip()
    text = (
        system
        + "checks:\n"
        + textwrap.indent(textwrap.dedent(checks).strip(), "  ")
        + "\ngates:\n"
        + textwrap.indent(textwrap.dedent(gates).strip(), "  ")
        + "\n"
    )
    path = directory / "gonogo.yaml"
    path.write_text(text)
    return path


INTEGRITY = """
integrity:
  rate: 20/s
  write:
    name: put
    request: {method: POST, path: /items, body: "item {uuid}"}
    expect: {status: 201}
    extract: {id: "json:$.id"}
  read:
    name: get
    request: {path: "/items/{id}"}
    expect: {status: 200}
"""


def report_of(plan: Path) -> dict[str, Any]:
    (run_dir,) = sorted((plan.parent / ".gonogo" / "runs").iterdir())[-1:]
    report: dict[str, Any] = json.loads((run_dir / "report.json").read_text())
    _declared(plan, report)
    return report


def _declared(path: Path, report: dict[str, Any]) -> None:
    """Every metric of the run is one its check kind declares for its settings, or
    `gonogo validate` would refuse a gate on it (chaos runs only through the runner, so this
    is its side of the `recording_context` check of tests/checks)."""
    plan = load_plan(path)
    services = service_metric_patterns(
        plan.system.services, [s for s, v in plan.system.services.items() if v.metrics]
    )
    for metric in report["metrics"]:
        check, _, name = metric["full_name"].partition(".")
        if check == SERVICE_PREFIX:
            assert matches(name, services), f"{metric['full_name']} is not a service metric validate knows"
            continue
        spec = plan.checks[check]
        declared = plugins.load_kind(spec.kind).metric_names(spec.settings, PlanNames())
        assert declared is None or matches(name, declared), f"{metric['full_name']} is not declared"


def metrics_of(report: dict[str, Any]) -> dict[str, float]:
    return {m["full_name"]: m["value"] for m in report["metrics"]}
