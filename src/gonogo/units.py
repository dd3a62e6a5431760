"""Units of measurement, quantities written by people, and their display.

Every metric is stored in a base unit (seconds, bytes, a ratio in 0..1, a plain count)
so gates, baselines and reports never convert twice.
"""

from __future__ import annotations

__all__ = [
    "Unit",
    "format_p_value",
    "format_value",
    "parse_duration",
    "parse_quantity",
]

import math
import re
from typing import Literal

Unit = Literal["ratio", "seconds", "bytes", "count", "number", "per_second"]

_DURATION_FACTORS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
}
_BYTE_FACTORS = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}
_QUANTITY = re.compile(r"^\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*([a-zA-Zµ%/]*)\s*$")


def parse_quantity(text: str | int | float) -> tuple[float, Unit]:
    """`"2s"` → (2.0, "seconds"); `"99%"` → (0.99, "ratio"); `"50MB"` → (5e7, "bytes").

    A bare number keeps its value and has unit "number" (it compares with any unit).
    Raises ValueError with a message meant for the user.
    """
    if isinstance(text, bool):
        raise ValueError("expected a number or a quantity such as 2s, 250ms, 99%, 50MB")
    if isinstance(text, int | float):
        return float(text), "number"
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(
            f"{text!r} is not a quantity; expected a number with an optional unit "
            "(ms, s, m, h, %, B, KB, MB, GB, KiB, MiB, GiB, /s)"
        )
    number, suffix = float(match.group(1)), match.group(2)
    if not suffix:
        return number, "number"
    if suffix == "%":
        return number / 100.0, "ratio"
    if suffix in _DURATION_FACTORS:
        return number * _DURATION_FACTORS[suffix], "seconds"
    if suffix.lower() in _BYTE_FACTORS:
        return number * _BYTE_FACTORS[suffix.lower()], "bytes"
    if suffix in ("/s", "rps"):
        return number, "per_second"
    raise ValueError(
        f"unknown unit {suffix!r} in {text!r}; expected one of "
        "ms, s, m, h, %, B, KB, MB, GB, KiB, MiB, GiB, /s"
    )


def parse_duration(text: str | int | float) -> float:
    """A duration in seconds from `"500ms"`, `"2s"`, `"1m"` or a number of seconds."""
    not_a_duration = f"{text!r} is not a duration; expected e.g. 500ms, 2s, 1m, 1h or seconds"
    try:
        value, unit = parse_quantity(text)
    except ValueError:
        # The quantity's own message lists every unit (%, bytes, /s), not just time's.
        raise ValueError(not_a_duration) from None
    if unit not in ("seconds", "number"):
        raise ValueError(not_a_duration)
    if value < 0:
        raise ValueError(f"{text!r} is negative; a duration must be zero or more")
    return value


def format_value(value: float | None, unit: str) -> str:
    """Show a value in the unit a person reads fastest."""
    if value is None:
        return "—"
    if math.isnan(value):
        return "NaN"
    if unit == "ratio":
        return f"{value * 100:.2f}%".replace(".00%", "%")
    if unit == "seconds":
        magnitude = abs(value)
        if magnitude == 0:
            return "0 s"
        if magnitude < 1e-3:
            return f"{value * 1e6:.0f} µs"
        if magnitude < 1:
            return f"{value * 1e3:.1f} ms"
        if magnitude < 120:
            return f"{value:.2f} s"
        return f"{value / 60:.1f} min"
    if unit == "bytes":
        for factor, name in ((1024**3, "GiB"), (1024**2, "MiB"), (1024, "KiB")):
            if abs(value) >= factor:
                return f"{value / factor:.1f} {name}"
        return f"{value:.0f} B"
    if unit == "per_second":
        return f"{value:.1f}/s"
    if unit == "count" or float(value).is_integer():
        return f"{value:.0f}"
    return f"{value:.4g}"


def format_p_value(p: float) -> str:
    """A p-value to 3 significant digits (`0.042`, `3.4e-30`); one that underflowed to 0 is
    `< 1e-300`, as a p-value is never 0."""
    if p <= 0:
        return "< 1e-300"
    return f"{p:.3g}"
