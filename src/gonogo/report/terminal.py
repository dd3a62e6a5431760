"""The terminal summary: the gate table and the verdict, with rich."""

from __future__ import annotations

__all__ = ["print_summary"]

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from gonogo.report.document import RunReport
from gonogo.units import format_value

_STATUS_STYLE = {
    "pass": "[green]pass[/]",
    "fail": "[bold red]FAIL[/]",
    "warn": "[yellow]warn[/]",
    "not_measured": "[magenta]not measured[/]",
}


def gate_table(report: RunReport) -> Table:
    table = Table(title="Gates", title_justify="left", expand=False, show_lines=False)
    for column in ("metric", "value", "threshold", "severity", "status", "source"):
        table.add_column(column, overflow="fold", no_wrap=column in ("value", "status"))
    for gate in report.verdict.gates if report.verdict else []:
        table.add_row(
            gate.metric,
            format_value(gate.value, gate.unit or "number"),
            gate.expr,
            gate.severity,
            _STATUS_STYLE[gate.status],
            gate.source,
        )
    return table


def print_summary(report: RunReport, console: Console) -> None:
    verdict = report.verdict
    console.print(gate_table(report))
    if verdict is None:
        console.print(Panel(f"[bold]no verdict[/]: {report.run.message}", title=report.run.id))
        return
    dimensions = "  ".join(
        f"{name} {'—' if value is None else f'{value:.0f}'}" for name, value in verdict.dimensions.items()
    )
    score = "not measured" if verdict.score is None else f"{verdict.score:.1f}"
    colour = "green" if verdict.decision == "GO" else "red"
    body = [
        f"[bold {colour}]{verdict.decision}[/]   score {score} (minimum {verdict.minimum_score:g})",
        f"[dim]{dimensions}[/]",
        "",
        *(f"• {reason}" for reason in verdict.reasons),
    ]
    console.print(Panel("\n".join(body), title=f"run {report.run.id}", border_style=colour))
