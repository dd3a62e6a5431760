"""What the integrity read must find of a JSON write: the written JSON, field by field.

The comparison is strict about shape and lenient only about what a service adds. For the
JSON a write sends (`request.json`), the read's body must hold, at `written_json_at`
(default `$`, the whole body):

- for an object: an object with every field written, under the same name, each compared
  by these same rules; fields the service adds (an id, a timestamp) are allowed;
- for anything else (text, number, boolean, null, an array): an equal value, JSON
  equality (1 equals 1.0; "1" is not 1, true is not 1; arrays in the same order, with
  their objects equal as a whole).

So a renamed, nested or re-typed field, or the whole document wrapped in another object,
is a difference. Each compared value becomes one `expect.json` entry of the read step
(`"$.path": {equals: TEMPLATE}`), filled with the write's own variables, so the read fails,
and the write counts as corrupted, when the body differs. An entry the read step already
has, at a path or above it, is kept instead: that is how a plan says a field comes back
otherwise (e.g. `"$.password": {exists: false}`).
"""

from __future__ import annotations

__all__ = ["written_json_expectations"]

import re
from collections.abc import Iterator
from typing import Any

from gonogo.journey.jsonpath import JsonPath

_PLAIN_KEY = re.compile(r"[A-Za-z_$][\w$-]*")


def written_json_expectations(
    written: Any, at: JsonPath, existing: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """`expect.json` entries (path → `{equals: template}`) that the read body must meet."""
    own = [JsonPath.parse(path).parts for path in existing]
    added: dict[str, dict[str, Any]] = {}
    for path, template in _leaves(written, at.text):
        parts = JsonPath.parse(path).parts
        if not any(parts[: len(prefix)] == prefix for prefix in own):
            added[path] = {"equals": template}
    return added


def _leaves(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    # A key with a placeholder (or an escaped brace) is only known once rendered, so it
    # cannot be a fixed path: such an object is compared whole.
    if isinstance(value, dict) and value and not any("{" in key for key in value):
        for key, item in value.items():
            yield from _leaves(item, path + _step(key))
    else:
        yield path, value


def _step(key: str) -> str:
    if _PLAIN_KEY.fullmatch(key):
        return f".{key}"
    escaped = key.replace("\\", "\\\\").replace('"', '\\"')
    return f'["{escaped}"]'
