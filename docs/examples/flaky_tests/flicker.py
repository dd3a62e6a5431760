"""A stand-in test runner for docs/flaky-tests.md: writes a JUnit report in which
`test_upload_retries` fails on every second run (a counter file, runs.txt, says which run
this is) and `test_checksum` breaks on the third run and stays broken.

Run `gonogo run` here a few times and watch `history.flaky_tests`.
"""

import pathlib

counter = pathlib.Path("runs.txt")
run = int(counter.read_text()) + 1 if counter.exists() else 1
counter.write_text(f"{run}\n")


def case(name: str, failing: bool) -> str:
    failure = '<failure message="AssertionError"/>' if failing else ""
    return f'<testcase classname="tests.test_api" name="{name}">{failure}</testcase>'


pathlib.Path("junit.xml").write_text(
    '<testsuite name="api">'
    + case("test_upload_retries", failing=run % 2 == 0)  # ✓✗✓✗…: flaky from the third run
    + case("test_checksum", failing=run >= 3)  # ✓✓✗✗…: one flip, a regression, not flaky
    + case("test_listing", failing=False)
    + "</testsuite>\n"
)
