"""Summary of `bench/run.sh proxy`: nginx direct vs through gonogo's fault proxy (C relay, asyncio path).

    python bench/proxy_summary.py RESULTS_DIR/proxy      # writes summary.md and summary.json there

Per path and repetition: closed-model requests/s (50 users), open-model latency at a fixed rate, and
the proxy process's CPU per request. The targets: the relay adds at most 100 µs to p50 (open model,
each repetition's relay p50 minus the same repetition's direct p50) and carries at least 50% of the
direct requests/s (closed model, same repetition).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

PATHS = ("direct", "relay", "asyncio", "before")
P50_BUDGET_MS = 0.100
THROUGHPUT_FLOOR = 0.5


def _json(path: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(path.read_text())
    return result


def _proxy_cpu_seconds(path: Path) -> float | None:
    if not path.exists():
        return None
    before, after, ticks = (float(x) for x in path.read_text().split())
    return (after - before) / ticks


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _fmt(s: dict[str, float], digits: int = 0) -> str:
    return f"{s['median']:,.{digits}f} ({s['min']:,.{digits}f}-{s['max']:,.{digits}f})"


def summarize(folder: Path) -> dict[str, Any]:
    reps = sorted({int(p.name.split("-")[0][1:]) for p in folder.glob("r*-direct-closed.json")})
    per_rep: dict[str, list[dict[str, Any]]] = {path: [] for path in PATHS}
    for rep in reps:
        for path in PATHS:
            closed_file = folder / f"r{rep}-{path}-closed.json"
            if not closed_file.exists():
                continue
            closed = _json(closed_file)
            opened = _json(folder / f"r{rep}-{path}-open.json")
            cpu = _proxy_cpu_seconds(folder / f"r{rep}-{path}-closed.proxycpu")
            nginx_cpu = _proxy_cpu_seconds(folder / f"r{rep}-{path}-closed.server")
            stats_file = folder / f"r{rep}-{path}-proxy.stats.json"
            per_rep[path].append(
                {
                    "rep": rep,
                    "rps": closed["requests_per_second"],
                    "closed_errors": sum(closed["errors"].values()),
                    "closed_p50_ms": closed["latency_ms_corrected"]["p50"],
                    "open_rps": opened["requests_per_second"],
                    "open_errors": sum(opened["errors"].values()),
                    "open_dropped": opened["dropped"],
                    "open_p50_ms": opened["latency_ms_corrected"]["p50"],
                    "open_p99_ms": opened["latency_ms_corrected"]["p99"],
                    "proxy_cpu_us_per_request": None if cpu is None else cpu / closed["responses"] * 1e6,
                    "proxy_core_use": None if cpu is None else cpu / closed["wall_seconds"],
                    "nginx_cpu_us_per_request": (
                        None if nginx_cpu is None else nginx_cpu / closed["responses"] * 1e6
                    ),
                    "proxy_stats": _json(stats_file) if stats_file.exists() else None,
                }
            )
    summary: dict[str, Any] = {"reps": reps, "paths": {}}
    for path, rows in per_rep.items():
        if not rows:
            continue
        entry: dict[str, Any] = {"runs": rows}
        for key in ("rps", "closed_p50_ms", "open_p50_ms", "open_p99_ms"):
            entry[key] = _spread([r[key] for r in rows])
        cpu = [r["proxy_cpu_us_per_request"] for r in rows if r["proxy_cpu_us_per_request"] is not None]
        if cpu:
            entry["proxy_cpu_us_per_request"] = _spread(cpu)
            entry["proxy_core_use"] = _spread([r["proxy_core_use"] for r in rows])
        nginx = [r["nginx_cpu_us_per_request"] for r in rows if r["nginx_cpu_us_per_request"] is not None]
        if nginx:
            entry["nginx_cpu_us_per_request"] = _spread(nginx)
        entry["errors"] = sum(r["closed_errors"] + r["open_errors"] + r["open_dropped"] for r in rows)
        summary["paths"][path] = entry
    direct = {r["rep"]: r for r in per_rep["direct"]}
    for path in PATHS[1:]:
        pairs = [(direct[r["rep"]], r) for r in per_rep[path] if r["rep"] in direct]
        if not pairs:
            continue
        ratios = [p["rps"] / d["rps"] for d, p in pairs]
        added = [p["open_p50_ms"] - d["open_p50_ms"] for d, p in pairs]
        summary["paths"][path]["throughput_ratio"] = _spread(ratios)
        summary["paths"][path]["p50_added_ms"] = _spread(added)
        summary["paths"][path]["target_met_every_rep"] = all(r >= THROUGHPUT_FLOOR for r in ratios) and all(
            a <= P50_BUDGET_MS for a in added
        )
    return summary


def markdown(summary: dict[str, Any]) -> str:
    lines = [
        f"Fault proxy, no toxic: {len(summary['reps'])} repetitions, median (min-max)",
        "",
        "| path | requests/s (closed, 50 users) | vs direct | p50 at fixed rate (ms) | p50 added (µs) "
        "| p99 at fixed rate (ms) | proxy CPU per request (µs) | proxy core use | nginx CPU per request (µs) "
        "| errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for path, e in summary["paths"].items():
        ratio = e.get("throughput_ratio")
        added = e.get("p50_added_ms")
        cpu = e.get("proxy_cpu_us_per_request")
        use = e.get("proxy_core_use")
        nginx = e.get("nginx_cpu_us_per_request")
        lines.append(
            "| "
            + " | ".join(
                [
                    path,
                    _fmt(e["rps"]),
                    "" if ratio is None else _fmt({k: v * 100 for k, v in ratio.items()}) + "%",
                    _fmt(e["open_p50_ms"], 3),
                    "" if added is None else _fmt({k: v * 1000 for k, v in added.items()}),
                    _fmt(e["open_p99_ms"], 3),
                    "" if cpu is None else _fmt(cpu, 1),
                    "" if use is None else _fmt({k: v * 100 for k, v in use.items()}) + "%",
                    "" if nginx is None else _fmt(nginx, 1),
                    str(e["errors"]),
                ]
            )
            + " |"
        )
    relay = summary["paths"].get("relay")
    if relay is not None and "target_met_every_rep" in relay:
        verdict = "met" if relay["target_met_every_rep"] else "NOT met"
        lines += [
            "",
            f"Target (≤ 100 µs added to p50, ≥ 50% of direct requests/s, every repetition): {verdict}",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: proxy_summary.py RESULTS_DIR/proxy")
    folder = Path(sys.argv[1]).resolve()
    summary = summarize(folder)
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    text = markdown(summary)
    (folder / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
