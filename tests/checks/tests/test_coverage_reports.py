"""Coverage reports of each format, reduced to the same per-file counts.

Expected ratios are worked out by hand from the fixtures (see the comments).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gonogo.checks.tests.coverage import (
    CoverageReport,
    FileCoverage,
    detect_format,
    merge_reports,
    parse_coverage,
    parse_coveragepy_json,
)
from gonogo.checks.tests.globs import matches_any
from gonogo.errors import HostileInputError, InputFileError

COVERAGE = Path(__file__).resolve().parents[2] / "fixtures" / "coverage"
HOSTILE = COVERAGE / "hostile"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("coverage_py.xml", "cobertura"),
        ("cobertura_java.xml", "cobertura"),
        ("coverage.json", "coveragepy"),
        ("lcov.info", "lcov"),
    ],
)
def test_format_is_told_by_content(name: str, expected: str) -> None:
    assert detect_format(COVERAGE / name) == expected


def test_coveragepy_cobertura() -> None:
    report = parse_coverage(COVERAGE / "coverage_py.xml")
    totals = report.totals()
    # api 6/8, util 1/2, charge 4/6, refund 4/4 -> 15/20; branches 3/4 + 1/4 -> 4/8
    assert (totals.lines, totals.covered_lines) == (20, 15)
    assert totals.line_rate == pytest.approx(0.75)
    assert totals.branch_rate == pytest.approx(0.5)
    critical = report.select(["docsvc/payments/**"])
    assert critical is not None
    # charge 4/6 + refund 4/4
    assert (critical.files, critical.line_rate) == (2, pytest.approx(0.8))


def test_java_cobertura_with_doctype_methods_and_inner_classes() -> None:
    # The SYSTEM doctype is accepted (never fetched); method <lines> repeat the class's
    # and are not counted again; OrderService$Validator shares OrderService.java and
    # repeats line 16 (hit there), so the file has 7 lines, 6 hit.
    report = parse_coverage(COVERAGE / "cobertura_java.xml")
    files = {f.path: f for f in report.files}
    assert files["com/acme/docs/OrderService.java"] == FileCoverage(
        "com/acme/docs/OrderService.java", 7, 6, 6, 2
    )
    assert files["com/acme/docs/Invoice.java"] == FileCoverage("com/acme/docs/Invoice.java", 3, 0)
    totals = report.totals()
    assert totals.line_rate == pytest.approx(6 / 10)
    assert totals.branch_rate == pytest.approx(2 / 6)
    critical = report.select(["com/acme/docs/Order*.java"])
    assert critical is not None and critical.line_rate == pytest.approx(6 / 7)


def test_coveragepy_json() -> None:
    report = parse_coverage(COVERAGE / "coverage.json")
    totals = report.totals()
    # 0/0 + 6/8 + 4/5 + 3/3 -> 13/16; branches 3/4 + 1/2 -> 4/6
    assert (totals.lines, totals.covered_lines, totals.branches, totals.covered_branches) == (
        16,
        13,
        6,
        4,
    )
    assert totals.line_rate == pytest.approx(0.8125)
    assert totals.branch_rate == pytest.approx(4 / 6)
    critical = report.select(["src/docsvc/payments/**"])
    assert critical is not None and critical.line_rate == pytest.approx(7 / 8)


def test_coveragepy_json_without_branch_data(tmp_path: Path) -> None:
    path = tmp_path / "coverage.json"
    path.write_text(
        json.dumps(
            {
                "meta": {"format": 3, "branch_coverage": False},
                "files": {"a.py": {"summary": {"covered_lines": 3, "num_statements": 4}}},
                "totals": {"covered_lines": 3, "num_statements": 4},
            }
        )
    )
    totals = parse_coverage(path).totals()
    assert totals.line_rate == pytest.approx(0.75)
    assert totals.branch_rate is None


def test_lcov() -> None:
    report = parse_coverage(COVERAGE / "lcov.info")
    files = {f.path: f for f in report.files}
    # Two records for charge.js merge: lines {1,2,6,8}, hit {1,2,6}; BRDA "-" is not taken.
    assert files["src/payments/charge.js"] == FileCoverage("src/payments/charge.js", 4, 3, 2, 0)
    # No DA lines: LF/LH stand in.
    assert files["src/legacy/summary_only.js"] == FileCoverage("src/legacy/summary_only.js", 10, 5)
    totals = report.totals()
    # routes 4/5 + charge 3/4 + refund 3/3 + summary 5/10 -> 15/22; branches 1/2 + 0/2
    assert totals.line_rate == pytest.approx(15 / 22)
    assert totals.branch_rate == pytest.approx(0.25)


def test_critical_absolute_paths_match_relative_to_root() -> None:
    report = parse_coverage(COVERAGE / "lcov.info")
    relative_only = report.select(["src/payments/**"])
    assert relative_only is not None and relative_only.line_rate == pytest.approx(3 / 4)
    with_root = report.select(["src/payments/**"], root=Path("/home/runner/work/app/app"))
    # charge 3/4 + refund (written absolute) 3/3
    assert with_root is not None and with_root.line_rate == pytest.approx(6 / 7)


def test_critical_with_no_match_is_none() -> None:
    report = parse_coverage(COVERAGE / "coverage.json")
    assert report.select(["src/billing/**"]) is None


def test_explicit_format_overrides_detection() -> None:
    report = parse_coverage(COVERAGE / "lcov.info", "lcov")
    assert report.format == "lcov"
    with pytest.raises(InputFileError, match=r"not a Cobertura XML report|not well-formed"):
        parse_coverage(COVERAGE / "coverage.json", "cobertura")


def test_merge_disjoint_reports_and_refuse_overlap() -> None:
    a = CoverageReport("lcov", (FileCoverage("a.js", 10, 5),))
    b = CoverageReport("lcov", (FileCoverage("b.js", 10, 10),))
    merged = merge_reports([a, b], ["a.info", "b.info"])
    assert merged.totals().line_rate == pytest.approx(0.75)
    with pytest.raises(InputFileError, match=r"covered by both a\.info and again\.info"):
        merge_reports([a, a], ["a.info", "again.info"])


# -- refused input ------------------------------------------------------------------------


def test_cobertura_bomb_is_refused() -> None:
    path = HOSTILE / "cobertura_bomb.xml"
    with pytest.raises(HostileInputError, match=r"cobertura_bomb\.xml:2: refused: .*internal subset"):
        parse_coverage(path)


def test_cobertura_internal_subset_is_refused() -> None:
    # Even without entities: an internal subset can inject attribute defaults.
    with pytest.raises(HostileInputError, match=r"cobertura_internal_subset\.xml:2: refused"):
        parse_coverage(HOSTILE / "cobertura_internal_subset.xml")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("truncated.xml", r"truncated\.xml:6: the XML ends before the document is complete"),
        ("truncated.json", r"truncated\.json:1: it ends before the JSON is complete"),
        ("truncated.info", r"truncated\.info:10: the file ends in the middle of a line"),
        ("empty.info", r"empty\.info: the file is empty"),
    ],
)
def test_broken_reports_name_file_and_line(name: str, expected: str) -> None:
    with pytest.raises(InputFileError, match=expected):
        parse_coverage(HOSTILE / name)


def test_lcov_record_without_end_is_truncated(tmp_path: Path) -> None:
    path = tmp_path / "cut.info"
    path.write_text("SF:a.js\nDA:1,1\nend_of_record\nSF:b.js\nDA:1,1\n")
    with pytest.raises(InputFileError, match=r"cut\.info:4: the record for 'b.js' has no end_of_record"):
        parse_coverage(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SF:a.js\nDA:x,1\nend_of_record\n", r":2: bad DA: line 'x,1'"),
        ("DA:1,1\n", r":1: DA: outside an SF: record"),
        ("SF:a.js\nthis is not lcov\nend_of_record\n", r":2: not an LCOV line"),
        ("TN:\n", r"not an LCOV tracefile \(no SF: record\)"),
    ],
)
def test_malformed_lcov(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.info"
    path.write_text(text)
    with pytest.raises(InputFileError, match=expected):
        parse_coverage(path, "lcov")


def test_long_lcov_line_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "long.info"
    path.write_text("SF:" + "a" * 100_000 + "\n")
    with pytest.raises(InputFileError, match=r"long\.info:1: line longer than"):
        parse_coverage(path, "lcov")


def test_json_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "coverage.json"
    path.write_bytes((COVERAGE / "coverage.json").read_bytes())
    with pytest.raises(InputFileError, match=r"coverage\.json: refused: .* over the 100-byte limit"):
        parse_coveragepy_json(path, max_bytes=100)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"meta": {}}', 'no "files" object'),
        (
            '{"files": {"a.py": {"summary": {"num_statements": "x", "covered_lines": 1}}}}',
            "summary.num_statements should be a count",
        ),
        ("[" * 100_000 + "]" * 100_000, "refused: JSON nested absurdly deep"),
        ("[1, 2]", 'no "files" object'),
    ],
)
def test_json_that_is_not_coveragepy(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "c.json"
    path.write_text(content)
    with pytest.raises(InputFileError, match=expected):
        parse_coverage(path)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\x1f\x8b\x08\x00", "gzip-compressed"),
        (b"hello world", "cannot tell the coverage format"),
        (b"  \n", "the file is empty"),
        (b'<?xml version="1.0"?><report name="jacoco"/>', "a JaCoCo report"),
    ],
)
def test_unrecognised_coverage_files(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "cov"
    path.write_bytes(content)
    with pytest.raises(InputFileError, match=expected):
        parse_coverage(path)


# -- critical-path globs ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "pattern", "expected"),
    [
        ("src/payments/charge.py", "src/payments/**", True),
        ("src/payments/deep/refund.py", "src/payments/**", True),
        ("src/payments/charge.py", "src/**/charge.py", True),
        ("src/charge.py", "src/**/charge.py", True),  # **/ may match no directory
        ("src/payments/charge.py", "src/*.py", False),  # * stays in one segment
        ("src/a.py", "src/*.py", True),
        ("./src/a.py", "src/?.py", True),
        ("src\\win\\a.py", "src/win/*.py", True),
        ("src/b.py", "src/[ab].py", True),
        ("src/c.py", "src/[!ab].py", True),
        ("src/a.py", "src/[!ab].py", False),
        ("SRC/a.py", "src/*.py", False),
    ],
)
def test_critical_glob_semantics(path: str, pattern: str, expected: bool) -> None:
    assert matches_any(path, [pattern]) is expected
