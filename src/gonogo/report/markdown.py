"""`summary.md`: the verdict, gates and checks, for CI summaries and pull requests."""

from __future__ import annotations

__all__ = ["render_markdown"]

from gonogo.report.document import (
    COMPARISON_HEADERS,
    RunReport,
    artifact_command,
    comparison_caption,
    comparison_cells,
    gate_threshold,
)
from gonogo.units import format_value

_STATUS = {"pass": "✅ pass", "fail": "❌ fail", "warn": "⚠️ warn", "not_measured": "❔ not measured"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: RunReport) -> str:
    run, verdict = report.run, report.verdict
    lines = [f"# gonogo: {run.name} — **{report.outcome}**", ""]
    lines.append(
        f"Run `{run.id}` · status {run.status} · started {run.started_at:%Y-%m-%d %H:%M:%S} UTC"
        + (f" · commit `{run.git_commit[:12]}`" if run.git_commit else "")
    )
    lines.append("")
    if verdict is None:
        lines += ["No verdict was reached for this run.", ""]
        if run.message:
            lines += [f"> {run.message}", ""]
        return "\n".join(lines)
    score = "not measured" if verdict.score is None else f"{verdict.score:.1f}"
    lines += [f"**Score {score}** (minimum {verdict.minimum_score:g})", "", "## Reasons", ""]
    lines += [f"- {_cell(reason)}" for reason in verdict.reasons]
    lines += _signoffs(report)
    lines += ["", "## Gates", "", "| metric | value | threshold | severity | status | source |"]
    lines.append("|---|---|---|---|---|---|")
    for gate in verdict.gates:
        lines.append(
            f"| `{gate.metric}` | {format_value(gate.value, gate.unit or 'number')} "
            f"| `{_cell(gate_threshold(gate))}` | {gate.severity} | {_STATUS[gate.status]} "
            f"| {_cell(gate.source)} |"
        )
    lines += _baseline(report)
    lines += ["", "## Dimensions", "", "| dimension | score |", "|---|---|"]
    for name, value in verdict.dimensions.items():
        lines.append(f"| {name} | {'not measured' if value is None else f'{value:.1f}'} |")
    lines += ["", "## Checks", "", "| check | kind | status | message |", "|---|---|---|---|"]
    for check in report.checks:
        lines.append(f"| {check.name} | {check.kind} | {check.status} | {_cell(check.message)} |")
    lines += _flaky(report)
    lines += _findings(report)
    lines += _artifacts(report)
    lines += ["", f"Evidence digest `{report.evidence_digest}`: check this report with `gonogo verify`.", ""]
    return "\n".join(lines)


def _baseline(report: RunReport) -> list[str]:
    """The relative gates against the earlier runs they compared with."""
    comparison = report.baseline
    if comparison is None:
        return []
    lines = ["", "## Baseline", "", f"{_cell(comparison_caption(comparison))}."]
    if comparison.runs:
        lines += ["", "Runs: " + ", ".join(f"`{run}`" for run in comparison.runs)]
    if comparison.rows:
        lines += [
            "",
            "| " + " | ".join(COMPARISON_HEADERS) + " |",
            "|" + "---|" * len(COMPARISON_HEADERS),
        ]
        for row in comparison.rows:
            cells = comparison_cells(row)
            cells[0], cells[1] = f"`{cells[0]}`", f"`{cells[1]}`"
            cells[-1] = _STATUS[row.status]
            lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return lines


def _code(text: str) -> str:
    """`text` as inline code, whatever backticks it holds."""
    fence = "`"
    while fence in text:
        fence += "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{_cell(text)}{pad}{fence}"


def _flaky(report: RunReport) -> list[str]:
    """The flaky tests with their outcomes over the runs read (docs/flaky-tests.md)."""
    if not report.flaky_tests:
        return []
    window = report.flaky_window
    lines = [
        "",
        "## Flaky tests",
        "",
        f"Judged over {len(window)} run{'s' if len(window) != 1 else ''} of this plan, oldest first: "
        + ", ".join(f"`{run}`" for run in window)
        + ". ✓ passed, ✗ failed, E error; runs where a test was skipped or missing are left out.",
        "",
        "| check | test | outcomes | flips | flip rate | reruns | why |",
        "|---|---|---|---|---|---|---|",
    ]
    for test in report.flaky_tests:
        rate = "—" if test.flip_rate is None else f"{test.flip_rate:.0%}"
        lines.append(
            f"| {_cell(test.check)} | {_code(test.test)} | {test.symbols} | {test.flips} | {rate} "
            f"| {test.reruns} | {_cell(test.reason)} |"
        )
    return lines


