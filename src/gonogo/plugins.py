"""Where check kinds come from: the `gonogo.checks` entry-point group.

Built-in kinds are registered in gonogo's own package metadata exactly as a
third-party package would register its own, so adding a kind never touches the runner.
"""

from __future__ import annotations

__all__ = ["available_kinds", "load_kind"]

from functools import cache
from importlib.metadata import entry_points
from typing import Any

from gonogo.errors import UserError

ENTRY_POINT_GROUP = "gonogo.checks"


@cache
def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_kinds() -> list[str]:
    return sorted(_entry_points())


@cache
def load_kind(kind: str) -> Any:
    """The check-kind class registered under `kind` (see gonogo.checks.base.CheckKind)."""
    entry = _entry_points().get(kind)
    if entry is None:
        raise UserError(f"unknown check kind {kind!r}; available: {', '.join(available_kinds())}")
    return entry.load()
