"""The response parser of the C engine on the fuzzer's corpus (tests/fuzz/corpus), under
AddressSanitizer and UndefinedBehaviorSanitizer: the seeds (real-looking responses: chunked,
keep-alive, close-delimited, huge headers, bad chunk sizes, JSON bodies, Set-Cookie, a journey's
extractions) and every crash the fuzzer found since. Each input is parsed split at
pseudo-random points and again in one piece; the harness aborts if the two differ. `make fuzz`
runs the fuzzer itself."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from fuzz_build import BuildError, build
from fuzz_seeds import EXPECTED, SEEDS

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
BUILD = HERE.parent.parent / "build" / "fuzz"


def test_corpus_runs_clean_under_sanitizers() -> None:
    try:
        program = build("main", BUILD)
    except BuildError as error:
        pytest.skip(f"the fuzz harness does not build here: {error}")
    for name, data in SEEDS.items():  # the checked-in corpus is what fuzz_seeds.py writes
        assert (CORPUS / name).read_bytes() == data, (
            f"{name}: run python tests/fuzz/fuzz_seeds.py tests/fuzz/corpus"
        )
    inputs = sorted(CORPUS.iterdir())
    env = {
        **os.environ,
        "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1:halt_on_error=1",
        "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
    }
    done = subprocess.run(
        [str(program), *map(str, inputs)], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-6000:]
    assert "runtime error" not in done.stderr and "Sanitizer" not in done.stderr, done.stderr[-6000:]
    lines = dict(line.split(":", 1) for line in done.stdout.splitlines())
    assert sorted(lines) == [p.name for p in inputs]
    for name, expected in EXPECTED.items():
        assert lines[name].startswith(expected), f"{name}: {lines[name][:400]!r}"
