"""Threshold expressions of gates, as people write them: `"< 2s"`, `">= 99%"`, `"== 0"`.

A relative form compares with a baseline: `"<= +10% baseline"` (at most 10% above it).
A timeframe applies it to a per-second series, in the spirit of Taurus:
`"< 500ms for 10s"` fails when the series is in breach for 10 consecutive seconds.
"""

from __future__ import annotations

__all__ = ["Breach", "Threshold", "parse_threshold"]

import difflib
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from gonogo.units import Unit, format_value, parse_duration, parse_quantity

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
_EXPRESSION = re.compile(r"^\s*(<=|>=|==|!=|<|>)\s*(.+?)\s*$")
_RELATIVE = re.compile(r"^([-+]\d+(?:\.\d+)?)\s*%\s+baseline$")
_RELATIVE_FORM = "OP +N% baseline or OP -N% baseline, the sign required, e.g. '<= +10% baseline'"
_TIMEFRAME = re.compile(r"^(.*?)\s+for\s+(\S+)$")


@dataclass(frozen=True)
class Breach:
    """The longest stretch of a per-second series in which a threshold did not hold."""

    start: float  # seconds, as the series counts them
    seconds: float
    worst: float  # the value furthest from the limit within the stretch


@dataclass(frozen=True)
class Threshold:
    text: str
    op: str
    value: float  # in the base unit of `unit`; for a relative threshold, the fraction
    unit: Unit
    relative_to_baseline: bool = False
    timeframe: float | None = None  # seconds: the threshold applies to a per-second series

    def holds(self, measured: float, baseline: float | None = None) -> bool:
        """Whether `measured` satisfies the threshold (`baseline` needed when relative)."""
        limit = self.limit(baseline)
        if self.op == "==" and self.unit != "number":
            # Quantities with a unit are compared with a tolerance of rounding error.
            return abs(measured - limit) <= 1e-9 * max(1.0, abs(limit))
        return _OPERATORS[self.op](measured, limit)

    def limit(self, baseline: float | None = None) -> float:
        if not self.relative_to_baseline:
            return self.value
        if baseline is None:
            raise ValueError("a relative threshold needs a baseline")
        return baseline * (1.0 + self.value)

    def compatible_with(self, metric_unit: str) -> bool:
        """A bare number compares with anything; otherwise units must agree."""
        if self.relative_to_baseline or self.unit == "number":
            return True
        if metric_unit in ("count", "number"):
            return False
        return self.unit == metric_unit

    def longest_breach(self, points: Sequence[tuple[float, float]], step: float = 1.0) -> Breach | None:
        """The longest run of consecutive points (`step` apart) where the threshold fails.

        Each point stands for the `step` seconds that start at its time, so one breaching
        point is a breach of `step` seconds; a gap in the series ends a run.
        """
        best: Breach | None = None
        run_start: float | None = None
        previous = worst = 0.0
        for t, value in sorted(points):
            if self.holds(value):
                run_start = None
                continue
            if run_start is None or t - previous > step * 1.5:
                run_start, worst = t, value
            elif abs(value - self.value) > abs(worst - self.value):
                worst = value
            previous = t
            length = t - run_start + step
            if best is None or length > best.seconds:
                best = Breach(run_start, length, worst)
        return best

    def held_for(
        self, points: Sequence[tuple[float, float]], seconds: float, step: float = 1.0
    ) -> float | None:
        """The worst value the series held through `seconds` consecutive points (`step` apart):
        for `<`/`<=`, the highest value it stayed at or above that long; for `>`/`>=`, the
        lowest it stayed at or below. Against the limit it reads as the gate does: it breaches
        the limit exactly when the series was in breach that long. With fewer points in a row
        than that, the longest row counts; None for `==`/`!=` or no points."""
        if self.op not in ("<", "<=", ">", ">=") or not points:
            return None
        upward = self.op in ("<", "<=")  # a breach is a high value
        width = max(1, round(seconds / step))
        rows: list[list[float]] = []
        previous: float | None = None
        for t, value in sorted(points):
            if previous is None or t - previous > step * 1.5:
                rows.append([])
            rows[-1].append(value)
            previous = t
        width = min(width, max(len(row) for row in rows))
        held = [
            (min if upward else max)(row[i : i + width]) for row in rows for i in range(len(row) - width + 1)
        ]
        return (max if upward else min)(held)

    def describe(self, baseline: float | None = None, metric_unit: str = "number") -> str:
        if self.relative_to_baseline:
            if baseline is None:
                return self.text
            return f"{self.op} {format_value(self.limit(baseline), metric_unit)} ({self.text})"
        limit = f"{self.op} {format_value(self.value, self.unit if self.unit != 'number' else metric_unit)}"
        return limit if self.timeframe is None else f"{limit} for {format_value(self.timeframe, 'seconds')}"


def parse_threshold(text: str) -> Threshold:
    """Parse a threshold expression; raises ValueError with a message meant for the user."""
    if not isinstance(text, str):
        raise ValueError(f"expected a threshold expression such as '< 2s' or '>= 99%', got {text!r}")
    timeframe = _TIMEFRAME.match(text.strip())
    if timeframe:
        try:
            seconds = parse_duration(timeframe.group(2))
        except ValueError as error:
            raise ValueError(
                f"{text.strip()!r}: the timeframe after 'for' is not a duration: {error}"
            ) from None
        if seconds <= 0:
            raise ValueError(f"{text.strip()!r}: the timeframe after 'for' must be longer than 0")
        inner = parse_threshold(timeframe.group(1))
        if inner.relative_to_baseline:
            raise ValueError(f"{text.strip()!r}: a baseline threshold cannot have a timeframe")
        return replace(inner, text=text.strip(), timeframe=seconds)
    match = _EXPRESSION.match(text)
    if not match:
        raise ValueError(
            f"{text!r} is not a threshold; expected an operator (<, <=, >, >=, ==, !=) "
            "and a value, e.g. '< 2s', '>= 99%', '== 0', '<= +10% baseline'"
        )
    op, rest = match.group(1), match.group(2)
    relative = _RELATIVE.match(rest)
    if relative:
        return Threshold(text.strip(), op, float(relative.group(1)) / 100.0, "ratio", True)
    _refuse_near_relative(text.strip(), rest)
    try:
        value, unit = parse_quantity(rest)
    except ValueError as error:
        raise ValueError(f"{text.strip()!r} is not a threshold: {error}") from None
    return Threshold(text.strip(), op, value, unit)


def _refuse_near_relative(text: str, rest: str) -> None:
    """A threshold that means to be relative but is not written as one gets the relative form in
    its message, not the quantity's list of units."""
    words = re.findall(r"[A-Za-z]+", rest)
    near = [word for word in words if difflib.get_close_matches(word.lower(), ["baseline"], cutoff=0.75)]
    if not near:
        return
    problems = []
    if near[0] != "baseline":
        problems.append(f"{near[0]!r} is not 'baseline'")
    if not re.match(r"^[-+]", rest):
        problems.append("the share needs its sign (+ or -)")
    why = "; ".join(problems) or "the share must be a signed percentage before 'baseline'"
    raise ValueError(f"{text!r} is not a relative threshold ({why}); expected {_RELATIVE_FORM}")
