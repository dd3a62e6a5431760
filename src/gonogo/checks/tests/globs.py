"""Glob patterns over slash-separated paths, as written in reports.

`*`, `?` and `[...]` stay within one path segment (so `src/*.py` does not quietly take in
`src/vendor/big.py`); `**` spans any number of segments, and `**/` may match none.
Matching is case-sensitive, on paths normalized to forward slashes without a leading `./`.
"""

from __future__ import annotations

__all__ = ["compile_glob", "matches_any", "normalize_path"]

import re
from collections.abc import Iterable
from functools import lru_cache


def normalize_path(path: str) -> str:
    """`.\\src\\a.py` and `./src/a.py` → `src/a.py`."""
    path = path.replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    return path


@lru_cache(maxsize=256)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """A regular expression matching the whole path against `pattern`."""
    pattern = normalize_path(pattern)
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                out.append("(?:.*/)?")  # `a/**/b` also matches `a/b`
                i += 1
            else:
                out.append(".*")
        elif char == "*":
            out.append("[^/]*")
            i += 1
        elif char == "?":
            out.append("[^/]")
            i += 1
        elif char == "[":
            end = pattern.find("]", i + 2 if pattern.startswith("[!", i) else i + 1)
            if end < 0:
                out.append(re.escape(char))
                i += 1
                continue
            body = pattern[i + 1 : end]
            negate = body.startswith("!")
            if negate:
                body = body[1:]
            body = body.replace("\\", "\\\\").replace("^", "\\^")
            out.append(f"[^/{body}]" if negate else f"(?!/)[{body}]")
            i = end + 1
        else:
            out.append(re.escape(char))
            i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def matches_any(path: str, patterns: Iterable[str]) -> bool:
    normalized = normalize_path(path)
    return any(compile_glob(pattern).match(normalized) for pattern in patterns)
