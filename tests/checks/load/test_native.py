"""gonogo installed without its C extensions (no C compiler): `gonogo validate` works, and a
load run says which compiler is missing and how to build, as a GonogoError.

The extensions are made unimportable in a fresh interpreter by a `sys.meta_path` finder
that refuses them, as an install whose build failed would leave it; `CC` names a compiler
that does not exist, as a machine without gcc.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

_WITHOUT_EXTENSIONS = """
import json, sys

class NotBuilt:
    def find_spec(self, name, path=None, target=None):
        if name in ("gonogo.loadgen._engine", "gonogo.faults._relay"):
            raise ImportError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, NotBuilt())
from gonogo.cli import main
from gonogo.errors import GonogoError

report = {"validated": []}
for plan in sys.argv[1:]:
    main(["validate", plan])  # exits (SystemExit) if the plan is refused or gonogo fails
    report["validated"].append(plan)

from gonogo.loadgen.engine import Endpoint, LoadSpec, run_load
from gonogo.loadgen.journey_load import run_journey_load
from gonogo.loadgen.settings import LoadSettings

journeys = LoadSettings.model_validate(
    {"model": "closed", "users": 1, "duration": "1s",
     "journeys": {"j": {"steps": [{"name": "s", "request": {"path": "/"}}]}}}
)
runs = {
    "requests": lambda: run_load(LoadSpec("127.0.0.1", 9, [Endpoint("e")], rate=10, duration=1)),
    "journeys": lambda: run_journey_load(journeys, "http://127.0.0.1:9", files={}, expand=str),
}
for name, run in runs.items():
    try:
        run()
    except GonogoError as error:
        report[name] = [type(error).__name__, str(error)]
report["imported"] = sorted(m for m in sys.modules if m.endswith(("._engine", "._relay")))
print(json.dumps(report))
"""


def test_without_the_c_extensions_validate_works_and_a_load_says_how_to_build() -> None:
    plans = [
        "examples/docservice/gonogo.yaml",
        "docs/examples/journeys_load/gonogo.yaml",
        "docs/examples/streaming/gonogo.yaml",
    ]
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_EXTENSIONS, *plans],
        cwd=ROOT,
        env={**os.environ, "CC": "gcc-missing"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["validated"] == plans  # load, soak, chaos with traffic, security; journeys; streams
    assert report["imported"] == []
    for traffic in ("requests", "journeys"):
        kind, message = report[traffic]
        assert kind == "EngineNotBuilt"
        assert "the C load engine (gonogo.loadgen._engine) is not built" in message
        assert "gcc-missing not found: apt-get install gcc python3-dev" in message
        assert "pip install -e ." in message
