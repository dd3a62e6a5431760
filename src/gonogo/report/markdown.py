"""`summary.md`: the verdict, gates and checks, for CI summaries and pull requests."""

from __future__ import annotations

__all__ = ["render_markdown"]

from gonogo.report.document import RunReport
from gonogo.units import format_value

_STATUS = {"pass": "✅ pass", "fail": "❌ fail", "warn": "⚠️ warn", "not_measured": "❔ not measured"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: RunReport) -> str:
    run, verdict = report.run, report.verdict
    lines = [f"# gonogo: {run.name} — **{report.decision}**", ""]
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
    lines += ["", "## Gates", "", "| metric | value | threshold | severity | status | source |"]
    lines.append("|---|---|---|---|---|---|")
    for gate in verdict.gates:
        lines.append(
            f"| `{gate.metric}` | {format_value(gate.value, gate.unit or 'number')} "
            f"| `{_cell(gate.expr)}` | {gate.severity} | {_STATUS[gate.status]} | {_cell(gate.source)} |"
        )
    lines += ["", "## Dimensions", "", "| dimension | score |", "|---|---|"]
    for name, value in verdict.dimensions.items():
        lines.append(f"| {name} | {'not measured' if value is None else f'{value:.1f}'} |")
    lines += ["", "## Checks", "", "| check | kind | status | message |", "|---|---|---|---|"]
    for check in report.checks:
        lines.append(f"| {check.name} | {check.kind} | {check.status} | {_cell(check.message)} |")
    lines.append("")
    return "\n".join(lines)
