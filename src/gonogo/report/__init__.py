"""Reports, rendered from the evidence store only: terminal, JSON, Markdown, JUnit XML, HTML."""

from __future__ import annotations

__all__ = ["FORMATS", "RunReport", "collect", "print_summary", "render", "write_reports"]

import os
from collections.abc import Callable
from pathlib import Path

from gonogo.report.document import RunReport, collect
from gonogo.report.html import render_html
from gonogo.report.json_report import render_json
from gonogo.report.junit import render_junit
from gonogo.report.markdown import render_markdown
from gonogo.report.terminal import print_summary

# format name → (file name, renderer)
FORMATS: dict[str, tuple[str, Callable[[RunReport], str]]] = {
    "json": ("report.json", render_json),
    "md": ("summary.md", render_markdown),
    "junit": ("gates.junit.xml", render_junit),
    "html": ("report.html", render_html),
}


def render(report: RunReport, format_name: str) -> str:
    return FORMATS[format_name][1](report)


def write_reports(report: RunReport, directory: Path) -> dict[str, Path]:
    """Write every file format into `directory`; also append the summary to a CI step summary."""
    directory.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for name, (file_name, renderer) in FORMATS.items():
        path = directory / file_name
        path.write_text(renderer(report), encoding="utf-8")
        written[name] = path
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as summary:
            summary.write(written["md"].read_text(encoding="utf-8") + "\n")
    return written
