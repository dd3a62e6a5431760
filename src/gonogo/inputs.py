"""Reading the files gonogo is given (test reports, load results, journals, scanner reports).

Each is read whole, bounded in size, and refused with an error naming the file and what was
expected, never with a traceback.
"""

from __future__ import annotations

__all__ = ["MAX_FILE_BYTES", "finite", "load_json", "metric_key", "read_bounded", "unique_keys"]

import json
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gonogo.errors import InputFileError

MAX_FILE_BYTES = 256 * 1024 * 1024  # files are read whole; larger ones are refused

_NOT_IN_KEY = re.compile(r"[^A-Za-z0-9_-]+")


def finite(value: Any) -> float | None:
    """`value` as a float if it is a real, finite JSON number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a float
        return None
    return number if math.isfinite(number) else None


def metric_key(name: str) -> str:
    """`GET /api/items/[id]` → `GET_api_items_id`: runs of other characters become one `_`."""
    return _NOT_IN_KEY.sub("_", name).strip("_") or "_"


def unique_keys(names: Iterable[str]) -> tuple[list[str], list[str]]:
    """Keys for `names`, in order, made unique with `_2`, `_3`, ...; and a note per clash."""
    keys: list[str] = []
    notes: list[str] = []
    taken: dict[str, str] = {}
    for name in names:
        base = key = metric_key(name)
        count = 1
        while key in taken:
            count += 1
            key = f"{base}_{count}"
        if key != base:
            notes.append(f"{name!r} and {taken[base]!r} both make the name {base!r}; {name!r} is {key!r}")
        taken[key] = name
        keys.append(key)
    return keys, notes


def read_bounded(path: Path, what: str, *, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of `path`, refusing a missing, empty or oversized file with a clear error."""
    name = str(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise InputFileError(f"{name}: no such file; expected {what}") from None
    except OSError as error:
        raise InputFileError(f"{name}: cannot read: {error.strerror or error}") from None
    if not path.is_file():
        raise InputFileError(f"{name}: not a regular file; expected {what}")
    if size > max_bytes:
        raise InputFileError(
            f"{name}: refused: the file is {size / 2**20:.0f} MiB, over the limit of "
            f"{max_bytes / 2**20:.0f} MiB for an input file, which is read whole"
        )
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as error:
        raise InputFileError(f"{name}: cannot read: {error.strerror or error}") from None
    if len(data) > max_bytes:  # it grew while we looked
        raise InputFileError(f"{name}: refused: the file is over {max_bytes / 2**20:.0f} MiB")
    if not data.strip():
        raise InputFileError(f"{name}: the file is empty; expected {what}")
    return data


def load_json(data: bytes, name: str, what: str) -> Any:
    """Parse JSON text, naming the file and telling a truncated file from a malformed one."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputFileError(f"{name}: not UTF-8 text (byte {error.start}); expected {what}") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise InputFileError(f"{name}: refused: the JSON is nested too deeply; expected {what}") from None
    except json.JSONDecodeError as error:
        if error.pos >= len(text.rstrip()):
            raise InputFileError(
                f"{name}: the JSON ends before the document is complete (truncated?); expected {what}"
            ) from None
        raise InputFileError(
            f"{name}:{error.lineno}:{error.colno}: not valid JSON ({error.msg}); expected {what}"
        ) from None
    except ValueError as error:  # e.g. an integer with too many digits
        raise InputFileError(f"{name}: not valid JSON ({error}); expected {what}") from None
