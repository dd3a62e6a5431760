"""The terminal summary: the gate table and the verdict, with rich."""

from __future__ import annotations

__all__ = ["print_summary"]

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from gonogo.report.document import (
    COMPARISON_HEADERS,
    RunReport,
    comparison_caption,
    comparison_cells,
    gate_threshold,
)
from gonogo.units import format_value

_STATUS_STYLE = {
    "pass": "[green]pass[/]",
    "fail": "[bold red]FAIL[/]",
    "warn": "[yellow]warn[/]",
    "not_measured": "[magenta]not measured[/]",
}


def gate_table(report: RunReport, width: int) -> Table:
    # Sources can be long commands; a narrow terminal leaves them to the reports.
    with_source = width >= 110
    table = Table(title="Gates", title_justify="left", expand=False)
    gates = report.verdict.gates if report.verdict else []
    # a metric name folded mid-token reads as two names: the source column gives way first
    longest = max((len(gate.metric) for gate in gates), default=6)
    table.add_column("metric", overflow="fold", min_width=min(longest, width // 2))
    for column in ("value", "threshold", "severity", "status"):
        table.add_column(column, no_wrap=True)
    if with_source:
        table.add_column("source", no_wrap=True, overflow="ellipsis", max_width=60)
    for gate in gates:
        row = [
            gate.metric,
            format_value(gate.value, gate.unit or "number"),
            gate_threshold(gate, full=False),
            gate.severity,
            _STATUS_STYLE[gate.status],
        ]
        table.add_row(*row, *([gate.source] if with_source else []))
    return table


def baseline_table(report: RunReport) -> Table:
    """The relative gates against the baseline: which runs, p-value, shift with its CI, effect size."""
    comparison = report.baseline
    assert comparison is not None
    table = Table(title="Baseline", title_justify="left", expand=False)
    table.caption = escape(comparison_caption(comparison))
    for header in COMPARISON_HEADERS:
        table.add_column(header, overflow="fold")
    for row in comparison.rows:
        cells = [escape(cell) for cell in comparison_cells(row)]
        cells[-1] = _STATUS_STYLE[row.status]
        table.add_row(*cells)
    return table


SHOWN_FINDINGS = 15


def findings_table(report: RunReport) -> Table:
    table = Table(title="Findings", title_justify="left", expand=False)
    table.add_column("severity", no_wrap=True)
    table.add_column("category", no_wrap=True)
    table.add_column("operation", overflow="fold")
    table.add_column("finding", overflow="fold")
    for finding in report.open_findings[:SHOWN_FINDINGS]:
        style = _SEVERITY_STYLE.get(finding.severity, "")
        severity = f"[{style}]{finding.severity}[/]" if style else finding.severity
        table.add_row(severity, finding.category, escape(finding.operation), escape(finding.title))
    if len(report.open_findings) > SHOWN_FINDINGS:
        more = len(report.open_findings) - SHOWN_FINDINGS
        table.caption = f"… and {more} more: all of them, with evidence, in summary.md and report.json"
    return table


_SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow"}

SHOWN_FLAKY = 15


def flaky_table(report: RunReport) -> Table:
    """The flaky tests: their outcomes over the runs read (oldest first), flip rate and reruns."""
    runs = len(report.flaky_window)
    table = Table(
        title=f"Flaky tests (over {runs} run{'s' if runs != 1 else ''}, oldest first)",
        title_justify="left",
        expand=False,
    )
    table.add_column("check", no_wrap=True)
    table.add_column("test", overflow="fold")
    table.add_column("outcomes", overflow="fold")
    table.add_column("flip rate", no_wrap=True, justify="right")
    table.add_column("reruns", no_wrap=True, justify="right")
    for test in report.flaky_tests[:SHOWN_FLAKY]:
        rate = "—" if test.flip_rate is None else f"{test.flip_rate:.0%}"
        table.add_row(escape(test.check), escape(test.test), test.symbols, rate, str(test.reruns))
    if len(report.flaky_tests) > SHOWN_FLAKY:
        more = len(report.flaky_tests) - SHOWN_FLAKY
        table.caption = f"… and {more} more: all of them in summary.md and report.json"
    return table


def print_summary(report: RunReport, console: Console) -> None:
    verdict = report.verdict
    if report.open_findings:
        console.print(findings_table(report))
    if report.flaky_tests:
        console.print(flaky_table(report))
    console.print(gate_table(report, console.width))
    if report.baseline is not None:
        console.print(baseline_table(report))
    if verdict is None:
        console.print(Panel(f"[bold]no verdict[/]: {report.run.message}", title=report.run.id))
        return
    dimensions = "  ".join(
        f"{name} {'—' if value is None else f'{value:.0f}'}" for name, value in verdict.dimensions.items()
    )
    score = "not measured" if verdict.score is None else f"{verdict.score:.1f}"
    pending = report.signoff is not None and not report.signoff.complete
    colour = "red" if verdict.decision != "GO" else "yellow" if pending else "green"
    body = [
        f"[bold {colour}]{escape(report.outcome)}[/]   score {score} (minimum {verdict.minimum_score:g})",
        f"[dim]{dimensions}[/]",
        "",
        *(f"• {reason}" for reason in verdict.reasons),
        *signoff_lines(report),
    ]
    console.print(Panel("\n".join(body), title=f"run {report.run.id}", border_style=colour))


def signoff_lines(report: RunReport) -> list[str]:
    """The required sign-offs: who gave each, and what is still pending."""
    status = report.signoff
    if status is None:
        return []
    lines = ["", f"sign-offs (confidence at least {status.min_confidence}):"]
    for role in status.required:
        given = status.counted.get(role)
        if given is None:
            lines.append(f"  [yellow]{escape(role)}: pending[/]")
        else:
            lines.append(
                f"  [green]{escape(role)}[/]: {escape(given.user)}, confidence {given.confidence}, "
                f"{given.signed_at:%Y-%m-%d %H:%M} UTC" + (f" — {escape(given.note)}" if given.note else "")
            )
    for signoff, why in status.not_counted:
        lines.append(
            f"  [dim]{escape(signoff.role)} by {escape(signoff.user)} does not count: {escape(why)}[/]"
        )
    return lines
