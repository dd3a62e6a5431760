"""Issue 12's check of `gonogo compare`: the example run twice unchanged and once with every API
response 20% slower (DOCSERVICE_SLOWDOWN=0.2); the comparison must say *slower* with an interval
excluding 0 for the slowed run, and *no significant difference* for the unchanged pair.

    .venv/bin/python bench/compare_slowdown.py         # three runs of ~75 s each, then two comparisons

The full plan takes 4-5 minutes a run; this runs a reduced copy of it: the example's system
and its `load` check as written (open model, 60/s for 60 s after 5 s of warm-up, the same five
requests), with the gates on the load and the services. It writes
`examples/docservice/compare-slowdown.yaml` (git-ignored) and keeps the runs in the example's
store (`examples/docservice/.gonogo/`); the comparisons go to `bench/results/compare-<time>/`
(`same.txt`, `slower.txt`, and both as JSON). Exit 0 when both comparisons say what they should.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "docservice"
GONOGO = Path(sys.executable).parent / "gonogo"


def reduced_plan() -> dict[str, object]:
    plan = yaml.safe_load((EXAMPLE / "gonogo.yaml").read_text())  # anchors resolved here
    gates = {
        metric: gate for metric, gate in plan["gates"].items() if metric.split(".")[0] in ("load", "service")
    }
    return {
        "name": "docservice-compare",
        "system": plan["system"],
        "checks": {"load": plan["checks"]["load"]},
        "gates": gates,
    }


def run(env: dict[str, str], path: Path) -> str:
    before = set(_runs())
    code = subprocess.call([str(GONOGO), "run", str(path)], cwd=EXAMPLE, env=env, stdout=subprocess.DEVNULL)
    (new,) = set(_runs()) - before
    slowdown = env.get("DOCSERVICE_SLOWDOWN")
    print(f"load average after the run: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"run {new}: exit {code} ({f'DOCSERVICE_SLOWDOWN={slowdown}' if slowdown else 'unchanged'})")
    return new


def _runs() -> list[str]:
    folder = EXAMPLE / ".gonogo" / "runs"
    return [path.name for path in folder.iterdir()] if folder.is_dir() else []


def compare(env: dict[str, str], a: str, b: str, out: Path, name: str) -> dict[str, object]:
    command = [str(GONOGO), "compare", a, b, "--plan", str(EXAMPLE)]
    text = subprocess.run(command, cwd=EXAMPLE, env=env, capture_output=True, text=True, check=False)
    (out / f"{name}.txt").write_text(
        f"$ gonogo compare {a} {b}\n{text.stdout}{text.stderr}exit {text.returncode}\n"
    )
    as_json = subprocess.run(
        [*command, "--format", "json"], cwd=EXAMPLE, env=env, capture_output=True, text=True, check=False
    )
    (out / f"{name}.json").write_text(as_json.stdout)
    print(text.stdout + f"exit {text.returncode}")
    document: dict[str, object] = json.loads(as_json.stdout)
    return document


def main() -> int:
    path = EXAMPLE / "compare-slowdown.yaml"
    path.write_text(
        "# written by bench/compare_slowdown.py: the example's system and load check\n"
        + yaml.safe_dump(reduced_plan(), sort_keys=False)
    )
    env = dict(os.environ, PATH=f"{GONOGO.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("DOCSERVICE_SLOWDOWN", None)
    first = run(env, path)
    second = run(env, path)
    slowed = run({**env, "DOCSERVICE_SLOWDOWN": "0.2"}, path)
    out = REPO / "bench" / "results" / f"compare-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True)
    same = compare(env, first, second, out, "same")
    slower = compare(env, first, slowed, out, "slower")
    slowed_endpoints = [
        c["metric"]
        for c in slower["latency"]  # type: ignore[attr-defined]
        if c["distribution"].startswith("endpoint.") and c["classification"] == "slower" and c["low"] > 0
    ]
    print(f"slower endpoints (interval excluding 0): {slowed_endpoints}")
    ok = same["summary"]["slower"] == 0 and bool(slowed_endpoints)  # type: ignore[index]
    print(f"results in {out}: {'as expected' if ok else 'NOT as expected'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
