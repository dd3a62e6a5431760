"""Scanners' findings as evidence: a corpus of real SARIF files from nine tools counted against
the counts written down by reading them (tests/fixtures/security/sarif/expected.json), real
Bandit and pip-audit reports, Bandit run for real on a seeded file, and pip-audit's runs
through stand-in executables (its vulnerability service cannot be reached from here)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from recording_context import MakeContext, RecordingContext

from gonogo.checks.security.findings import SEVERITIES, PartResult
from gonogo.checks.security.scanners import collect_scanners
from gonogo.checks.security.settings import BanditSource, PipAuditSource, ScannerSource

FIXTURES = Path(__file__).parents[2] / "fixtures" / "security"
SARIF = FIXTURES / "sarif"
EXPECTED: dict[str, dict[str, Any]] = {
    name: value
    for name, value in json.loads((SARIF / "expected.json").read_text()).items()
    if not name.startswith("_")
}
REAL_PIP_AUDIT = FIXTURES / "pip_audit" / "secure-coding-review-task.json"


def _plan_with(ctx: RecordingContext, *files: Path, folder: str = "reports") -> None:
    (ctx.plan_dir / folder).mkdir(exist_ok=True)
    for path in files:
        shutil.copyfile(path, ctx.plan_dir / folder / path.name)


def _only(results: list[PartResult]) -> PartResult:
    assert len(results) == 1
    return results[0]


def _severities(result: PartResult) -> dict[str, int]:
    counts = Counter(finding.severity for finding in result.findings)
    return {severity: counts.get(severity, 0) for severity in SEVERITIES}


# -- SARIF: the corpus --------------------------------------------------------------------


def test_every_corpus_file_has_its_expected_counts() -> None:
    files = {path.name for path in SARIF.iterdir() if path.name not in ("expected.json", "README.md")}
    assert files == set(EXPECTED)
    tools = {tool for expected in EXPECTED.values() for tool in expected.get("tools", [])}
    assert len(tools) >= 5


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sarif_corpus_counts(name: str, recording_context: MakeContext) -> None:
    expected = EXPECTED[name]
    ctx = recording_context()
    _plan_with(ctx, SARIF / name)
    result = _only(collect_scanners([ScannerSource(sarif=[f"reports/{name}"])], ctx))
    assert result.part == "scanners:sarif"
    # the report is kept as evidence, byte for byte, even when it cannot be counted
    assert ctx.artifact(f"scanners/reports/{name}") == (SARIF / name).read_bytes()
    if "not_measured" in expected:
        assert result.not_measured is not None
        assert f"reports/{name}" in result.not_measured and expected["not_measured"] in result.not_measured
        assert result.findings == []
        return
    assert result.not_measured is None, result.not_measured
    assert _severities(result) == expected["findings"]
    counts = result.tally.counts
    assert counts["files"] == 1 and counts["results"] == expected["results"]
    for name_in_tally in ("suppressed", "baseline_absent", "not_failures"):
        assert counts[name_in_tally] == expected[name_in_tally], name_in_tally
    assert Counter(finding.category for finding in result.findings) == expected["categories"]
    assert {finding.source for finding in result.findings} == set(expected["tools"])
    for finding in result.findings:
        assert finding.rule.startswith(f"sarif:{finding.source}/")
        assert finding.title and finding.operation and finding.request and finding.response
        assert finding.reproduction.startswith("jq '.runs[") and f"reports/{name}" in finding.reproduction
        assert finding.fix


def test_several_files_through_globs_make_one_part(recording_context: MakeContext) -> None:
    ctx = recording_context()
    names = ["trivy-alpine-310.sarif", "semgrep-include-nosemgrep.sarif", "qodana-baseline.sarif.json"]
    _plan_with(ctx, *(SARIF / name for name in names))
    source = ScannerSource(sarif=["reports/*.sarif", "reports/qodana-*.json"])
    result = _only(collect_scanners([source], ctx))
    assert result.not_measured is None
    assert result.tally.counts["files"] == 3 and result.tally.counts["results"] == 4 + 2 + 4
    assert _severities(result) == {"critical": 0, "high": 1, "medium": 7, "low": 0, "info": 0}
    assert {finding.source for finding in result.findings} == {"Trivy", "Semgrep OSS", "qodana-intellij"}
    assert sorted(name.split("/")[-1] for name in ctx.artifact_names) == sorted(names)


def test_finding_fields_of_a_real_result(recording_context: MakeContext) -> None:
    ctx = recording_context()
    _plan_with(ctx, SARIF / "semgrep-include-nosemgrep.sarif", SARIF / "trivy-alpine-310.sarif")
    semgrep, trivy = collect_scanners(
        [
            ScannerSource(sarif=["reports/semgrep-include-nosemgrep.sarif"]),
            ScannerSource(sarif=["reports/trivy-alpine-310.sarif"]),
        ],
        ctx,
    )
    assert (semgrep.part, trivy.part) == ("scanners:sarif", "scanners:sarif_2")
    [finding] = semgrep.findings  # the other result carries `# nosemgrep`: suppressed in source
    assert finding.rule == "sarif:Semgrep OSS/rules.detected-aws-account-id"
    assert finding.operation == "targets/basic/regex-nosemgrep.txt:3"  # uriBaseId %SRCROOT% left out
    assert (
        finding.request
        == "AWS Account ID detected\ntargets/basic/regex-nosemgrep.txt:3: aws_account_id:123456789012"
    )
    assert finding.severity == "high" and "the rule's default level error" in finding.response
    assert finding.reproduction.startswith("jq '.runs[0].results[1]' reports/semgrep-include-nosemgrep.sarif")
    assert any("suppressed" in note and "inSource" in note for note in semgrep.notes)
    # two packages with one CVE in one image: two findings that the check's dedup keeps apart
    assert len({finding.key() for finding in trivy.findings}) == 4
    cve = trivy.findings[0]
    assert cve.title == "CVE-2019-1549: openssl: information disclosure in fork()"
    assert "security-severity 5.3 on the rule" in cve.response
    assert cve.fix.endswith("(https://avd.aquasec.com/nvd/cve-2019-1549)")


def test_a_secret_scanners_snippet_is_not_copied(recording_context: MakeContext) -> None:
    ctx = recording_context()
    _plan_with(ctx, SARIF / "gitleaks-simple.sarif")
    [finding] = _only(
        collect_scanners([ScannerSource(sarif=["reports/gitleaks-simple.sarif"])], ctx)
    ).findings
    assert "a secret" not in finding.request and "<redacted" in finding.request
    assert finding.operation == "auth.py:1" and finding.severity == "medium"
    assert "level warning (SARIF's default" in finding.response  # no level, rule not described


def test_message_strings_and_arguments_make_the_message(recording_context: MakeContext) -> None:
    ctx = recording_context()
    _plan_with(ctx, SARIF / "spmi-sensitive-file.sarif")
    [finding] = _only(
        collect_scanners([ScannerSource(sarif=["reports/spmi-sensitive-file.sarif"])], ctx)
    ).findings
    assert finding.request == (
        "'SEC103_024.MicrosoftSerializedCertificateStoreFile_default.sst' is an exposed "
        "Microsoft Serialized Certificate Store (which contains private keys)."
    )


def _write_sarif(ctx: RecordingContext, document: Any, name: str = "scan.sarif") -> ScannerSource:
    (ctx.plan_dir / name).write_text(json.dumps(document) if not isinstance(document, str) else document)
    return ScannerSource(sarif=[name])


def _run(results: list[Any], **tool: Any) -> dict[str, Any]:
    driver = tool.pop("driver", {"name": "Example"})
    return {"version": "2.1.0", "runs": [{"tool": {"driver": driver, **tool}, "results": results}]}


def test_sarif_spec_details(recording_context: MakeContext) -> None:
    """What the corpus does not show: suppression statuses, a score on the result, a rule in
    an extension reached by toolComponent, a manifest location, level none."""
    rules = [
        {"id": "X1", "properties": {"security-severity": "9.0"}},
        {"id": "X2", "defaultConfiguration": {"level": "note"}, "properties": {"security-severity": 6.9}},
    ]
    extension = {"name": "example/queries", "rules": rules}
    at = {"physicalLocation": {"artifactLocation": {"uri": "app/main.py"}, "region": {"startLine": 3}}}
    in_requirements = {"physicalLocation": {"artifactLocation": {"uri": "service/requirements-prod.txt"}}}
    results = [
        {"ruleId": "X1", "rule": {"index": 0, "toolComponent": {"index": 0}}, "locations": [at]},  # critical
        {"rule": {"id": "X2", "index": 1, "toolComponent": {"name": "example/queries"}}},  # medium (6.9)
        {"ruleId": "X2", "properties": {"security-severity": "7.0"}, "locations": [in_requirements]},  # high
        {"ruleId": "X1", "suppressions": [{"kind": "external", "status": "underReview"}]},  # counts
        {"ruleId": "X1", "suppressions": [{"kind": "external", "status": "rejected"}]},  # counts
        {"ruleId": "X1", "suppressions": [{"kind": "external", "status": "accepted"}]},  # hidden
        {"ruleId": "X1", "suppressions": [{"kind": "inSource", "status": "rejected"}, {"kind": "external"}]},
        {"ruleId": "Y", "level": "none", "message": {"text": "just so"}},  # info
        {"ruleId": "Y", "kind": "review", "level": "none"},
        {"ruleId": "X1", "baselineState": "absent"},
    ]
    ctx = recording_context()
    result = _only(collect_scanners([_write_sarif(ctx, _run(results, extensions=[extension]))], ctx))
    assert result.not_measured is None
    severities = [finding.severity for finding in result.findings]
    assert severities == ["critical", "medium", "high", "critical", "critical", "info"]
    assert result.findings[0].operation == "app/main.py:3" and result.findings[0].category == "code"
    assert result.findings[2].category == "dependencies"  # a requirements file
    assert "suppression underReview (still counted)" in result.findings[3].response
    counts = result.tally.counts
    assert (counts["results"], counts["suppressed"], counts["not_failures"], counts["baseline_absent"]) == (
        10,
        2,
        1,
        1,
    )


def test_a_run_without_results_is_no_analysis(recording_context: MakeContext) -> None:
    ctx = recording_context()
    source = _write_sarif(ctx, {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "Spmi"}}}]})
    result = _only(collect_scanners([source], ctx))
    assert (
        result.not_measured is not None
        and "no run in scan.sarif has a `results` array" in result.not_measured
    )
    clean = _write_sarif(ctx, _run([]), "clean.sarif")
    result = _only(collect_scanners([clean], ctx))
    assert result.not_measured is None and result.findings == [] and result.tally.counts["runs"] == 1


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("", "scan.sarif: the file is empty; expected a SARIF 2.1.0 report"),
        ('{"version": "2.1.0", "runs": [', "scan.sarif: the JSON ends before the document is complete"),
        ("<sarif/>", "scan.sarif:1:1: not valid JSON"),
        ({"version": "2.0.0", "runs": []}, "scan.sarif: not SARIF 2.1.0 (`version` '2.0.0')"),
        ({"runs": []}, "scan.sarif: not SARIF 2.1.0 (no `version`)"),
        ({"version": "2.1.0"}, "scan.sarif: `runs` is missing"),
        ({"version": "2.1.0", "runs": [{"tool": {}}]}, "scan.sarif: runs[0].tool.driver is not an object"),
        (_run(["oops"]), "scan.sarif: runs[0].results[0] is not an object"),
        (_run([{"kind": "failed"}]), "scan.sarif: runs[0].results[0].kind is 'failed'; expected one of fail"),
        (_run([{"level": "fatal"}]), "scan.sarif: runs[0].results[0]: the result's level is 'fatal'"),
        (
            _run([{"suppressions": [{"status": "ok"}]}]),
            "scan.sarif: runs[0].results[0].suppressions[0].status is 'ok'",
        ),
    ],
)
def test_malformed_sarif_is_not_measured(content: Any, reason: str, recording_context: MakeContext) -> None:
    ctx = recording_context()
    result = _only(collect_scanners([_write_sarif(ctx, content)], ctx))
    assert result.not_measured is not None and result.not_measured.startswith(reason), result.not_measured
    assert result.findings == []


def test_missing_files_are_not_measured(recording_context: MakeContext) -> None:
    ctx = recording_context()
    _plan_with(ctx, SARIF / "grype-directory.sarif")
    result = _only(collect_scanners([ScannerSource(sarif=["reports/*.sarif", "scans/*.sarif"])], ctx))
    assert result.not_measured == (
        f"no file matches 'scans/*.sarif' (in {ctx.plan_dir}); expected a SARIF 2.1.0 report"
    )
    result = _only(collect_scanners([ScannerSource(sarif=["{plan_dir}/reports/trivy.sarif"])], ctx))
    assert result.not_measured == "reports/trivy.sarif: no such file; expected a SARIF 2.1.0 report"


# -- Bandit -------------------------------------------------------------------------------


def test_a_real_bandit_report(recording_context: MakeContext) -> None:
    ctx = recording_context()
    _plan_with(ctx, FIXTURES / "bandit" / "chaoslib.json")
    result = _only(
        collect_scanners([ScannerSource(bandit=BanditSource(report="reports/chaoslib.json"))], ctx)
    )
    assert result.part == "scanners:bandit" and result.not_measured is None
    # 5 LOW, 1 MEDIUM at LOW confidence (lowered to low), 1 HIGH
    assert _severities(result) == {"critical": 0, "high": 1, "medium": 0, "low": 6, "info": 0}
    counts = result.tally.counts
    assert (counts["results"], counts["files"], counts["lines"], counts["nosec"]) == (7, 28, 4857, 0)
    shell = next(finding for finding in result.findings if finding.rule == "bandit:B602")
    assert shell.operation == "chaoslib/provider/process.py:59" and shell.category == "code"
    assert shell.reproduction == "bandit chaoslib/provider/process.py -t B602"
    assert "b602_subprocess_popen_with_shell_equals_true" in shell.fix and "CWE-78" in shell.response
    timeout = next(finding for finding in result.findings if finding.rule == "bandit:B113")
    assert timeout.severity == "low" and "confidence LOW (lowered one step)" in timeout.response
    assert (
        ctx.artifact("scanners/reports/chaoslib.json") == (FIXTURES / "bandit" / "chaoslib.json").read_bytes()
    )


SEEDED = """import subprocess


