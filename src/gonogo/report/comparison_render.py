"""`gonogo compare` in the terminal (rich), as Markdown, JSON (docs/compare.md) and HTML."""

from __future__ import annotations

__all__ = [
    "COMPARE_FORMATS",
    "SCHEMA",
    "comparison_html",
    "comparison_json",
    "comparison_markdown",
    "print_comparison",
]

import json
import re
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import jinja2
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gonogo.report.comparison import (
    Comparison,
    GateChange,
    LatencyChange,
    MetricChange,
    RunSide,
    StepTally,
    TestChange,
)
from gonogo.units import format_p_value, format_value

SCHEMA = "gonogo.compare/1"
SHOWN_METRICS = 30  # in the terminal: the metrics that moved most


# -- shared wording -----------------------------------------------------------------------------


def _side_line(label: str, side: RunSide) -> str:
    score = f", score {side.score:.1f}" if side.score is not None else ""
    return f"{label}: run {side.id} ({side.plan}), {side.status}, {side.decision or 'no verdict'}{score}"


def _seconds(value: float) -> str:
    """A latency with three significant digits: a shift of 1.06 ms against 1.18 ms must not
    both read 1.1 ms."""
    magnitude = abs(value)
    if magnitude == 0:
        return "0 s"
    if magnitude < 1e-3:
        return f"{value * 1e6:.3g} µs"
    if magnitude < 1:
        return f"{value * 1e3:.3g} ms"
    return f"{value:.3g} s"


def _signed(value: float, unit: str) -> str:
    shown = _seconds(value) if unit == "seconds" else format_value(value, unit)
    return ("+" if value > 0 else "") + shown


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:+.1f}%"


def _interval(change: LatencyChange) -> str:
    return f"[{_signed(change.low, 'seconds')}, {_signed(change.high, 'seconds')}]"


def _started(side: RunSide) -> str:
    """When the run started, as the other reports show it: `2026-12-07 13:07:02 UTC`."""
    try:
        moment = datetime.fromisoformat(side.started_at)
    except ValueError:
        return side.started_at
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def _gate_side(gate: GateChange, side: str) -> str:
    """A gate in one run: `fail (80/s)`, `not measured`, or `absent` (no such gate in that run)."""
    status, value = (gate.a_status, gate.a_value) if side == "a" else (gate.b_status, gate.b_value)
    if status is None:
        return "absent"
    if status == "not_measured":
        return "not measured"
    return f"{status} ({format_value(value, gate.unit or 'number')})"


def _flaky(test: TestChange) -> str:
    """Which run judged the test flaky, and why; empty when neither did."""
    return "; ".join(f"flaky in {run}: {why}" for run, why in test.flaky.items())


def _p_value(change: LatencyChange) -> str:
    """The p-value and, when it differs, Holm's adjustment of it, which decides."""
    p = format_p_value(change.p_value)
    adjusted = format_p_value(change.p_adjusted)
    return p if adjusted == p else f"{p} (Holm {adjusted})"


def _verdict_line(comparison: Comparison) -> str:
    functional = len(comparison.functional_differences)
    flaky = len(comparison.flaky_tests)
    parts = [
        "functional parity" if not functional else f"{functional} functional difference(s)",
        *([f"{flaky} flaky test(s) differ, not counted"] if flaky else []),
        f"{len(comparison.slower)} slower",
        f"{len(comparison.faster)} faster",
        f"{len(comparison.latencies) - len(comparison.slower) - len(comparison.faster)} unchanged latencies",
        f"{len(comparison.changed_gates)} gate(s) changed status",
    ]
    return "; ".join(parts)


def _moved_metrics(comparison: Comparison) -> list[MetricChange]:
    """Metrics measured in one run only, or that moved by more than the tolerance, biggest first."""
    moved = [
        metric
        for metric in comparison.metrics
        if (metric.a is None) != (metric.b is None)
        or (metric.relative is not None and abs(metric.relative) > comparison.tolerance)
    ]
    return sorted(
        moved, key=lambda metric: -abs(metric.relative or 0) if metric.relative is not None else -1e9
    )


def _tally(tally: StepTally | None) -> str:
    return "—" if tally is None else tally.describe()


def _statuses(tally: StepTally | None) -> str:
    return "—" if tally is None else ", ".join(sorted(tally.statuses)) or "—"


