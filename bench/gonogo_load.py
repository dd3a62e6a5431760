"""One gonogo load run (`run_load`, one worker on the calling thread) against a local server,
written as JSON: throughput, latency percentiles (corrected and uncorrected), whether every
response is in the histograms, the engine's own CPU time, and the per-second series.

    python bench/gonogo_load.py --port 8080 --model closed --users 50 --duration 10 --out r.json
    python bench/gonogo_load.py --port 8080 --model open --rate 5000 --duration 10 --out r.json

With `--expect-status`, `--body-contains` or `--json PATH=VALUE` (VALUE in JSON) every response
is checked by the engine as a request's `expect` would have it.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path
from typing import Any

from gonogo.journey.jsonpath import JsonPath
from gonogo.loadgen import histogram as hist
from gonogo.loadgen.engine import Endpoint, LoadSpec, run_load
from gonogo.loadgen.expect import JsonField, ResponseExpect

PERCENTILES = (50.0, 90.0, 99.0, 99.9, 100.0)
# for the coordinated-omission cross-check: how many corrected latencies reach each threshold
THRESHOLDS_MS = (50, 100, 200, 300, 400, 450, 500)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/index.html")
    parser.add_argument("--model", choices=("open", "closed"), required=True)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--rate", type=float)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--max-connections", type=int, default=100)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--expect-status", type=int, action="append", default=[])
    parser.add_argument("--body-contains")
    parser.add_argument("--json", action="append", default=[], metavar="PATH=VALUE")
    args = parser.parse_args()
    expect = None
    if args.expect_status or args.body_contains or args.json:
        fields = []
        for item in args.json:
            path, _, value = item.partition("=")
            fields.append(JsonField(path, JsonPath.parse(path).parts, json.loads(value)))
        expect = ResponseExpect(
            statuses=tuple(args.expect_status), body_contains=args.body_contains, json=tuple(fields)
        )

    spec = LoadSpec(
        host=args.host,
        port=args.port,
        endpoints=[Endpoint("static", path=args.path, expect=expect)],
        model=args.model,
        users=args.users,
        rate=args.rate,
        duration=args.duration,
        max_connections=args.max_connections,
        workers=1,
    )
    started = time.monotonic()
    result = run_load(spec)
    ended = time.monotonic()
    total = result.total
    overall = result.overall

    def pct(h: Any) -> dict[str, float]:
        return {f"p{p:g}": h.get_value_at_percentile(p) / 1000.0 for p in PERCENTILES}

    corrected_count = overall.corrected.get_total_count()
    uncorrected_count = overall.uncorrected.get_total_count()
    self_usage = resource.getrusage(resource.RUSAGE_SELF)
    document = {
        "tool": "gonogo",
        "model": args.model,
        "users": args.users if args.model == "closed" else None,
        "rate": args.rate,
        "max_connections": args.max_connections if args.model == "open" else None,
        "duration": args.duration,
        "run_started_monotonic": started,
        "run_ended_monotonic": ended,
        "requests": total.requests,
        "responses": total.responses,
        "scheduled": total.scheduled if args.model == "open" else None,
        "dropped": total.dropped,
        "late": total.late,
        "errors": dict(total.errors),
        "expect": repr(expect) if expect is not None else None,
        "status": {str(k): v for k, v in total.status.items()},
        "measured_seconds": result.measured_seconds,
        "wall_seconds": result.wall_seconds,
        "requests_per_second": result.throughput,
        "histogram_count_corrected": corrected_count,
        "histogram_count_uncorrected": uncorrected_count,
        "every_response_in_histogram": corrected_count == total.responses == uncorrected_count,
        "latency_ms_corrected": pct(overall.corrected),
        "latency_ms_uncorrected": pct(overall.uncorrected),
        "corrected_at_least_ms": {
            str(ms): sum(
                item.count_at_value_iterated_to
                for item in overall.corrected.get_recorded_iterator()
                if item.value_iterated_to >= ms * 1000
            )
            for ms in THRESHOLDS_MS
        },
        "engine_cpu_seconds": result.cpu_seconds,
        "engine_max_lag_ms": result.max_lag_us / 1000.0,
        "process_cpu_seconds_self": self_usage.ru_utime + self_usage.ru_stime,
        "series": [
            {
                "second": s.second,
                "responses": s.responses,
                "late": s.late,
                "dropped": s.dropped,
                "p99_ms": (s.percentile(99.0) or 0) / 1000.0,
                "max_lag_ms": s.max_lag_us / 1000.0,
            }
            for s in result.series
        ],
        "corrected_histogram": hist.encode(overall.corrected),
    }
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(
        f"gonogo {args.model}: {total.responses} responses, {result.throughput:.0f} req/s, "
        f"p99 corrected {document['latency_ms_corrected']['p99']:.2f} ms, "
        f"uncorrected {document['latency_ms_uncorrected']['p99']:.2f} ms"
    )


if __name__ == "__main__":
    main()