def run(command):
    subprocess.call(command, shell=True)


def evaluate(text):
    return eval(text)


def check(value):
    assert value
    return subprocess.call(value, shell=True)  # nosec
"""


def test_bandit_run_for_real_on_a_seeded_file(recording_context: MakeContext) -> None:
    ctx = recording_context()
    (ctx.plan_dir / "app").mkdir()
    (ctx.plan_dir / "app" / "service.py").write_text(SEEDED)
    result = _only(collect_scanners([ScannerSource(bandit=BanditSource(run=["app"]))], ctx))
    assert result.not_measured is None, result.not_measured
    found = {(finding.rule, finding.operation, finding.severity) for finding in result.findings}
    assert ("bandit:B602", "app/service.py:5", "high") in found  # shell=True
    assert ("bandit:B307", "app/service.py:9", "medium") in found  # eval
    assert ("bandit:B101", "app/service.py:13", "low") in found  # assert
    assert not any(finding.operation == "app/service.py:14" for finding in result.findings)  # nosec
    assert result.tally.counts["nosec"] == 1 and result.tally.counts["files"] == 1
    [command] = ctx.commands
    assert command.argv[-6:] == ["-r", "app", "-f", "json", "-o", str(ctx.work_dir / "bandit.json")]
    assert command.returncode == 1  # findings, not a failure
    assert json.loads(ctx.artifact("scanners/bandit.json"))["results"]


@pytest.fixture
def nothing_installed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No scanner on PATH, and none importable by this interpreter."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name in ("bandit", "pip_audit") else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


@pytest.mark.usefixtures("nothing_installed")
def test_scanners_not_installed_are_not_measured(recording_context: MakeContext) -> None:
    ctx = recording_context()
    (ctx.plan_dir / "requirements.txt").write_text("flask==0.12.2\n")
    bandit, audit = collect_scanners(
        [
            ScannerSource(bandit=BanditSource(run=["."])),
            ScannerSource(pip_audit=PipAuditSource(requirements="requirements.txt")),
        ],
        ctx,
    )
    assert bandit.not_measured is not None and bandit.not_measured.startswith("Bandit is not installed")
    assert audit.not_measured is not None and audit.not_measured.startswith("pip-audit is not installed")
    assert ctx.commands == []


def test_bad_bandit_input_is_not_measured(recording_context: MakeContext) -> None:
    ctx = recording_context()
    result = _only(collect_scanners([ScannerSource(bandit=BanditSource(run=["src"]))], ctx))
    assert result.not_measured == "bandit run: src does not exist; expected a file or folder to scan"
    (ctx.plan_dir / "bandit.json").write_text(
        json.dumps({"results": [{"filename": "a.py", "test_id": "B1"}]})
    )
    result = _only(collect_scanners([ScannerSource(bandit=BanditSource(report="bandit.json"))], ctx))
    assert (
        result.not_measured == "bandit.json: results[0].issue_severity is None; expected HIGH, MEDIUM or LOW"
    )
    (ctx.plan_dir / "bandit.json").write_text(json.dumps(_run([])))
    result = _only(collect_scanners([ScannerSource(bandit=BanditSource(report="bandit.json"))], ctx))
    assert (
        result.not_measured
        == "bandit.json: no `results` array; expected a Bandit JSON report (bandit -f json)"
    )


# -- pip-audit ----------------------------------------------------------------------------


def test_a_real_pip_audit_report(recording_context: MakeContext) -> None:
    ctx = recording_context()
    _plan_with(ctx, REAL_PIP_AUDIT)
    source = ScannerSource(pip_audit=PipAuditSource(report=f"reports/{REAL_PIP_AUDIT.name}"))
    result = _only(collect_scanners([source], ctx))
    assert result.part == "scanners:pip-audit" and result.not_measured is None
    assert _severities(result)["high"] == 15 and len(result.findings) == 15
    assert {finding.category for finding in result.findings} == {"dependencies"}
    counts = result.tally.counts
    assert (counts["results"], counts["dependencies"], counts["skipped"]) == (15, 65, 0)
    per_package = Counter(finding.operation for finding in result.findings)
    assert per_package == {
        "pip==18.1": 4, "requests==2.31.0": 2, "setuptools==40.6.2": 3, "urllib3==1.26.20": 1,
        "werkzeug==2.2.3": 4, "zipp==3.15.0": 1,
    }  # fmt: skip
    multipart = next(finding for finding in result.findings if finding.rule == "pip-audit:PYSEC-2023-221")
    assert multipart.fix == "Upgrade werkzeug to 2.3.8 or 3.0.1 (or later)."
    assert multipart.request.startswith(
        "werkzeug==2.2.3\nWerkzeug is a comprehensive WSGI web application library."
    )
    assert "echo 'werkzeug==2.2.3'" in multipart.reproduction


def test_the_older_list_format_and_a_clean_report(recording_context: MakeContext) -> None:
    ctx = recording_context()
    listed = json.loads(REAL_PIP_AUDIT.read_text())["dependencies"]
    (ctx.plan_dir / "old.json").write_text(json.dumps(listed))
    _plan_with(ctx, FIXTURES / "pip_audit" / "shopsecure-clean.json")
    old, clean = collect_scanners(
        [
            ScannerSource(pip_audit=PipAuditSource(report="old.json")),
            ScannerSource(pip_audit=PipAuditSource(report="reports/shopsecure-clean.json")),
        ],
        ctx,
    )
    assert (old.part, clean.part) == ("scanners:pip-audit", "scanners:pip-audit_2")
    assert old.not_measured is None and len(old.findings) == 15
    assert clean.not_measured is None and clean.findings == [] and clean.tally.counts["dependencies"] == 42


def test_a_report_that_audited_nothing_is_not_measured(recording_context: MakeContext) -> None:
    ctx = recording_context()
    _plan_with(ctx, FIXTURES / "pip_audit" / "unreachable-service.json")
    source = ScannerSource(pip_audit=PipAuditSource(report="reports/unreachable-service.json"))
    result = _only(collect_scanners([source], ctx))
    assert result.not_measured == (
        "reports/unreachable-service.json: pip-audit could not audit any of the 4 dependencies, so nothing "
        "was measured (is its vulnerability service reachable?): jinja2 (Dependency not found on PyPI and "
        "could not be audited: jinja2 (2.10))"
    )


def _stand_in(bin_dir: Path, body: str) -> None:
    """A `pip-audit` on PATH: a real process standing in for the tool, whose service is
    unreachable from here."""
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "pip-audit"
    script.write_text(f"#!{sys.executable}\nimport sys, shutil\nargs = sys.argv[1:]\n{body}\n")
    script.chmod(0o755)


def test_pip_audit_run_on_a_requirements_file(
    recording_context: MakeContext, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _stand_in(
        tmp_path / "bin",
        f"assert args[:2] == ['-r', 'requirements.txt'], args\n"
        f"shutil.copyfile({str(REAL_PIP_AUDIT)!r}, args[args.index('-o') + 1])\nsys.exit(1)",
    )
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    ctx = recording_context()
    (ctx.plan_dir / "requirements.txt").write_text("werkzeug==2.2.3\n")
    result = _only(
        collect_scanners([ScannerSource(pip_audit=PipAuditSource(requirements="requirements.txt"))], ctx)
    )
    assert result.not_measured is None and len(result.findings) == 15
    [command] = ctx.commands
    assert command.argv == [
        str(tmp_path / "bin" / "pip-audit"), "-r", "requirements.txt", "-f", "json",
        "-o", str(ctx.work_dir / "pip-audit.json"), "--progress-spinner", "off",
    ]  # fmt: skip
    assert ctx.artifact("scanners/pip-audit.json") == REAL_PIP_AUDIT.read_bytes()


def test_pip_audit_that_cannot_reach_its_service(
    recording_context: MakeContext, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    error = (
        "requests.exceptions.ConnectionError: HTTPSConnectionPool(host='api.osv.dev', port=443): "
        "Max retries exceeded with url: /v1/query"
    )
    _stand_in(tmp_path / "bin", f"print('Traceback (most recent call last):')\nprint({error!r})\nsys.exit(1)")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    ctx = recording_context()
    (ctx.plan_dir / "requirements.txt").write_text("werkzeug==2.2.3\n")
    result = _only(
        collect_scanners([ScannerSource(pip_audit=PipAuditSource(requirements="requirements.txt"))], ctx)
    )
    assert result.not_measured is not None
    assert result.not_measured.startswith(
        "pip-audit exited with code 1 without writing its report pip-audit.json"
    )
    assert result.not_measured.endswith(f"its last output line: {error}")
    missing = _only(collect_scanners([ScannerSource(pip_audit=PipAuditSource(requirements="reqs.txt"))], ctx))
    assert missing.not_measured == "pip-audit run: reqs.txt is not a file; expected a requirements file"
