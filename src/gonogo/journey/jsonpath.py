"""A small JSONPath subset for pointing into a response body.

Supported: `$` (the whole document), dotted keys `$.a.b`, indexes `$.items[0]` (negative
counts from the end: `$.items[-1]`), and quoted keys for names that are not identifiers
`$["content-type"]` or `$['a.b']`. No wildcards, filters or recursive descent: a path
names exactly one place, so an assertion or an extraction is never ambiguous.
"""

from __future__ import annotations

__all__ = ["JsonPath", "JsonPathError"]

import re
from dataclasses import dataclass
from typing import Any

from gonogo.errors import GonogoError

_KEY = re.compile(r"\.([A-Za-z_$][\w$-]*)")
_INDEX = re.compile(r"\[(-?\d+)\]")
_QUOTED = re.compile(r"""\[(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')\]""")
_UNESCAPE = re.compile(r"\\(.)")


class JsonPathError(GonogoError, ValueError):
    """A path that is not in the supported subset."""


@dataclass(frozen=True)
class JsonPath:
    """A parsed path: the keys (str) and indexes (int) to follow from the root."""

    text: str
    parts: tuple[str | int, ...]

    @classmethod
    def parse(cls, text: str) -> JsonPath:
        if not isinstance(text, str) or not text.startswith("$"):
            raise JsonPathError(
                f"{text!r} is not a JSON path; expected one starting with $, "
                'such as $.id, $.items[0].name or $["odd-key"]'
            )
        parts: list[str | int] = []
        position = 1
        while position < len(text):
            for pattern in (_KEY, _INDEX, _QUOTED):
                match = pattern.match(text, position)
                if match:
                    break
            else:
                raise JsonPathError(
                    f"{text!r} is not a supported JSON path (problem at {text[position:]!r}); "
                    'use dotted keys and [index], e.g. $.items[0].name, or $["key"] '
                    "for keys that are not identifiers"
                )
            if pattern is _KEY:
                parts.append(match.group(1))
            elif pattern is _INDEX:
                parts.append(int(match.group(1)))
            else:
                quoted = match.group(1) if match.group(1) is not None else match.group(2)
                parts.append(_UNESCAPE.sub(r"\1", quoted))
            position = match.end()
        return cls(text, tuple(parts))

    def find(self, document: Any) -> tuple[bool, Any]:
        """(True, value) where the path leads in `document`, or (False, None) if nowhere."""
        current = document
        for part in self.parts:
            if isinstance(part, str):
                if not isinstance(current, dict) or part not in current:
                    return False, None
                current = current[part]
            else:
                if not isinstance(current, list) or not -len(current) <= part < len(current):
                    return False, None
                current = current[part]
        return True, current

    def __str__(self) -> str:
        return self.text