# -- terminal -----------------------------------------------------------------------------------

_CLASS_STYLE = {
    "slower": "[bold red]slower[/]",
    "faster": "[green]faster[/]",
    "significant but within tolerance": "[yellow]significant but within tolerance[/]",
    "no significant difference": "no significant difference",
}


def print_comparison(comparison: Comparison, console: Console) -> None:
    console.print(f"[bold]{escape(_side_line('A', comparison.a))}[/]", soft_wrap=True)
    console.print(f"[bold]{escape(_side_line('B', comparison.b))}[/]", soft_wrap=True)
    for warning in comparison.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    if comparison.steps:
        table = Table(title="Journeys (functional parity)", title_justify="left")
        for column in ("check", "journey", "step", "A", "B", "status A", "status B", "differences"):
            table.add_column(column, overflow="fold")
        for step in comparison.steps:
            table.add_row(
                escape(step.check), escape(step.journey), escape(step.step),
                _tally(step.a), _tally(step.b), _statuses(step.a), _statuses(step.b),
                "[bold red]" + escape("; ".join(step.differences)) + "[/]" if step.differences else "same",
            )  # fmt: skip
        console.print(table)
    if comparison.tests_compared or comparison.tests:
        if comparison.tests:
            table = Table(
                "check", "test", "A", "B", "flaky", title="Tests whose outcome differs", title_justify="left"
            )
            for test in comparison.tests:
                table.add_row(
                    escape(test.check), escape(test.test), test.a or "—", test.b or "—",
                    f"[yellow]{escape(_flaky(test))}[/] (not counted)" if test.flaky else "—",
                )  # fmt: skip
            console.print(table)
        else:
            console.print(f"tests: the same {comparison.tests_compared} test(s) fail and pass in both runs")
    if comparison.latencies:
        table = Table(
            title=f"Latency (B vs A; {comparison.confidence:.0%} interval, "
            f"tolerance {comparison.tolerance:.1%} of A's median)",
            title_justify="left",
        )
        for column in ("check", "distribution", "n A / B", "median A", "median B", "shift", "interval",
                       "shift %", "p", "P(B>A)", "result"):  # fmt: skip
            table.add_column(column, overflow="fold")
        for change in comparison.latencies:
            table.add_row(
                escape(change.check), escape(change.distribution), f"{change.a_count} / {change.b_count}",
                _seconds(change.a_median), _seconds(change.b_median), _signed(change.shift, "seconds"),
                _interval(change), _percent(change.relative_shift), _p_value(change),
                f"{change.effect_size:.2f}", _CLASS_STYLE[change.classification],
            )  # fmt: skip
        console.print(table)
    changed_gates = comparison.changed_gates
    if changed_gates:
        table = Table("gate", "threshold", "A", "B", title="Gates whose status differs", title_justify="left")
        for gate in changed_gates:
            table.add_row(
                escape(gate.metric), escape(gate.expr), _gate_side(gate, "a"), _gate_side(gate, "b")
            )
        console.print(table)
    moved = _moved_metrics(comparison)
    if moved:
        table = Table(
            "metric", "A", "B", "difference", "relative",
            title=f"Metrics that moved by more than {comparison.tolerance:.1%} "
            f"(of {len(comparison.metrics)})",
            title_justify="left",
        )  # fmt: skip
        for metric in moved[:SHOWN_METRICS]:
            table.add_row(
                escape(metric.name),
                format_value(metric.a, metric.unit),
                format_value(metric.b, metric.unit),
                _signed(metric.difference, metric.unit) if metric.difference is not None else "—",
                _percent(metric.relative),
            )
        console.print(table)
        if len(moved) > SHOWN_METRICS:
            console.print(
                f"… and {len(moved) - SHOWN_METRICS} more (every metric: --format md, json or html)"
            )
    for note in comparison.notes:
        console.print(f"[dim]note: {escape(note)}[/]", soft_wrap=True)
    for line in comparison.functional_differences:
        console.print(f"[bold red]✗[/] {escape(line)}", soft_wrap=True)
    for test in comparison.flaky_tests:
        console.print(f"[yellow]~[/] {escape(test.describe())}: not counted", soft_wrap=True)
    for change in comparison.slower:
        console.print(
            f"[bold red]✗[/] {escape(change.check)}.{escape(change.distribution)} is slower by "
            f"{_signed(change.shift, 'seconds')} ({_percent(change.relative_shift)}), "
            f"interval {_interval(change)}",
            soft_wrap=True,
        )
    style = "bold red" if comparison.regressed else "green"
    console.print(f"[{style}]{escape(_verdict_line(comparison))}[/]", soft_wrap=True)


