"""The shape of a response body: its type skeleton without any value, for `gonogo compare`.

Two runs answer the same request with the same shape when their JSON has the same keys
holding the same types, whatever the values: `{"id":number,"items":[{"title":string}]}`.
Objects list their keys sorted; an array shows the shape of its elements merged (a key that
only some elements have is marked `?`, differing types are joined with `|`, an empty array
is `[]`); scalars are `string`, `number`, `boolean`, `null`. A body that is not JSON is its
media type (`text/plain`), an empty one `empty`. Values never appear, so no secret does.

Bounded, so that it costs next to nothing on a big body: the first `ARRAY_ELEMENTS` elements
of an array are merged, nesting stops at `MAX_DEPTH`, at most `MAX_NODES` values are visited,
and the text is cut at `MAX_SHAPE_CHARS` (ending in `…`).
"""

from __future__ import annotations

__all__ = ["MAX_SHAPE_CHARS", "SHAPE_BODY_BYTES", "body_shape", "json_shape", "media_type"]

import json
from dataclasses import dataclass, field
from typing import Any

MAX_SHAPE_CHARS = 400
SHAPE_BODY_BYTES = 256 * 1024  # a JSON body larger than this is not parsed for its shape
ARRAY_ELEMENTS = 32
MAX_DEPTH = 8
MAX_NODES = 2000
_ELLIPSIS = "…"


@dataclass
class _Node:
    """A merged shape: the scalar types seen, and the object and array shapes seen."""

    scalars: set[str] = field(default_factory=set)
    keys: dict[str, _Node] | None = None  # an object: its keys' shapes
    key_seen: dict[str, int] = field(default_factory=dict)  # in how many of the objects merged
    objects: int = 0
    element: _Node | None = None  # an array: its elements' shape (None: only empty arrays)
    arrays: int = 0
    cut: bool = False  # deeper than MAX_DEPTH, or past MAX_NODES


class _Budget:
    def __init__(self) -> None:
        self.left = MAX_NODES


def json_shape(value: Any) -> str:
    """The shape of a parsed JSON value."""
    node = _Node()
    _add(node, value, 0, _Budget())
    return _bounded(_render(node))


def media_type(content_type: str) -> str:
    """`Application/JSON; charset=utf-8` → `application/json`."""
    return content_type.split(";", 1)[0].strip().lower()


def body_shape(body: bytes, size: int, complete: bool, content_type: str, parsed: Any = None) -> str:
    """The shape of a response body: its JSON skeleton, or its media type.

    `body` is what was kept of it (all of it when `complete`), `parsed` its JSON when the
    step already parsed it (None: parse here if it is JSON).
    """
    if size == 0:
        return "empty"
    kind = media_type(content_type) or "no content type"
    if not (kind.endswith("/json") or kind.endswith("+json")):
        return kind
    if parsed is None:
        if size > SHAPE_BODY_BYTES:
            return f"{kind} (over {SHAPE_BODY_BYTES // 1024} KiB: not read)"
        if not complete:  # a raw-mode step keeps only the first bytes of a body it does not read
            return f"{kind} (not kept whole: not read)"
        try:
            parsed = json.loads(body)
        except ValueError:
            return f"{kind} (not JSON)"
    return json_shape(parsed)


def _add(node: _Node, value: Any, depth: int, budget: _Budget) -> None:
    budget.left -= 1
    if budget.left < 0 or depth > MAX_DEPTH:
        node.cut = True
        return
    if isinstance(value, dict):
        node.objects += 1
        if node.keys is None:
            node.keys = {}
        for key, item in value.items():
            child = node.keys.get(key)
            if child is None:
                child = node.keys[key] = _Node()
            node.key_seen[key] = node.key_seen.get(key, 0) + 1
            _add(child, item, depth + 1, budget)
    elif isinstance(value, list):
        node.arrays += 1
        for item in value[:ARRAY_ELEMENTS]:
            if node.element is None:
                node.element = _Node()
            _add(node.element, item, depth + 1, budget)
    elif isinstance(value, bool):  # before int: a bool is an int in Python
        node.scalars.add("boolean")
    elif isinstance(value, int | float):
        node.scalars.add("number")
    elif isinstance(value, str):
        node.scalars.add("string")
    else:
        node.scalars.add("null")


def _render(node: _Node) -> str:
    if node.cut:
        return _ELLIPSIS
    kinds = sorted(node.scalars)
    if node.keys is not None:
        fields = []
        for key in sorted(node.keys):
            optional = "?" if node.key_seen[key] < node.objects else ""
            fields.append(f"{json.dumps(key + optional, ensure_ascii=False)}:{_render(node.keys[key])}")
        kinds.append("{" + ",".join(fields) + "}")
    if node.arrays:
        kinds.append("[" + (_render(node.element) if node.element is not None else "") + "]")
    return "|".join(kinds) or _ELLIPSIS


def _bounded(text: str) -> str:
    return text if len(text) <= MAX_SHAPE_CHARS else text[: MAX_SHAPE_CHARS - 1] + _ELLIPSIS
