"""gonogo's journeys engine on the bench journey against docservice, as the journeys check
drives it (`Engine(settings, base_url, ...)`, `asyncio.run(engine.run(...))`), written as
JSON: journeys/s, requests/s, and per-step latency percentiles (nearest rank, as the check).

    python bench/journeys_bench.py --base-url http://127.0.0.1:8000 --iterations 200 \\
        --concurrency 10 --out journeys.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from pathlib import Path
from typing import Any

from gonogo.checks.journeys.metrics import percentile
from gonogo.journey.engine import Engine, JourneyResult
from gonogo.journey.settings import JourneysSettings

JOURNEY = "register_login_list"
STEPS: list[dict[str, Any]] = [
    {
        "name": "register",
        "request": {
            "method": "POST",
            "path": "/register",
            "json": {"email": "bench-{uuid}@example.test", "password": "pw-{uuid}"},
        },
        "expect": {"status": 201},
    },
    {
        "name": "login",
        "request": {
            "method": "POST",
            "path": "/login",
            "json": {"email": "bench-{uuid}@example.test", "password": "pw-{uuid}"},
        },
        "expect": {"status": 200},
        "extract": {"token": "json:$.access_token"},
    },
    {
        "name": "list",
        "request": {"method": "GET", "path": "/documents", "headers": {"Authorization": "Bearer {token}"}},
        "expect": {"status": 200},
    },
    {"name": "health", "request": {"method": "GET", "path": "/health"}, "expect": {"status": 200}},
]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    settings = JourneysSettings.model_validate(
        {
            "request_timeout": "30s",
            "journeys": {
                JOURNEY: {"iterations": args.iterations, "concurrency": args.concurrency, "steps": STEPS}
            },
        }
    )
    engine = Engine(settings, args.base_url, files={}, expand=lambda text: text, progress=lambda _: None)
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    results: list[JourneyResult] = asyncio.run(engine.run(on_journey_done=lambda _: None))
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)

    (result,) = results
    iterations = result.iterations
    passed = [item for item in iterations if item.ok]
    requests = sum(step.attempts for item in iterations for step in item.steps)
    steps: dict[str, Any] = {}
    for step in STEPS:
        name = step["name"]
        latencies = [s.latency for item in iterations for s in item.steps if s.step == name and s.ok]
        figures: dict[str, Any] = {
            "executions": sum(1 for item in iterations for s in item.steps if s.step == name),
            "passed": len(latencies),
        }
        if latencies:
            for rank in (50, 95, 99):
                figures[f"p{rank}_ms"] = 1000 * percentile(latencies, rank)
            figures["mean_ms"] = 1000 * sum(latencies) / len(latencies)
            figures["max_ms"] = 1000 * max(latencies)
        steps[name] = figures
    durations = [item.duration for item in passed]
    document = {
        "tool": "gonogo-journeys",
        "iterations": len(iterations),
        "concurrency": args.concurrency,
        "passed": len(passed),
        "failures": [failure.summary() for failure in result.failures[:5]],
        "elapsed_seconds": elapsed,
        "journeys_per_second": len(passed) / elapsed,
        "requests": requests,
        "requests_per_second": requests / elapsed,
        "journey_p50_ms": 1000 * percentile(durations, 50) if durations else None,
        "journey_p95_ms": 1000 * percentile(durations, 95) if durations else None,
        "steps": steps,
        "client_cpu_seconds": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
    }
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(
        f"gonogo journeys: {len(passed)}/{len(iterations)} passed in {elapsed:.2f} s: "
        f"{document['journeys_per_second']:.2f} journeys/s, {document['requests_per_second']:.1f} requests/s"
    )


if __name__ == "__main__":
    main()