# -- Markdown -----------------------------------------------------------------------------------


# `<` that could open an HTML tag, comment or declaration: `<script`, `</style`, `<!--`, `<?`
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")


def _md(text: object) -> str:
    """A table cell: pipes and line breaks would break the table, and a `<` that could open a
    tag is backslash-escaped (shown as `<` once rendered); no HTML entity, so the Markdown reads
    as it renders (`< 1e-300`)."""
    return (
        _TAG_START.sub(r"\\<", str(text).replace("\\", "\\\\"))
        .replace("|", "\\|")
        .replace("\n", " ")
        .replace("`", "\\`")
    )


def comparison_markdown(comparison: Comparison) -> str:
    lines = [f"# gonogo compare: {_md(comparison.a.id)} → {_md(comparison.b.id)}", ""]
    lines += [f"- {_md(_side_line('A', comparison.a))}", f"- {_md(_side_line('B', comparison.b))}"]
    lines += [f"- **{_md(_verdict_line(comparison))}**", ""]
    for warning in comparison.warnings:
        lines.append(f"> **warning:** {_md(warning)}")
    if comparison.warnings:
        lines.append("")
    differences = comparison.functional_differences
    lines += ["## Functional parity", ""]
    if differences:
        lines += [f"- ✗ {_md(line)}" for line in differences]
    else:
        lines.append("No functional difference.")
    lines += [f"- ~ {_md(test.describe())}: not counted" for test in comparison.flaky_tests]
    lines.append("")
    if comparison.steps:
        lines += [
            "| check | journey | step | A | B | status A | status B | differences |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for step in comparison.steps:
            cells = [step.check, step.journey, step.step, _tally(step.a), _tally(step.b),
                     _statuses(step.a), _statuses(step.b), "; ".join(step.differences) or "same"]  # fmt: skip
            lines.append("| " + " | ".join(_md(cell) for cell in cells) + " |")
        lines.append("")
    if comparison.tests_compared:
        lines.append(
            f"{comparison.tests_compared} test(s) in both runs' reports; {len(comparison.tests)} differ."
        )
        lines.append("")
    if comparison.tests:
        lines += ["| check | test | A | B | flaky (not counted) |", "|---|---|---|---|---|"]
        for test in comparison.tests:
            cells = [test.check, test.test, test.a or "absent", test.b or "absent", _flaky(test) or "—"]
            lines.append("| " + " | ".join(_md(cell) for cell in cells) + " |")
        lines.append("")
    lines += [
        "## Latency",
        "",
        "Mann-Whitney U and the Hodges-Lehmann shift of B - A with its "
        f"{comparison.confidence:.0%} interval; slower or faster only when the interval excludes 0, "
        "the p-value adjusted for every distribution compared (Holm) is below "
        f"{1 - comparison.confidence:.2g}, and the shift exceeds {comparison.tolerance:.1%} of A's median.",
        "",
    ]
    if comparison.latencies:
        lines += [
            "| check | distribution | n A / B | median A | median B | shift | interval | shift % | p "
            "| P(B>A) | result |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for change in comparison.latencies:
            cells = [
                change.check, change.distribution, f"{change.a_count} / {change.b_count}",
                _seconds(change.a_median), _seconds(change.b_median), _signed(change.shift, "seconds"),
                _interval(change), _percent(change.relative_shift), _p_value(change),
                f"{change.effect_size:.2f}",
                f"**{change.classification}**" if change.classification in ("slower", "faster")
                else change.classification,
            ]  # fmt: skip
            lines.append(
                "| "
                + " | ".join(_md(cell) if not str(cell).startswith("**") else cell for cell in cells)
                + " |"
            )
    else:
        lines.append("No latency distribution in both runs.")
    lines.append("")
    changed = comparison.changed_gates
    lines += ["## Gates whose status differs", ""]
    if changed:
        lines += ["| gate | threshold | A | B |", "|---|---|---|---|"]
        for gate in changed:
            cells = [gate.metric, gate.expr, _gate_side(gate, "a"), _gate_side(gate, "b")]
            lines.append("| " + " | ".join(_md(cell) for cell in cells) + " |")
    else:
        lines.append(f"None of the {len(comparison.gates)} gates changed status.")
    lines.append("")
    changed_metrics = [metric for metric in comparison.metrics if metric.changed]
    lines += [
        "## Metrics",
        "",
        f"{len(changed_metrics)} of {len(comparison.metrics)} differ (unchanged ones left out).",
        "",
    ]
    if changed_metrics:
        lines += ["| metric | A | B | difference | relative |", "|---|---|---|---|---|"]
        for metric in changed_metrics:
            difference = _signed(metric.difference, metric.unit) if metric.difference is not None else "—"
            cells = [metric.name, format_value(metric.a, metric.unit), format_value(metric.b, metric.unit),
                     difference, _percent(metric.relative)]  # fmt: skip
            lines.append("| " + " | ".join(_md(cell) for cell in cells) + " |")
        lines.append("")
    if comparison.notes:
        lines += ["## Not compared", ""] + [f"- {_md(note)}" for note in comparison.notes] + [""]
    return "\n".join(lines)


# -- JSON ---------------------------------------------------------------------------------------


def _tally_json(tally: StepTally | None) -> dict[str, Any] | None:
    if tally is None:
        return None
    return {**asdict(tally), "outcome": tally.outcome}


def comparison_json(comparison: Comparison) -> str:
    document = {
        "schema": SCHEMA,
        "a": asdict(comparison.a),
        "b": asdict(comparison.b),
        "confidence": comparison.confidence,
        "tolerance": comparison.tolerance,
        "regressed": comparison.regressed,
        "summary": {
            "functional_differences": len(comparison.functional_differences),
            "flaky_tests": len(comparison.flaky_tests),
            "slower": len(comparison.slower),
            "faster": len(comparison.faster),
            "latencies_compared": len(comparison.latencies),
            "gates_changed": len(comparison.changed_gates),
        },
        "warnings": comparison.warnings,
        "notes": comparison.notes,
        "functional": {
            "differences": comparison.functional_differences,
            "steps": [
                {
                    "check": step.check,
                    "journey": step.journey,
                    "step": step.step,
                    "a": _tally_json(step.a),
                    "b": _tally_json(step.b),
                    "differences": step.differences,
                }
                for step in comparison.steps
            ],
            "tests_compared": comparison.tests_compared,
            "tests": [asdict(test) for test in comparison.tests],
        },
        "latency": [
            {
                "metric": f"{change.check}.{change.distribution}",
                **asdict(change),
                "relative_shift": change.relative_shift,
            }
            for change in comparison.latencies
        ],
        "gates": [{**asdict(gate), "changed": gate.a_status != gate.b_status} for gate in comparison.gates],
        "metrics": [
            {**asdict(metric), "difference": metric.difference, "relative": metric.relative}
            for metric in comparison.metrics
        ],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


# -- HTML ---------------------------------------------------------------------------------------


# autoescape: test, journey and step names and response shapes come from the system under test
_environment = jinja2.Environment(
    loader=jinja2.PackageLoader("gonogo.report", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def comparison_html(comparison: Comparison) -> str:
    template = _environment.get_template("compare.html.j2")
    return template.render(
        c=comparison,
        verdict_line=_verdict_line(comparison),
        differences=comparison.functional_differences,
        changed_gates=comparison.changed_gates,
        changed_metrics=[metric for metric in comparison.metrics if metric.changed],
        started=_started,
        gate_side=_gate_side,
        flaky=_flaky,
        latencies=[
            {
                "change": change,
                "a_median": _seconds(change.a_median),
                "b_median": _seconds(change.b_median),
                "shift": _signed(change.shift, "seconds"),
                "interval": _interval(change),
                "percent": _percent(change.relative_shift),
                "p": _p_value(change),
            }
            for change in comparison.latencies
        ],
        tally=_tally,
        statuses=_statuses,
        value=format_value,
        signed=_signed,
        percent=_percent,
    )


COMPARE_FORMATS: dict[str, Callable[[Comparison], str]] = {
    "md": comparison_markdown,
    "json": comparison_json,
    "html": comparison_html,
}
