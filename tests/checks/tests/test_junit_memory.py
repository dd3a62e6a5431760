"""A huge JUnit file streams in bounded memory.

Each file is parsed in a fresh interpreter so that its peak RSS (ru_maxrss) says what the
parse cost, not what earlier tests left behind.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

MB = 1024 * 1024

_MEASURE = """
import json, resource, sys
from pathlib import Path
from gonogo.checks.tests.junit import parse_junit

before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
summary = parse_junit(Path(sys.argv[1]))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({
    "growth_kib": after - before,  # Linux reports ru_maxrss in KiB
    "total": summary.total, "failed": summary.failed, "flaky": summary.flaky,
}))
"""


def measure(path: Path) -> dict[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, int] = json.loads(done.stdout)
    return result


@pytest.fixture
def big_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    for path in tmp_path.iterdir():  # pytest keeps tmp dirs around; do not keep 200 MB
        path.unlink()


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss units differ off Linux")
def test_200_mb_of_captured_output_parses_in_bounded_memory(big_dir: Path) -> None:
    path = big_dir / "huge.xml"
    output = "2024-05-14 10:00:00,000 INFO worker processed chunk 123456 of document 42 &amp; more\n" * 20
    cases = 0
    with path.open("w") as handle:
        handle.write('<?xml version="1.0" encoding="utf-8"?>\n<testsuites><testsuite name="pytest">\n')
        while handle.tell() < 200 * MB:
            failure = '<failure message="boom">trace</failure>' if cases % 1000 == 999 else ""
            handle.write(
                f'<testcase classname="pkg.mod{cases // 100}" name="test_{cases}" time="0.001">'
                f"{failure}<system-out>{output}</system-out></testcase>\n"
            )
            cases += 1
        # pytest-rerunfailures' rerun of the first test (its failed attempt was written empty),
        # which now passes: counted once, as flaky, so the parser remembers every test of a
        # pytest suite (the part of memory that grows with distinct tests).
        handle.write('<testcase classname="pkg.mod0" name="test_0" time="0.001"/>\n')
        handle.write("</testsuite></testsuites>\n")
    assert path.stat().st_size > 200 * MB

    result = measure(path)

    assert result["total"] == cases
    assert result["failed"] == cases // 1000
    assert result["flaky"] == 1
    assert result["growth_kib"] * 1024 < 100 * MB, result


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss units differ off Linux")
def test_one_enormous_text_node_is_not_held_in_memory(big_dir: Path) -> None:
    path = big_dir / "one-text.xml"
    line = "x" * 1023 + "\n"
    with path.open("w") as handle:
        handle.write('<testsuite name="s"><testcase name="chatty"><system-out>')
        for _ in range(150 * 1024):  # 150 MiB in a single element
            handle.write(line)
        handle.write('</system-out><failure message="it talked too much"/></testcase></testsuite>')

    result = measure(path)

    assert (result["total"], result["failed"]) == (1, 1)
    assert result["growth_kib"] * 1024 < 50 * MB, result
