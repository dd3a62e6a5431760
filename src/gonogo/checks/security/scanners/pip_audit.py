"""pip-audit's JSON report, read as findings; or pip-audit run by gonogo on a requirements file.

Both shapes are read: `{"dependencies": [...], "fixes": [...]}` and the older bare list of
dependencies. Each known vulnerability of each dependency is a finding in the `dependencies`
category, on `package==version`, with "upgrade to <fix_versions>" as its fix.

Severity: pip-audit gives none (no score, no level), and its aliases (CVE, GHSA ids) would need
a lookup on the network to get one. Every vulnerability is therefore **high**: a published flaw
in code the service ships, which we do not guess lower without a score. A risk the team accepts
is recorded with an `ignore:` entry and its reason, which the report shows.

A dependency pip-audit could not audit (`skip_reason`) is named in the notes; when it could
audit none of them (its vulnerability service unreachable: PyPI's per-version JSON API or OSV),
the part is *not measured*, never a clean result.
"""

from __future__ import annotations

__all__ = ["PipAuditError", "collect_pip_audit", "read_pip_audit"]

from pathlib import Path
from typing import Any

from gonogo.checks.base import CheckContext
from gonogo.checks.security.findings import Finding, PartResult, Tally
from gonogo.checks.security.scanners._reports import (
    ReportError,
    ScannerRun,
    collect_json_report,
    display,
    excerpt,
    first_line,
    resolve,
    run_scanner,
    scanner_command,
)
from gonogo.checks.security.settings import PipAuditSource
from gonogo.errors import GonogoError

_WHAT = "a pip-audit JSON report (pip-audit -f json)"
_LISTED_SKIPS = 5


class PipAuditError(GonogoError):
    """The document is not a pip-audit JSON report gonogo can count, or audited nothing."""


def collect_pip_audit(source: PipAuditSource, ctx: CheckContext, part: str, label: str) -> PartResult:
    """Read the report `source` names, or run pip-audit on its requirements file first."""

    def path() -> Path:
        if source.requirements is not None:
            return _run(source.requirements, ctx, label)
        assert source.report is not None  # the settings hold one or the other
        return resolve(source.report, ctx)

    return collect_json_report(part, path, ctx, what=_WHAT, parse=read_pip_audit, errors=(PipAuditError,))


def _run(requirements: str, ctx: CheckContext, label: str) -> Path:
    command = scanner_command("pip-audit", "pip_audit")
    if command is None:
        raise ReportError(
            "pip-audit is not installed: no `pip-audit` on PATH and no `pip_audit` module for this "
            "Python; install it (pip install pip-audit) or give a report with `pip_audit: {report: FILE}`"
        )
    full = resolve(requirements, ctx)
    if not full.is_file():
        raise ReportError(f"pip-audit run: {display(full, ctx)} is not a file; expected a requirements file")
    output = ctx.work_dir / f"{label}.json"
    # pip-audit exits 1 both when it finds vulnerabilities and when it fails: the report it
    # wrote, or not, tells them apart.
    argv = [*command, "-r", display(full, ctx), "-f", "json", "-o", str(output), "--progress-spinner", "off"]
    run_scanner(ScannerRun("pip-audit", argv, output, frozenset({0, 1})), ctx, name=label)
    return output


def read_pip_audit(document: Any, report: str) -> tuple[list[Finding], Tally, list[str]]:
    """The findings, tally and notes of a parsed pip-audit JSON report (either shape)."""
    dependencies = document.get("dependencies") if isinstance(document, dict) else document
    if not isinstance(dependencies, list):
        raise PipAuditError(f"{report}: no `dependencies` array; expected {_WHAT}")
    tally = Tally()
    tally.add("reports")
    findings: list[Finding] = []
    skipped: list[str] = []
    for number, dependency in enumerate(dependencies):
        where = f"{report}: dependencies[{number}]"
        if not isinstance(dependency, dict) or not isinstance(dependency.get("name"), str):
            raise PipAuditError(f"{where} is not an object with a `name`; expected {_WHAT}")
        tally.add("dependencies")
        if dependency.get("skip_reason"):
            skipped.append(f"{dependency['name']} ({first_line(str(dependency['skip_reason']), 200)})")
            continue
        vulns = dependency.get("vulns") or []
        if not isinstance(vulns, list):
            raise PipAuditError(f"{where}.vulns is not an array; expected {_WHAT}")
        for vuln_number, vuln in enumerate(vulns):
            findings.append(
                _finding(dependency, vuln, f"dependencies[{number}].vulns[{vuln_number}]", report)
            )
    tally.add("results", len(findings))
    tally.add("skipped", len(skipped))
    if dependencies and len(skipped) == len(dependencies):
        raise PipAuditError(
            f"{report}: pip-audit could not audit any of the {len(skipped)} dependencies, so nothing was "
            f"measured (is its vulnerability service reachable?): {skipped[0]}"
        )
    notes = []
    if skipped:
        more = f" and {len(skipped) - _LISTED_SKIPS} more" if len(skipped) > _LISTED_SKIPS else ""
        notes.append(f"{report}: pip-audit could not audit {', '.join(skipped[:_LISTED_SKIPS])}{more}")
    if not dependencies:
        notes.append(f"{report}: the report lists no dependency")
    return findings, tally, notes


def _finding(dependency: dict[str, Any], vuln: Any, position: str, report: str) -> Finding:
    if not isinstance(vuln, dict) or not isinstance(vuln.get("id"), str):
        raise PipAuditError(f"{report}: {position} is not an object with an `id`; expected {_WHAT}")
    name, version, vuln_id = dependency["name"], str(dependency.get("version") or "?"), vuln["id"]
    aliases = [str(alias) for alias in vuln.get("aliases") or []]
    fixes = [str(fix) for fix in vuln.get("fix_versions") or []]
    description = str(vuln.get("description") or "")
    also = f" ({', '.join(aliases)})" if aliases else ""
    pinned = f"{name}=={version}"
    fixed = ", ".join(fixes) or "no version yet"
    fix = (
        f"Upgrade {name} to {' or '.join(fixes)} (or later)."
        if fixes
        else f"No fixed version of {name} is known: replace or remove it, or accept the risk with `ignore:`."
    )
    return Finding(
        rule=f"pip-audit:{vuln_id}",
        title=excerpt(f"{pinned}: {vuln_id}{also} {first_line(description, 120)}", 200),
        severity="high",
        category="dependencies",
        operation=pinned,
        request=excerpt(f"{pinned}\n{description}" if description else pinned),
        response=f"pip-audit: {vuln_id}{also} affects {pinned}; fixed in {fixed}; {report} {position}",
        reproduction=f"echo '{pinned}' > /tmp/req.txt && pip-audit --no-deps --disable-pip -r /tmp/req.txt",
        fix=fix,
        source="pip-audit",
        details={
            "report": report,
            "package": name,
            "version": version,
            "id": vuln_id,
            "aliases": aliases,
            "fix_versions": fixes,
        },
    )
