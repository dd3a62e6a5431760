"""Bandit's JSON report, read as findings; or Bandit run by gonogo on the plan's paths.

Each entry of `results` is a finding in the `code` category, at Bandit's `issue_severity`
(HIGH → high, MEDIUM → medium, LOW → low), one step lower when Bandit's own confidence is LOW
(a likely false positive should not weigh like a sure one). Lines marked `# nosec` are already
left out by Bandit; `metrics._totals` gives what was scanned (files, lines, `nosec`), kept in
the tally. Files Bandit could not parse (`errors`) are named in the notes.

`run:` runs `bandit -r PATHS -f json -o WORK_DIR/<label>.json` in the plan's folder (exit code 1
only means findings); without Bandit installed the part is *not measured*.
"""

from __future__ import annotations

__all__ = ["BanditError", "collect_bandit", "read_bandit"]

from pathlib import Path
from typing import Any

from gonogo.checks.base import CheckContext
from gonogo.checks.security.findings import Finding, PartResult, Severity, Tally
from gonogo.checks.security.scanners._reports import (
    ReportError,
    ScannerRun,
    collect_json_report,
    display,
    excerpt,
    resolve,
    run_scanner,
    scanner_command,
)
from gonogo.checks.security.settings import BanditSource
from gonogo.errors import GonogoError
from gonogo.inputs import finite

_WHAT = "a Bandit JSON report (bandit -f json)"
_SEVERITIES: dict[str, Severity] = {"HIGH": "high", "MEDIUM": "medium", "LOW": "low", "UNDEFINED": "info"}
_LOWER: dict[Severity, Severity] = {
    "critical": "high",
    "high": "medium",
    "medium": "low",
    "low": "info",
    "info": "info",
}
_CONFIDENCES = ("HIGH", "MEDIUM", "LOW", "UNDEFINED")
_LISTED_ERRORS = 5


class BanditError(GonogoError):
    """The document is not a Bandit JSON report gonogo can count."""


def collect_bandit(source: BanditSource, ctx: CheckContext, part: str, label: str) -> PartResult:
    """Read the report `source` names, or run Bandit on its paths first."""

    def path() -> Path:
        if source.run is not None:
            return _run(source.run, ctx, label)
        assert source.report is not None  # the settings hold one or the other
        return resolve(source.report, ctx)

    return collect_json_report(part, path, ctx, what=_WHAT, parse=read_bandit, errors=(BanditError,))


def _run(paths: list[str], ctx: CheckContext, label: str) -> Path:
    command = scanner_command("bandit", "bandit")
    if command is None:
        raise ReportError(
            "Bandit is not installed: no `bandit` on PATH and no `bandit` module for this Python; "
            "install it (pip install bandit) or give a report with `bandit: {report: FILE}`"
        )
    targets = []
    for path in paths:
        full = resolve(path, ctx)
        if not full.exists():
            raise ReportError(
                f"bandit run: {display(full, ctx)} does not exist; expected a file or folder to scan"
            )
        targets.append(display(full, ctx))
    output = ctx.work_dir / f"{label}.json"
    # Exit code 1 only means that Bandit found something.
    run = ScannerRun(
        "Bandit", [*command, "-r", *targets, "-f", "json", "-o", str(output)], output, frozenset({0, 1})
    )
    run_scanner(run, ctx, name=label)
    return output


def read_bandit(document: Any, report: str) -> tuple[list[Finding], Tally, list[str]]:
    """The findings, tally and notes of a parsed Bandit JSON report."""
    if not isinstance(document, dict) or not isinstance(document.get("results"), list):
        raise BanditError(f"{report}: no `results` array; expected {_WHAT}")
    tally = Tally()
    tally.add("reports")
    notes: list[str] = []
    _scanned(document.get("metrics"), tally)
    findings = [_finding(item, number, report) for number, item in enumerate(document["results"])]
    tally.add("results", len(findings))
    errors = document.get("errors") or []
    if isinstance(errors, list) and errors:
        named = [
            str(error.get("filename", error)) if isinstance(error, dict) else str(error) for error in errors
        ]
        more = f" and {len(named) - _LISTED_ERRORS} more" if len(named) > _LISTED_ERRORS else ""
        notes.append(
            f"{report}: Bandit could not scan {len(named)} file(s): {', '.join(named[:_LISTED_ERRORS])}{more}"
        )
        tally.add("errors", len(named))
    return findings, tally, notes


def _scanned(metrics: Any, tally: Tally) -> None:
    """Files and lines scanned, `# nosec` lines and skipped tests, from `metrics`."""
    if not isinstance(metrics, dict):
        return
    tally.add("files", sum(1 for name in metrics if name != "_totals"))
    totals = metrics.get("_totals")
    if isinstance(totals, dict):
        for name, key in (("lines", "loc"), ("nosec", "nosec"), ("skipped_tests", "skipped_tests")):
            value = finite(totals.get(key))
            if value is not None:
                tally.add(name, int(value))


def _finding(item: Any, number: int, report: str) -> Finding:
    where = f"{report}: results[{number}]"
    if not isinstance(item, dict):
        raise BanditError(f"{where} is not an object; expected {_WHAT}")
    severity_name = item.get("issue_severity")
    confidence = item.get("issue_confidence")
    if severity_name not in _SEVERITIES:
        raise BanditError(f"{where}.issue_severity is {severity_name!r}; expected HIGH, MEDIUM or LOW")
    if confidence not in _CONFIDENCES:
        raise BanditError(f"{where}.issue_confidence is {confidence!r}; expected HIGH, MEDIUM or LOW")
    filename, test_id = item.get("filename"), item.get("test_id")
    if not isinstance(filename, str) or not isinstance(test_id, str):
        raise BanditError(f"{where} has no `filename` or `test_id`; expected {_WHAT}")
    line = item.get("line_number")
    operation = f"{filename}:{line}" if isinstance(line, int) else filename
    severity = _SEVERITIES[severity_name]
    lowered = confidence == "LOW" and severity != "info"
    if lowered:
        severity = _LOWER[severity]
    test_name = str(item.get("test_name") or "")
    text = str(item.get("issue_text") or test_name)
    cwe: dict[str, Any] = item["issue_cwe"] if isinstance(item.get("issue_cwe"), dict) else {}
    cwe_text = f", CWE-{cwe['id']}" if cwe.get("id") else ""
    more_info = str(item.get("more_info") or "")
    basis = f"severity {severity_name}, confidence {confidence}" + (" (lowered one step)" if lowered else "")
    return Finding(
        rule=f"bandit:{test_id}",
        title=excerpt(f"{test_id} {test_name}: {text}", 200),
        severity=severity,
        category="code",
        operation=operation,
        request=excerpt(f"{text}\n{item.get('code') or ''}"),
        response=f"Bandit {test_id}: {basis}{cwe_text}; {report} results[{number}]",
        reproduction=f"bandit {filename} -t {test_id}",
        fix=f"{text}: see {more_info}" if more_info else f"Fix what Bandit {test_id} ({test_name}) reports.",
        source="Bandit",
        details={
            "report": report,
            "result": number,
            "test_id": test_id,
            "issue_severity": severity_name,
            "issue_confidence": confidence,
            "cwe": cwe.get("id"),
            "parameter": str(item.get("col_offset", "")),
        },
    )
