"""Toxic definitions for the fault proxy: the Toxiproxy 2.x toxic types, their attributes and validation."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from gonogo.errors import GonogoError

__all__ = [
    "STREAMS",
    "TOXIC_ATTRIBUTES",
    "Toxic",
    "ToxicError",
    "parse_toxic",
    "update_toxic",
]

STREAMS = ("upstream", "downstream")

# Every supported toxic type and its integer attributes (Toxiproxy defaults all of them to 0).
TOXIC_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "latency": ("latency", "jitter"),
    "bandwidth": ("rate",),
    "slow_close": ("delay",),
    "timeout": ("timeout",),
    "reset_peer": ("timeout",),
    "slicer": ("average_size", "size_variation", "delay"),
    "limit_data": ("bytes",),
}


class ToxicError(GonogoError, ValueError):
    """An invalid toxic definition; the message is returned to the API client with a 400."""


@dataclass
class Toxic:
    """One toxic on one proxy, in Toxiproxy's shape (its counters live on the proxy)."""

    name: str
    type: str
    stream: str
    toxicity: float
    attributes: dict[str, int]

    def attr(self, key: str) -> int:
        return self.attributes.get(key, 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": self.toxicity,
            "attributes": dict(self.attributes),
        }


def _toxicity(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ToxicError("toxicity must be a number between 0 and 1")
    if not 0.0 <= float(value) <= 1.0:
        raise ToxicError("toxicity must be a number between 0 and 1")
    return float(value)


def _attributes(toxic_type: str, raw: object, base: dict[str, int] | None = None) -> dict[str, int]:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ToxicError("attributes must be an object")
    known = TOXIC_ATTRIBUTES[toxic_type]
    attrs = dict(base) if base is not None else dict.fromkeys(known, 0)
    for key, value in raw.items():
        if key not in known:
            raise ToxicError(
                f"unknown attribute {key!r} for toxic type {toxic_type!r} (known: {', '.join(known)})"
            )
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            raise ToxicError(f"attribute {key!r} must be a number")
        if value < 0:
            raise ToxicError(f"attribute {key!r} must not be negative")
        attrs[key] = int(value)
    return attrs


def parse_toxic(body: object) -> Toxic:
    """A new toxic from a ``POST /proxies/{name}/toxics`` body."""
    if not isinstance(body, dict):
        raise ToxicError("bad request body")
    toxic_type = body.get("type")
    if not isinstance(toxic_type, str) or toxic_type not in TOXIC_ATTRIBUTES:
        raise ToxicError(f"invalid toxic type: {toxic_type!r} (supported: {', '.join(TOXIC_ATTRIBUTES)})")
    stream = body.get("stream") or "downstream"
    if stream not in STREAMS:
        raise ToxicError(f"stream was invalid: {stream!r} (must be upstream or downstream)")
    name = body.get("name") or f"{toxic_type}_{stream}"
    if not isinstance(name, str):
        raise ToxicError("name must be a string")
    toxicity = _toxicity(body["toxicity"]) if body.get("toxicity") is not None else 1.0
    return Toxic(
        name=name,
        type=toxic_type,
        stream=str(stream),
        toxicity=toxicity,
        attributes=_attributes(toxic_type, body.get("attributes")),
    )


def update_toxic(toxic: Toxic, body: object) -> None:
    """Apply a ``POST /proxies/{name}/toxics/{toxic}`` body: toxicity and attributes may change."""
    if not isinstance(body, dict):
        raise ToxicError("bad request body")
    toxicity = _toxicity(body["toxicity"]) if body.get("toxicity") is not None else toxic.toxicity
    attributes = _attributes(toxic.type, body.get("attributes"), base=toxic.attributes)
    toxic.toxicity = toxicity
    toxic.attributes = attributes
