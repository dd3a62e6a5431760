"""Report files whose content the store remembers, so `gonogo verify` can tell an edited copy."""

from __future__ import annotations

__all__ = ["record_report_file", "write_recorded_reports"]

import hashlib
from pathlib import Path

from gonogo.evidence import Store
from gonogo.report import RunReport, write_reports


def write_recorded_reports(store: Store, report: RunReport, directory: Path) -> dict[str, Path]:
    """Write every report file into `directory` and record the sha256 of each in the store."""
    written = write_reports(report, directory)
    for format_name, path in written.items():
        record_report_file(store, report.run.id, format_name, path)
    return written


def record_report_file(store: Store, run_id: str, format_name: str, path: Path) -> None:
    """Record the sha256 of a report file just written (as it is on disk, byte for byte)."""
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    store.add_report_file(run_id, format_name, path.resolve(), sha256)
