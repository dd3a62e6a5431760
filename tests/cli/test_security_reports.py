"""Findings reach every report: the terminal, summary.md (with their evidence), report.json and
gates.junit.xml, the plan's accepted risks apart with their reason; `gonogo verify` re-renders
the same reports from the store. Real SARIF files from two tools, read by a scanners-only
security check (nothing is started, nothing is sent)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from xml.etree import ElementTree as ET

from cli_support import REPO, gonogo

SARIF = REPO / "tests" / "fixtures" / "security" / "sarif"

PLAN = f"""
name: scanned
checks:
  sec:
    kind: security
    authz: {{enabled: false}}
    probes: {{enabled: false}}
    fuzz: {{enabled: false}}
    secrets: {{enabled: false}}
    scanners:
      - sarif: ["{SARIF / "grype-directory.sarif"}"]
      - sarif: ["{SARIF / "semgrep-include-nosemgrep.sarif"}"]
    ignore:
      - {{rule: "sarif:*/rules.detected-aws-account-id", reason: "a documented example account"}}
"""


def test_findings_and_accepted_risks_are_in_every_report(tmp_path: Path) -> None:
    (tmp_path / "gonogo.yaml").write_text(textwrap.dedent(PLAN).lstrip())
    result = gonogo("run", cwd=tmp_path, timeout=120)
    # the default gates: no critical, no high (the semgrep one is accepted), medium only warns
    assert result.code == 0, result.text
    assert "Findings" in result.out and "CVE-1999-0001" in result.out
    (run_dir,) = (tmp_path / ".gonogo" / "runs").iterdir()
    report = json.loads((run_dir / "report.json").read_text())
    open_findings = [f for f in report["findings"] if not f["ignored_because"]]
    accepted = [f for f in report["findings"] if f["ignored_because"]]
    assert sorted(f["severity"] for f in open_findings) == ["low", "medium"]
    assert [(f["severity"], f["ignored_because"]) for f in accepted] == [
        ("high", "a documented example account")
    ]
    metrics = {m["full_name"]: m["value"] for m in report["metrics"]}
    assert metrics["sec.findings.high"] == 0 and metrics["sec.findings.ignored"] == 1
    assert metrics["sec.findings.medium"] == 1 and metrics["sec.findings.dependencies"] == 2
    gates = {g["metric"]: g["status"] for g in report["gates"]}
    assert gates == {
        "sec.findings.critical": "pass",
        "sec.findings.high": "pass",
        "sec.findings.medium": "warn",
    }

    summary = (run_dir / "summary.md").read_text()
    assert "## Findings" in summary and "### Accepted risks" in summary
    assert "a documented example account" in summary
    assert "### medium:" in summary and "Fix:" in summary  # medium and above are shown whole

    suites = ET.parse(run_dir / "gates.junit.xml").getroot().findall("testsuite")
    findings_suite = next(suite for suite in suites if suite.get("name", "").startswith("gonogo findings"))
    assert (findings_suite.get("tests"), findings_suite.get("failures"), findings_suite.get("skipped")) == (
        "3",
        "1",
        "1",
    )

    verified = gonogo("verify", "latest", cwd=tmp_path, timeout=120)
    assert verified.code == 0, verified.text


def test_a_scanner_that_could_not_run_leaves_its_category_not_measured(tmp_path: Path) -> None:
    plan = (
        textwrap.dedent(PLAN)
        .lstrip()
        .replace(
            f'      - sarif: ["{SARIF / "semgrep-include-nosemgrep.sarif"}"]\n',
            f'      - sarif: ["{SARIF / "semgrep-include-nosemgrep.sarif"}"]\n'
            "      - pip_audit: {report: no-such-report.json}\n",
        )
    )
    (tmp_path / "gonogo.yaml").write_text(
        plan + 'gates:\n  sec.findings.dependencies: "== 0"\n  sec.findings.code: "<= 5"\n'
    )
    result = gonogo("run", cwd=tmp_path, timeout=120)
    assert result.code == 1, result.text
    (run_dir,) = (tmp_path / ".gonogo" / "runs").iterdir()
    report = json.loads((run_dir / "report.json").read_text())
    gates = {g["metric"]: g["status"] for g in report["gates"]}
    # grype's SARIF was read, but pip-audit's report is missing: dependencies are not all known
    assert gates == {"sec.findings.dependencies": "not_measured", "sec.findings.code": "pass"}
    sec = next(check for check in report["checks"] if check["name"] == "sec")
    assert sec["message"].startswith("not measured: scanners:pip-audit")