DETAILED_SEVERITIES = ("critical", "high", "medium")


def _findings(report: RunReport) -> list[str]:
    """Every finding in a table; those at medium or above again with their evidence."""
    if not report.findings:
        return []
    risks = report.accepted_risks
    lines = ["", "## Findings", "", "| severity | category | check | operation | finding | source |"]
    lines.append("|---|---|---|---|---|---|")
    for finding in report.open_findings:
        lines.append(
            f"| {finding.severity} | {finding.category} | {finding.check} | `{_cell(finding.operation)}` "
            f"| {_cell(finding.title)} | {_cell(finding.source)} |"
        )
    if risks:
        lines += ["", "### Accepted risks", "", "Set aside by the plan's `ignore:`, not counted.", ""]
        lines += ["| severity | check | operation | finding | reason |", "|---|---|---|---|---|"]
        lines += [
            f"| {risk.severity} | {risk.check} | `{_cell(risk.operation)}` | {_cell(risk.title)} "
            f"| {_cell(risk.ignored_because)} |"
            for risk in risks
        ]
    for finding in report.open_findings:
        if finding.severity not in DETAILED_SEVERITIES:
            continue
        lines += ["", f"### {finding.severity}: {_cell(finding.title)}", ""]
        where = f"`{_cell(finding.operation)}` · {finding.category} · rule `{finding.rule}`"
        lines.append(f"{where} · check {finding.check}")
        for label, text in (("Request", finding.request), ("Response", finding.response)):
            if text:
                lines += ["", f"{label}:", "", _fenced(text)]
        if finding.reproduction:
            lines += ["", "Reproduce:", "", _fenced(finding.reproduction, "sh")]
        if finding.fix:
            lines += ["", f"Fix: {finding.fix}"]
    return lines


def _fenced(text: str, language: str = "") -> str:
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}{language}\n{text.rstrip()}\n{fence}"


def _artifacts(report: RunReport) -> list[str]:
    if not report.artifacts:
        return []
    lines = [
        "",
        "## Artifacts",
        "",
        "The evidence behind the metrics, kept in the store. List them with "
        f"`gonogo artifacts {report.run.id}`; write one out with the command beside it.",
        "",
        "| check | artifact | size | get it |",
        "|---|---|---|---|",
    ]
    for artifact in report.artifacts:
        size = format_value(artifact.size, "bytes")
        command = artifact_command(report.run.id, artifact)
        lines.append(
            f"| {artifact.check or '(run)'} | `{_cell(artifact.name)}` | {size} | `{_cell(command)}` |"
        )
    return lines


def _signoffs(report: RunReport) -> list[str]:
    status = report.signoff
    if status is None:
        return []
    lines = [
        "",
        "## Sign-offs",
        "",
        f"Required: {', '.join(status.required)}, each with confidence at least {status.min_confidence}"
        + (f"; **pending: {', '.join(status.pending)}**" if status.pending else "; all given"),
        "",
    ]
    if not report.signoffs:
        return lines
    lines += ["| role | by | confidence | when (UTC) | note | counts |", "|---|---|---|---|---|---|"]
    why_not = dict(status.not_counted)
    for signoff in report.signoffs:
        who = signoff.user + (f" ({signoff.git_name} <{signoff.git_email}>)" if signoff.git_name else "")
        if status.counted.get(signoff.role) == signoff:
            counts = "yes"
        elif signoff in why_not:
            counts = f"no: {why_not[signoff]}"
        else:
            counts = "superseded by a later one"
        lines.append(
            f"| {signoff.role} | {_cell(who)} | {signoff.confidence} | {signoff.signed_at:%Y-%m-%d %H:%M:%S} "
            f"| {_cell(signoff.note)} | {_cell(counts)} |"
        )
    return lines
