"""Soak the healthy example for a long while, alone: issue 10's "a 10-minute soak of the
healthy example flags nothing".

    .venv/bin/python bench/soak_example.py            # 10 minutes at 40/s (about 11 with start and stop)
    .venv/bin/python bench/soak_example.py 30m 80/s   # any duration and rate

It writes `examples/docservice/soak-long.yaml` (git-ignored): the example's own plan with its
system and its `soak` check only, the duration and rate replaced, so the soak measures exactly
what `make demo` measures, for longer. It then runs `gonogo run` on it and exits with its code
(0 GO, 1 NO-GO). The run's evidence is in `examples/docservice/.gonogo/`, like the demo's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "docservice"
GONOGO = Path(sys.executable).parent / "gonogo"


def soak_plan(duration: str, rate: str) -> dict[str, object]:
    plan = yaml.safe_load((EXAMPLE / "gonogo.yaml").read_text())  # anchors resolved here
    soak = dict(plan["checks"]["soak"], duration=duration, rate=rate)
    return {
        "name": f"docservice-soak-{duration}",
        "system": plan["system"],
        "checks": {"soak": soak},
    }


def main(argv: list[str]) -> int:
    duration = argv[0] if argv else "10m"
    rate = argv[1] if len(argv) > 1 else "40/s"
    path = EXAMPLE / "soak-long.yaml"
    header = f"# written by bench/soak_example.py {' '.join(argv)}: the example's system and soak only\n"
    path.write_text(header + yaml.safe_dump(soak_plan(duration, rate), sort_keys=False))
    # the example's services run on `python` from PATH, as under `make demo`
    env = dict(os.environ, PATH=f"{GONOGO.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.call([str(GONOGO), "run", str(path)], cwd=EXAMPLE, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
