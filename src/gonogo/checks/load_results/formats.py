"""Which tool wrote a result file, and reading it whatever the tool."""

from __future__ import annotations

__all__ = ["ANY_WHAT", "FormatChoice", "detect_format", "parse_results", "parse_results_data", "what"]

from pathlib import Path
from typing import Literal

from gonogo.checks.load_results.k6 import WHAT as K6_WHAT
from gonogo.checks.load_results.k6 import parse_k6_data
from gonogo.checks.load_results.locust import (
    CSV_WHAT,
    JSON_WHAT,
    parse_locust_csv_data,
    parse_locust_json_data,
)
from gonogo.checks.load_results.summary import Format, LoadSummary
from gonogo.errors import InputFileError
from gonogo.inputs import MAX_FILE_BYTES, load_json, read_bounded

FormatChoice = Literal["auto", "k6", "locust-json", "locust-csv"]

ANY_WHAT = (
    "a k6 end-of-test summary (JSON), Locust's --json output or Locust's PREFIX_stats.csv "
    "(set `format:` to say which)"
)
_WHAT: dict[FormatChoice, str] = {
    "auto": ANY_WHAT,
    "k6": K6_WHAT,
    "locust-json": JSON_WHAT,
    "locust-csv": CSV_WHAT,
}
_SNIFF = 4096  # bytes looked at to tell the formats apart


def what(format: FormatChoice) -> str:
    """What a file of `format` is expected to be, for error messages."""
    return _WHAT[format]


def detect_format(name: str, data: bytes) -> Format:
    """The format of a result file from its content, then its name: a JSON object is k6's
    summary, a JSON list Locust's `--json` output, a CSV Locust's stats."""
    text = data[:_SNIFF].decode("utf-8-sig", errors="replace").lstrip()
    if text.startswith("{"):
        return "k6"
    if text.startswith("["):
        return "locust-json"
    first_line = text.splitlines()[0] if text else ""
    if "Request Count" in first_line or first_line.startswith(("Type,Name", '"Type","Name"')):
        return "locust-csv"
    if name.lower().endswith(".csv"):
        return "locust-csv"  # another CSV: its parser names what it is or what is missing
    raise InputFileError(f"{name}: neither JSON nor a Locust CSV; expected {ANY_WHAT}")


def parse_results(
    path: Path, format: FormatChoice = "auto", *, max_bytes: int = MAX_FILE_BYTES
) -> LoadSummary:
    """Read the result file at `path` in `format` (or the detected one).

    Raises InputFileError naming the file and what was expected when the file is missing,
    empty, over `max_bytes`, truncated or of another shape.
    """
    return parse_results_data(read_bounded(path, _WHAT[format], max_bytes=max_bytes), str(path), format)


def parse_results_data(data: bytes, name: str, format: FormatChoice = "auto") -> LoadSummary:
    """The bytes of a result file; `name` names the file in errors."""
    chosen: Format = detect_format(name, data) if format == "auto" else format
    if chosen == "locust-csv":
        return parse_locust_csv_data(data, name)
    if chosen == "k6":
        return parse_k6_data(load_json(data, name, K6_WHAT), name)
    return parse_locust_json_data(load_json(data, name, JSON_WHAT), name)
