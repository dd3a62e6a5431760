"""Coverage reports (Cobertura XML, coverage.py JSON, LCOV) reduced to per-file counts.

Every format is brought down to the same thing: for each source file, how many lines
(and branches) could run and how many did. Overall and critical-path ratios are then sums
over files, so they are computed the same way whatever produced the report.

- Cobertura: a file's lines are the `<line>`s of its `<class>`es (not of `<method>`s,
  which repeat them); a line listed twice counts once. Branches come from
  `condition-coverage="50% (1/2)"` on `branch="true"` lines.
- coverage.py JSON: each file's `summary` (`num_statements`, `covered_lines`,
  `num_branches`, `covered_branches`). Its `percent_covered` mixes lines and branches;
  ours keeps them apart.
- LCOV: `DA:` lines (or `LF`/`LH` when a record has none) and `BRDA:` branches (or
  `BRF`/`BRH`); records for the same `SF:` are merged.

A ratio over zero lines or zero branches is None (not measured), never 0 or 1.

Memory: XML and LCOV are streamed; what is kept grows with the number of distinct source
lines, capped at MAX_LINE_ENTRIES. coverage.py JSON cannot be streamed with the standard
library, so files above `max_json_bytes` are refused before being read.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_MAX_JSON_BYTES",
    "MAX_LINE_ENTRIES",
    "CoverageFormat",
    "CoverageReport",
    "CoverageTotals",
    "FileCoverage",
    "detect_format",
    "merge_reports",
    "parse_cobertura",
    "parse_coverage",
    "parse_coveragepy_json",
    "parse_lcov",
]

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any, Literal

from gonogo.checks.tests._xml import XmlContentError, stream_xml
from gonogo.checks.tests.globs import matches_any, normalize_path
from gonogo.errors import HostileInputError, InputFileError

CoverageFormat = Literal["cobertura", "coveragepy", "lcov"]

DEFAULT_MAX_JSON_BYTES = 512 * 1024**2
MAX_LINE_ENTRIES = 10_000_000  # distinct (file, line) pairs; far above any real project
_MAX_LCOV_LINE = 64 * 1024


@dataclass(frozen=True)
class FileCoverage:
    path: str  # as written in the report
    lines: int
    covered_lines: int
    branches: int = 0
    covered_branches: int = 0


@dataclass(frozen=True)
class CoverageTotals:
    files: int
    lines: int
    covered_lines: int
    branches: int
    covered_branches: int

    @property
    def line_rate(self) -> float | None:
        return self.covered_lines / self.lines if self.lines else None

    @property
    def branch_rate(self) -> float | None:
        """None when the report has no branch data (or the code no branches)."""
        return self.covered_branches / self.branches if self.branches else None

    @classmethod
    def of(cls, files: Iterable[FileCoverage]) -> CoverageTotals:
        items = list(files)
        return cls(
            files=len(items),
            lines=sum(f.lines for f in items),
            covered_lines=sum(f.covered_lines for f in items),
            branches=sum(f.branches for f in items),
            covered_branches=sum(f.covered_branches for f in items),
        )


@dataclass(frozen=True)
class CoverageReport:
    format: CoverageFormat
    files: tuple[FileCoverage, ...]

    def totals(self) -> CoverageTotals:
        return CoverageTotals.of(self.files)

    def select(self, patterns: Iterable[str], *, root: Path | None = None) -> CoverageTotals | None:
        """Totals over the files matching any glob; None when no file matches.

        A path is matched as written; an absolute path under `root` is also matched
        relative to it (LCOV from gcov and some JS tools writes absolute paths).
        """
        globs = list(patterns)
        chosen = [f for f in self.files if _matches(f.path, globs, root)]
        return CoverageTotals.of(chosen) if chosen else None


def _matches(path: str, globs: list[str], root: Path | None) -> bool:
    if matches_any(path, globs):
        return True
    if root is not None and PurePath(path).is_absolute():
        try:
            relative = PurePath(path).relative_to(root)
        except ValueError:
            return False
        return matches_any(relative.as_posix(), globs)
    return False


def merge_reports(reports: Iterable[CoverageReport], names: Iterable[str]) -> CoverageReport:
    """One report from several that cover different files (e.g. one per package).

    Two reports of the same file cannot be merged from counts alone (which lines
    overlap?), so that is an InputFileError asking for a merged report instead.
    """
    files: dict[str, tuple[FileCoverage, str]] = {}
    formats: list[CoverageFormat] = []
    for report, name in zip(reports, names, strict=True):
        formats.append(report.format)
        for item in report.files:
            key = normalize_path(item.path)
            if key in files:
                raise InputFileError(
                    f"{item.path!r} is covered by both {files[key][1]} and {name}; "
                    "merge them into one report first (coverage combine, lcov -a, ...)"
                )
            files[key] = (item, name)
    return CoverageReport(formats[0] if formats else "cobertura", tuple(f for f, _ in files.values()))


# -- format detection ---------------------------------------------------------------------


def detect_format(path: Path) -> CoverageFormat:
    """Tell the format from the first bytes of the file."""
    head = _head(path)
    if head.startswith(b"\x1f\x8b"):
        raise InputFileError(f"{path}: the file is gzip-compressed; decompress it first")
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not text:
        raise InputFileError(f"{path}: the file is empty; expected a coverage report")
    if text.startswith(b"<"):
        return "cobertura"
    if text.startswith((b"{", b"[")):
        return "coveragepy"
    if re.match(rb"(TN|SF|VER):", text):
        return "lcov"
    raise InputFileError(
        f"{path}: cannot tell the coverage format (not XML, JSON or LCOV); "
        "expected Cobertura XML, coverage.py JSON or LCOV"
    )


def _head(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(4096)
    except OSError as error:
        raise InputFileError(f"{path}: cannot read: {error.strerror or error}") from error


def parse_coverage(
    path: Path,
    format: CoverageFormat | Literal["auto"] = "auto",
    *,
    max_json_bytes: int = DEFAULT_MAX_JSON_BYTES,
) -> CoverageReport:
    """Read a coverage report; `auto` tells the format from the content."""
    chosen = detect_format(path) if format == "auto" else format
    if chosen == "cobertura":
        return parse_cobertura(path)
    if chosen == "coveragepy":
        return parse_coveragepy_json(path, max_bytes=max_json_bytes)
    return parse_lcov(path)


# -- per-file line accumulation -------------------------------------------------------------


class _Lines:
    """Lines and branches of one source file, deduplicated by line number."""

    __slots__ = ("branches", "covered", "fallback", "seen")

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.covered: set[int] = set()
        self.branches: dict[Any, bool | tuple[int, int]] = {}
        # LCOV summary counts for records without DA/BRDA lines: LF, LH, BRF, BRH.
        self.fallback = [0, 0, 0, 0]


class _Accumulator:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.files: dict[str, _Lines] = {}
        self.entries = 0

    def file(self, name: str) -> _Lines:
        lines = self.files.get(name)
        if lines is None:
            lines = self.files[name] = _Lines()
        return lines

    def line(self, lines: _Lines, number: int, hit: bool) -> None:
        if number not in lines.seen:
            self.entries += 1
            if self.entries > MAX_LINE_ENTRIES:
                raise HostileInputError(
                    f"{self.path}: refused: more than {MAX_LINE_ENTRIES:,} distinct source "
                    "lines, far beyond any real project"
                )
            lines.seen.add(number)
        if hit:
            lines.covered.add(number)

    def report(self, format: CoverageFormat) -> CoverageReport:
        files = []
        for name, data in self.files.items():
            if data.seen:
                total, covered = len(data.seen), len(data.covered)
            else:
                total, covered = data.fallback[0], data.fallback[1]
            branches = covered_branches = 0
            if data.branches:
                for value in data.branches.values():
                    if isinstance(value, tuple):
                        covered_branches += value[0]
                        branches += value[1]
                    else:
                        covered_branches += value
                        branches += 1
            else:
                branches, covered_branches = data.fallback[2], data.fallback[3]
            files.append(FileCoverage(name, total, min(covered, total), branches, covered_branches))
        return CoverageReport(format, tuple(files))


# -- Cobertura ------------------------------------------------------------------------------

_CONDITION = re.compile(r"\((\d+)\s*/\s*(\d+)\)")


class _CoberturaTarget:
    def __init__(self, accumulator: _Accumulator) -> None:
        self.acc = accumulator
        self.stack: list[str] = []
        self.current: _Lines | None = None

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        stack = self.stack
        if not stack:
            if tag != "coverage":
                hint = " (a JaCoCo report? convert it to Cobertura)" if tag == "report" else ""
                raise XmlContentError(f"not a Cobertura XML report: the root element is <{tag}>{hint}")
            if "clover" in attrib:
                raise XmlContentError("this is a Clover XML report, not Cobertura")
        elif tag == "class" and stack[-1] == "classes":
            filename = attrib.get("filename") or attrib.get("name")
            if not filename:
                raise XmlContentError("a <class> has no filename attribute")
            self.current = self.acc.file(filename)
        elif tag == "line" and self.current is not None and stack[-2:] == ["class", "lines"]:
            self._line(self.current, attrib)
        stack.append(tag)

    def _line(self, lines: _Lines, attrib: Mapping[str, str]) -> None:
        try:
            number = int(attrib["number"])
            hits = int(float(attrib.get("hits", "0")))
        except (KeyError, ValueError) as error:
            raise XmlContentError(
                f"a <line> needs integer number and hits attributes: {dict(attrib)}"
            ) from error
        self.acc.line(lines, number, hits > 0)
        if attrib.get("branch", "").lower() == "true":
            match = _CONDITION.search(attrib.get("condition-coverage", ""))
            if match:
                covered, total = int(match.group(1)), int(match.group(2))
                old = lines.branches.get(number)
                if not isinstance(old, tuple) or (total, covered) > (old[1], old[0]):
                    lines.branches[number] = (min(covered, total), total)

    def end(self, tag: str) -> None:
        self.stack.pop()
        if tag == "class":
            self.current = None

    def data(self, text: str) -> None:
        pass


def parse_cobertura(path: Path) -> CoverageReport:
    """Cobertura XML (coverage.py `coverage xml`, gcovr, Cobertura, istanbul, ...)."""
    accumulator = _Accumulator(path)
    stream_xml(path, _CoberturaTarget(accumulator), allow_external_doctype=True)
    return accumulator.report("cobertura")


# -- coverage.py JSON -------------------------------------------------------------------------


def parse_coveragepy_json(path: Path, *, max_bytes: int = DEFAULT_MAX_JSON_BYTES) -> CoverageReport:
    """The output of `coverage json`; refused above `max_bytes` rather than loaded."""
    try:
        size = path.stat().st_size
    except OSError as error:
        raise InputFileError(f"{path}: cannot read: {error.strerror or error}") from error
    if size > max_bytes:
        raise InputFileError(
            f"{path}: refused: {size:,} bytes is over the {max_bytes:,}-byte limit for "
            "coverage.py JSON, which has to be loaded whole; use `coverage xml` (streamed) "
            "or raise coverage.max_json_size"
        )
    raw = path.read_bytes()
    if not raw.strip():
        raise InputFileError(f"{path}: the file is empty; expected coverage.py JSON")
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as error:
        truncated = error.pos >= len(raw.rstrip()) - 1
        why = "it ends before the JSON is complete (truncated?)" if truncated else "not valid JSON"
        raise InputFileError(f"{path}:{error.lineno}: {why}: {error.msg}") from error
    except UnicodeDecodeError as error:
        raise InputFileError(f"{path}: not UTF-8 text: {error.reason}") from error
    except RecursionError as error:
        raise HostileInputError(f"{path}: refused: JSON nested absurdly deep") from error
    files = document.get("files") if isinstance(document, dict) else None
    if not isinstance(files, dict):
        raise InputFileError(
            f'{path}: not a coverage.py JSON report (no "files" object); '
            "expected the output of `coverage json`"
        )
    result = []
    for name, entry in files.items():
        summary = entry.get("summary") if isinstance(entry, dict) else None
        if not isinstance(summary, dict):
            raise InputFileError(f'{path}: file {name!r} has no "summary" object')
        result.append(
            FileCoverage(
                name,
                _count(path, name, summary, "num_statements"),
                _count(path, name, summary, "covered_lines"),
                _count(path, name, summary, "num_branches", required=False),
                _count(path, name, summary, "covered_branches", required=False),
            )
        )
    return CoverageReport("coveragepy", tuple(result))


def _count(path: Path, name: str, summary: dict[str, Any], key: str, *, required: bool = True) -> int:
    value = summary.get(key)
    if value is None and not required:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InputFileError(f"{path}: file {name!r}: summary.{key} should be a count, got {value!r}")
    return value


# -- LCOV ---------------------------------------------------------------------------------------


def parse_lcov(path: Path) -> CoverageReport:
    """An LCOV tracefile (lcov/geninfo, c8/istanbul, llvm-cov export, ...), line by line."""
    accumulator = _Accumulator(path)
    current: _Lines | None = None
    opened_at = 0
    source = ""
    records = content = 0
    try:
        handle = path.open("rb")
    except OSError as error:
        raise InputFileError(f"{path}: cannot read: {error.strerror or error}") from error
    with handle:
        number = 0
        while True:
            raw = handle.readline(_MAX_LCOV_LINE + 1)
            if not raw:
                break
            number += 1
            if len(raw) > _MAX_LCOV_LINE:
                raise InputFileError(f"{path}:{number}: line longer than {_MAX_LCOV_LINE} bytes")
            line = raw.decode("utf-8", "replace").strip()
            if not line:
                continue
            content += 1
            key, colon, value = line.partition(":")
            if key == "end_of_record":
                if current is None:
                    raise InputFileError(f"{path}:{number}: end_of_record without SF:")
                current = None
                continue
            if not colon:
                raise InputFileError(f"{path}:{number}: not an LCOV line: {line[:80]!r}")
            if key == "SF":
                if current is not None:
                    raise InputFileError(
                        f"{path}:{number}: SF: before the end_of_record of {source!r} "
                        f"(opened line {opened_at})"
                    )
                source, opened_at, records = value, number, records + 1
                current = accumulator.file(value)
                continue
            if key in ("TN", "VER"):
                continue
            if current is None:
                if key in ("DA", "BRDA", "LF", "LH", "BRF", "BRH"):
                    raise InputFileError(f"{path}:{number}: {key}: outside an SF: record")
                continue
            try:
                _lcov_field(accumulator, current, key, value)
            except (ValueError, IndexError) as error:
                if not raw.endswith(b"\n"):
                    raise InputFileError(
                        f"{path}:{number}: the file ends in the middle of a line (truncated?)"
                    ) from error
                raise InputFileError(f"{path}:{number}: bad {key}: line {value!r}") from error
    if not content:
        raise InputFileError(f"{path}: the file is empty; expected an LCOV tracefile")
    if records == 0:
        raise InputFileError(f"{path}: not an LCOV tracefile (no SF: record)")
    if current is not None:
        raise InputFileError(
            f"{path}:{opened_at}: the record for {source!r} has no end_of_record (truncated?)"
        )
    return accumulator.report("lcov")


def _lcov_field(accumulator: _Accumulator, lines: _Lines, key: str, value: str) -> None:
    if key == "DA":
        parts = value.split(",")
        accumulator.line(lines, int(parts[0]), int(float(parts[1])) > 0)
    elif key == "BRDA":
        line, block, branch, taken = value.split(",", 3)
        ident = (int(line), block, branch)
        hit = taken not in ("-", "0")
        lines.branches[ident] = bool(lines.branches.get(ident, False)) or hit
    elif key in ("LF", "LH", "BRF", "BRH"):
        slot = ("LF", "LH", "BRF", "BRH").index(key)
        lines.fallback[slot] = max(lines.fallback[slot], int(value))
