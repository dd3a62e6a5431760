"""Threshold expressions of gates, as people write them: `"< 2s"`, `">= 99%"`, `"== 0"`.

A relative form compares with a baseline: `"<= +10% baseline"` (at most 10% above it).
"""

from __future__ import annotations

__all__ = ["Threshold", "parse_threshold"]

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from gonogo.units import Unit, format_value, parse_quantity

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


@dataclass(frozen=True)
class Threshold:
    text: str
    op: str
    value: float  # in the base unit of `unit`; for a relative threshold, the fraction
    unit: Unit
    relative_to_baseline: bool = False

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

    def describe(self, baseline: float | None = None, metric_unit: str = "number") -> str:
        if self.relative_to_baseline:
            if baseline is None:
                return self.text
            return f"{self.op} {format_value(self.limit(baseline), metric_unit)} ({self.text})"
        return f"{self.op} {format_value(self.value, self.unit if self.unit != 'number' else metric_unit)}"


def parse_threshold(text: str) -> Threshold:
    """Parse a threshold expression; raises ValueError with a message meant for the user."""
    if not isinstance(text, str):
        raise ValueError(f"expected a threshold expression such as '< 2s' or '>= 99%', got {text!r}")
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
    try:
        value, unit = parse_quantity(rest)
    except ValueError as error:
        raise ValueError(f"{text.strip()!r} is not a threshold: {error}") from None
    return Threshold(text.strip(), op, value, unit)
