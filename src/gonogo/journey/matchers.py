"""What an expected value may say about an actual one.

In a plan, an expected value is either a plain value (equality) or a mapping made only of
these operators:

- `equals: VALUE` — equality (use it to compare with a mapping that would otherwise read
  as operators, e.g. `{equals: {exists: true}}`);
- `exists: true|false` — the field (or header) is present / absent;
- `matches: REGEX` — the value is a string in which the regular expression is found;
- `one_of: [A, B, …]` — equal to one of these values.

Equality is JSON equality: 1 equals 1.0, but true does not equal 1 and "1" does not equal 1.
Expected values (not `matches`) may use `{variables}`.
"""

from __future__ import annotations

__all__ = ["OPERATORS", "Matcher", "json_equal", "parse_matcher", "show"]

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

OPERATORS = ("equals", "exists", "matches", "one_of")
_UNSET: Any = object()


def json_equal(actual: Any, expected: Any) -> bool:
    """Equality as JSON sees it: booleans are not numbers; 1 == 1.0."""
    if isinstance(actual, bool) or isinstance(expected, bool):
        return isinstance(actual, bool) and isinstance(expected, bool) and actual == expected
    if isinstance(actual, int | float) and isinstance(expected, int | float):
        return actual == expected
    if isinstance(actual, dict) and isinstance(expected, dict):
        return actual.keys() == expected.keys() and all(
            json_equal(actual[key], expected[key]) for key in actual
        )
    if isinstance(actual, list) and isinstance(expected, list | tuple):
        return len(actual) == len(expected) and all(
            json_equal(a, e) for a, e in zip(actual, expected, strict=True)
        )
    return type(actual) is type(expected) and bool(actual == expected)


def show(value: Any, limit: int = 200) -> str:
    """A value as JSON, shortened for a message."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Matcher:
    equals: Any = _UNSET
    exists: bool | None = None
    matches: re.Pattern[str] | None = None
    one_of: tuple[Any, ...] | None = None

    def templates(self) -> list[Any]:
        """The expected values that may contain `{variables}`."""
        values: list[Any] = []
        if self.equals is not _UNSET:
            values.append(self.equals)
        if self.one_of is not None:
            values.extend(self.one_of)
        return values

    def check(self, subject: str, found: bool, actual: Any, render: Callable[[Any], Any]) -> str | None:
        """None when satisfied, else why not. `render` fills variables in expected values."""
        if self.exists is not None:
            if self.exists and not found:
                return f"{subject} is missing, expected it to exist"
            if not self.exists and found:
                return f"{subject} is {show(actual)}, expected it to be absent"
        needs_value = self.equals is not _UNSET or self.matches or self.one_of is not None
        if not needs_value:
            return None
        if not found:
            return f"{subject} is missing"
        if self.equals is not _UNSET:
            expected = render(self.equals)
            if not json_equal(actual, expected):
                return f"{subject} is {show(actual)}, expected {show(expected)}"
        if self.one_of is not None:
            choices = [render(choice) for choice in self.one_of]
            if not any(json_equal(actual, choice) for choice in choices):
                return f"{subject} is {show(actual)}, expected one of {show(choices)}"
        if self.matches is not None:
            if not isinstance(actual, str):
                return f"{subject} is {show(actual)}, expected a string matching {self.matches.pattern!r}"
            if not self.matches.search(actual):
                return f"{subject} is {show(actual)}, which does not match {self.matches.pattern!r}"
        return None

    def to_plan(self) -> Any:
        """The matcher as a plan writes it (parse_matcher(m.to_plan()) == m)."""
        operators: dict[str, Any] = {}
        if self.equals is not _UNSET:
            operators["equals"] = self.equals
        if self.exists is not None:
            operators["exists"] = self.exists
        if self.matches is not None:
            operators["matches"] = self.matches.pattern
        if self.one_of is not None:
            operators["one_of"] = list(self.one_of)
        if list(operators) == ["equals"] and not _reads_as_operators(self.equals):
            return self.equals
        return operators

    def __str__(self) -> str:
        parts = []
        if self.equals is not _UNSET:
            parts.append(f"equals {show(self.equals)}")
        if self.exists is not None:
            parts.append("exists" if self.exists else "is absent")
        if self.matches is not None:
            parts.append(f"matches {self.matches.pattern!r}")
        if self.one_of is not None:
            parts.append(f"one of {show(list(self.one_of))}")
        return ", ".join(parts)


def _reads_as_operators(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(key in OPERATORS for key in value)


def parse_matcher(value: Any) -> Matcher:
    if isinstance(value, Matcher):
        return value
    if not _reads_as_operators(value):
        return Matcher(equals=value)
    exists = value.get("exists")
    if exists is not None and not isinstance(exists, bool):
        raise ValueError(f"exists must be true or false, not {show(exists)}")
    pattern = value.get("matches")
    compiled: re.Pattern[str] | None = None
    if pattern is not None:
        if not isinstance(pattern, str):
            raise ValueError(f"matches must be a regular expression (a string), not {show(pattern)}")
        try:
            compiled = re.compile(pattern)
        except re.error as error:
            raise ValueError(f"matches: {pattern!r} is not a valid regular expression: {error}") from None
    one_of = value.get("one_of")
    if one_of is not None and not isinstance(one_of, list):
        raise ValueError(f"one_of must be a list of values, not {show(one_of)}")
    return Matcher(
        equals=value.get("equals", _UNSET),
        exists=exists,
        matches=compiled,
        one_of=tuple(one_of) if one_of is not None else None,
    )
