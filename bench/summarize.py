"""Read one bench run's raw outputs (bench/results/<run>/) and write summary.json and
summary.md beside them; print the markdown.

    python bench/summarize.py bench/results/latest

Layout read (written by bench/run.sh): machine.json; throughput/, omission/ and journeys/
with, per run, `r<N>-<tool>.*`: gonogo's own JSON, wrk's stdout/stderr (the WRKJSON line of
wrk_report.lua), Locust's --json-file, and `/usr/bin/time -f "%U %S %e"` of the client
process (`.time`). journey3/ and journey-omission/ (issue 11): gonogo's report.json of a
`gonogo run` with its load histograms and iteration counts (`.report.json`, `.histograms.json`,
`.iterations.json`), wrk's WRKJSON line of wrk_journey.lua, Locust's --json-file.
"""

from __future__ import annotations

import json
import math
import re
import statistics
import sys
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

# targets of issue 3
RPS_RATIO_TARGET = 10.0  # gonogo >= 10x Locust FastHttpUser requests/s on one core
CPU_RATIO_TARGET = 1.5  # gonogo CPU per request <= 1.5x wrk's
P99_TOLERANCE = 0.10  # gonogo's p99 within 10% of the true value
# targets of issue 11 (the 3-step journey): the same ratio and tolerance
JOURNEY_STEPS = ("login", "item", "static")
JOURNEY = "journey3"

_RUN = re.compile(r"^r(\d+)-([a-z]+(?:-[a-z]+)?)$")
# gonogo with every response checked (bench/run.sh, EXPECT=1)
_CHECKED = {"gonogo-body": "status + body_contains", "gonogo-json": "status + 2 JSON fields"}


# -- reading raw outputs ------------------------------------------------------------------


def read_time(path: Path) -> dict[str, float]:
    """`/usr/bin/time -f "%U %S %e"` output: the last line (a line before it may say that the
    command exited non-zero)."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    user, system, elapsed = (float(x) for x in lines[-1].split())
    return {"cpu_user": user, "cpu_sys": system, "cpu": user + system, "elapsed": elapsed}


def read_wrk(stem: Path) -> dict[str, Any]:
    err = stem.with_suffix(".err").read_text()
    line = next(line for line in err.splitlines() if line.startswith("WRKJSON "))
    data: dict[str, Any] = json.loads(line[len("WRKJSON ") :])
    data["duration_s"] = data["duration_us"] / 1e6
    data["rps"] = data["requests"] / data["duration_s"]
    return data


def locust_percentile(response_times: Mapping[int, int], total: int, fraction: float) -> int:
    """Locust's own `calculate_response_time_percentile` (ms, on its rounded buckets)."""
    wanted = int(total * fraction)
    processed = 0
    for value in sorted(response_times, reverse=True):
        processed += response_times[value]
        if total - processed <= wanted:
            return value
    return 0


def read_locust(stem: Path) -> dict[str, Any]:
    """Locust's --json-file: one entry per request name; totals and per-name figures."""
    entries = json.loads(stem.with_suffix(".json").read_text())
    names: dict[str, Any] = {}
    merged: dict[int, int] = {}
    for entry in entries:
        times = {int(k): v for k, v in entry["response_times"].items()}
        for k, v in times.items():
            merged[k] = merged.get(k, 0) + v
        count = entry["num_requests"]
        names[entry["name"]] = {
            "requests": count,
            "failures": entry["num_failures"],
            "histogram_count": sum(times.values()),
            "p50_ms": locust_percentile(times, count, 0.50),
            "p95_ms": locust_percentile(times, count, 0.95),
            "p99_ms": locust_percentile(times, count, 0.99),
            "max_ms": entry["max_response_time"],
            "mean_ms": entry["total_response_time"] / count if count else None,
        }
    requests = sum(e["num_requests"] for e in entries)
    start = min(e["start_time"] for e in entries)
    end = max(e["last_request_timestamp"] for e in entries)
    return {
        "requests": requests,
        "failures": sum(e["num_failures"] for e in entries),
        "histogram_count": sum(merged.values()),
        "duration_s": end - start,
        "rps": requests / (end - start),
        "p50_ms": locust_percentile(merged, requests, 0.50),
        "p99_ms": locust_percentile(merged, requests, 0.99),
        "p999_ms": locust_percentile(merged, requests, 0.999),
        "max_ms": max(e["max_response_time"] for e in entries),
        "names": names,
    }


def runs(folder: Path) -> list[tuple[int, str, Path]]:
    """(rep, tool, stem) of every run in a folder, in the order they ran (by .time mtime)."""
    found = []
    for path in folder.glob("r*-*.time"):
        match = _RUN.match(path.stem)
        if match:
            found.append((path.stat().st_mtime, int(match.group(1)), match.group(2), path.with_suffix("")))
    return [(rep, tool, stem) for _, rep, tool, stem in sorted(found)]


def cores(stem: Path) -> dict[str, float]:
    """Busy seconds of the generator's and the server's core during the run (any process)."""
    path = stem.with_suffix(".cores")
    if not path.exists():
        return {}
    gen0, gen1, server0, server1, ticks = (int(x) for x in path.read_text().split())
    return {"gen_core_busy": (gen1 - gen0) / ticks, "server_core_busy": (server1 - server0) / ticks}


def loadavg(stem: Path) -> str | None:
    path = stem.with_suffix(".loadavg")
    return " ".join(path.read_text().split()[:3]) if path.exists() else None


# -- statistics ---------------------------------------------------------------------------


def spread(values: Iterable[float | None]) -> dict[str, Any]:
    got = [v for v in values if v is not None]
    if not got:
        return {"median": None, "min": None, "max": None, "n": 0, "values": []}
    return {"median": statistics.median(got), "min": min(got), "max": max(got), "n": len(got), "values": got}


def fmt(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


def fmt_spread(s: Mapping[str, Any], digits: int = 0) -> str:
    if not s["n"]:
        return "n/a"
    if s["n"] == 1:
        return fmt(s["median"], digits)
    return f"{fmt(s['median'], digits)} ({fmt(s['min'], digits)}-{fmt(s['max'], digits)})"


# -- the three benchmarks -----------------------------------------------------------------


def throughput(folder: Path) -> dict[str, Any]:
    records = []
    for rep, tool, stem in runs(folder):
        cpu = read_time(stem.with_suffix(".time"))
        record: dict[str, Any] = {"rep": rep, "tool": tool, "loadavg": loadavg(stem), **cpu, **cores(stem)}
        server = stem.with_suffix(".server")
        if server.exists():
            before, after, ticks = (int(float(x)) for x in server.read_text().split())
            record["server_cpu"] = (after - before) / ticks
        if tool.startswith("gonogo"):
            data = json.loads(stem.with_suffix(".json").read_text())
            record.update(
                requests=data["responses"],
                rps=data["requests_per_second"],
                errors=sum(data["errors"].values()),
                histogram_count=data["histogram_count_corrected"],
                every_request_in_histogram=data["every_response_in_histogram"],
                engine_cpu=data["engine_cpu_seconds"],
                engine_cpu_per_request_us=1e6 * data["engine_cpu_seconds"] / data["responses"],
                p99_ms=data["latency_ms_corrected"]["p99"],
            )
        elif tool == "wrk":
            data = read_wrk(stem)
            # the histogram count of wrk_report.lua is the bench's own work, not wrk's
            count_cpu = data.get("count_cpu_seconds", 0.0)
            record["cpu_raw"] = record["cpu"]
            record["cpu"] = max(0.0, record["cpu"] - count_cpu)
            record.update(
                count_cpu=count_cpu,
                requests=data["requests"],
                rps=data["rps"],
                errors=sum(data["errors"].values()),
                histogram_count=data["histogram_count"],
                # wrk's stats_correct adds synthetic samples, so the count can only be >=
                every_request_in_histogram=data["histogram_count"] >= data["requests"]
                and data["errors"]["timeout"] == 0,
                p99_ms=data["p99_us"] / 1000,
            )
        else:
            data = read_locust(stem)
            record.update(
                requests=data["requests"],
                rps=data["rps"],
                errors=data["failures"],
                histogram_count=data["histogram_count"],
                every_request_in_histogram=data["histogram_count"] == data["requests"],
                p99_ms=data["p99_ms"],
            )
        record["cpu_per_request_us"] = 1e6 * record["cpu"] / record["requests"]
        if "server_cpu" in record:
            record["server_cpu_per_request_us"] = 1e6 * record["server_cpu"] / record["requests"]
            if "server_core_busy" in record:
                # busy time of the cores not spent in the client (raw CPU, the bench's wrk histogram
                # count included) or the server: other processes, and interrupts of no process
                record["gen_core_other"] = record["gen_core_busy"] - record.get("cpu_raw", record["cpu"])
                record["server_core_other"] = record["server_core_busy"] - record["server_cpu"]
        records.append(record)

    tools: dict[str, Any] = {}
    for tool in ("gonogo", "wrk", "locust", "gonogo-item", *_CHECKED):
        mine = [r for r in records if r["tool"] == tool]
        tools[tool] = {
            "rps": spread(r["rps"] for r in mine),
            "cpu_per_request_us": spread(r["cpu_per_request_us"] for r in mine),
            "cpu_utilisation": spread(r["cpu"] / r["elapsed"] for r in mine),
            "engine_cpu_per_request_us": spread(r.get("engine_cpu_per_request_us") for r in mine),
            "server_cpu_per_request_us": spread(r.get("server_cpu_per_request_us") for r in mine),
            "server_cpu_utilisation": spread(
                r["server_cpu"] / (r["requests"] / r["rps"]) if "server_cpu" in r else None for r in mine
            ),
            "every_request_in_histogram": all(r["every_request_in_histogram"] for r in mine)
            if mine
            else None,
            "errors": sum(r["errors"] for r in mine),
        }
    targets: dict[str, Any] = {}
    g, w, loc = tools["gonogo"], tools["wrk"], tools["locust"]
    if g["rps"]["n"] and loc["rps"]["n"]:
        ratio = g["rps"]["median"] / loc["rps"]["median"]
        # what one core could do if the generator were the bottleneck: 1 / CPU per request
        capacity = (1e6 / g["cpu_per_request_us"]["median"]) / (1e6 / loc["cpu_per_request_us"]["median"])
        targets["rps_vs_locust"] = {
            "ratio": ratio,
            "target": RPS_RATIO_TARGET,
            "met": ratio >= RPS_RATIO_TARGET,
            "cpu_capacity_ratio": capacity,
        }
    if g["cpu_per_request_us"]["n"] and w["cpu_per_request_us"]["n"]:
        ratio = g["cpu_per_request_us"]["median"] / w["cpu_per_request_us"]["median"]
        engine = None
        if g["engine_cpu_per_request_us"]["n"]:
            engine = g["engine_cpu_per_request_us"]["median"] / w["cpu_per_request_us"]["median"]
        targets["cpu_vs_wrk"] = {
            "ratio": ratio,
            "target": CPU_RATIO_TARGET,
            "met": ratio <= CPU_RATIO_TARGET,
            "engine_thread_ratio": engine,
        }
    checked = {}
    base = tools["gonogo-item"]  # the same file, unchecked
    for tool in _CHECKED:
        c = tools[tool]
        if c["cpu_per_request_us"]["n"] and base["cpu_per_request_us"]["n"]:
            checked[tool] = {
                "cpu_ratio": c["cpu_per_request_us"]["median"] / base["cpu_per_request_us"]["median"],
                "engine_ratio": c["engine_cpu_per_request_us"]["median"]
                / base["engine_cpu_per_request_us"]["median"],
            }
    return {"runs": records, "tools": tools, "targets": targets, "checked": checked}


def omission(folder: Path, drain_rate: float | None) -> dict[str, Any]:
    """`drain_rate`: requests/s the server gives gonogo when it is the bottleneck (the closed
    model's throughput of benchmark 1), for the true value with a finite drain after the stall."""
    records = []
    for rep, tool, stem in runs(folder):
        pause = json.loads(Path(f"{stem}-pause.json").read_text())
        record: dict[str, Any] = {
            "rep": rep,
            "tool": tool,
            "loadavg": loadavg(stem),
            "pause_ms": 1000 * pause["pause_seconds"],
            **read_time(stem.with_suffix(".time")),
        }
        if tool == "gonogo":
            data = json.loads(stem.with_suffix(".json").read_text())
            rate, duration = data["rate"], data["duration"]
            scheduled = data["scheduled"]
            service_ms = data["latency_ms_uncorrected"]["p50"]
            pause_s = pause["pause_seconds"]
            # a request arriving u seconds into a stall of D seconds waits D - u (plus service):
            # the 1% slowest of R*T requests are the first 0.01*R*T/R = 0.01*T seconds of arrivals
            true_ideal_ms = 1000 * (0.5 - 0.01 * duration)
            true_measured_ms = 1000 * (pause_s - 0.01 * scheduled / rate) + service_ms
            # after the stall the backlog drains at mu, FIFO: the request that arrived u seconds
            # into it finishes R*u/mu after the resume, so it waited D - u*(1 - R/mu)
            slow = 1 - rate / drain_rate if drain_rate and drain_rate > rate else None
            true_drain_ms = (
                1000 * (pause_s - 0.01 * scheduled / rate * slow) + service_ms if slow is not None else None
            )
            at_least = {int(k): v for k, v in data["corrected_at_least_ms"].items()}
            record.update(
                requests=data["responses"],
                scheduled=scheduled,
                dropped=data["dropped"],
                errors=sum(data["errors"].values()),
                rps=data["requests_per_second"],
                p99_ms=data["latency_ms_corrected"]["p99"],
                p99_uncorrected_ms=data["latency_ms_uncorrected"]["p99"],
                p50_uncorrected_ms=service_ms,
                max_ms=data["latency_ms_corrected"]["p100"],
                stall_at_s=pause["stopped_monotonic"] - data["run_started_monotonic"],
                true_ideal_ms=true_ideal_ms,
                true_measured_pause_ms=true_measured_ms,
                true_with_drain_ms=true_drain_ms,
                drain_rate=drain_rate,
                error_vs_ideal=data["latency_ms_corrected"]["p99"] / true_ideal_ms - 1,
                error_vs_measured_pause=data["latency_ms_corrected"]["p99"] / true_measured_ms - 1,
                every_request_in_histogram=data["every_response_in_histogram"],
                # the cross-check: responses at >= x ms should be about R * (D - x)
                at_least_ms={
                    x: {
                        "measured": n,
                        "ideal": max(0.0, rate * (pause_s - x / 1000)),
                        "with_drain": max(0.0, rate * (pause_s - x / 1000) / slow) if slow else None,
                    }
                    for x, n in at_least.items()
                },
                series=data["series"],
            )
        elif tool == "wrk":
            data = read_wrk(stem)
            record.update(
                requests=data["requests"],
                errors=sum(data["errors"].values()),
                rps=data["rps"],
                p99_ms=data["p99_us"] / 1000,
                max_ms=data["max_us"] / 1000,
                histogram_count=data["histogram_count"],
                synthetic_samples=data["histogram_count"] - data["requests"],
            )
        else:
            data = read_locust(stem)
            record.update(
                requests=data["requests"],
                errors=data["failures"],
                rps=data["rps"],
                p99_ms=data["p99_ms"],
                max_ms=data["max_ms"],
                histogram_count=data["histogram_count"],
            )
        records.append(record)

    tools: dict[str, Any] = {}
    for tool in ("gonogo", "wrk", "locust"):
        mine = [r for r in records if r["tool"] == tool]
        tools[tool] = {
            "p99_ms": spread(r["p99_ms"] for r in mine),
            "rps": spread(r["rps"] for r in mine),
            "max_ms": spread(r["max_ms"] for r in mine),
            "pause_ms": spread(r["pause_ms"] for r in mine),
        }
    g = [r for r in records if r["tool"] == "gonogo"]
    tools["gonogo"]["p99_uncorrected_ms"] = spread(r["p99_uncorrected_ms"] for r in g)
    targets = {}
    if g:
        worst = max(g, key=lambda r: abs(r["error_vs_ideal"]))
        drained = [r["true_with_drain_ms"] for r in g if r["true_with_drain_ms"] is not None]
        targets["p99_within_10pct"] = {
            "true_ideal_ms": g[0]["true_ideal_ms"],
            "true_with_drain_ms": statistics.median(drained) if drained else None,
            "median_p99_ms": tools["gonogo"]["p99_ms"]["median"],
            "median_error": tools["gonogo"]["p99_ms"]["median"] / g[0]["true_ideal_ms"] - 1,
            "worst_error": worst["error_vs_ideal"],
            "met": all(abs(r["error_vs_ideal"]) <= P99_TOLERANCE for r in g),
        }
    return {"runs": records, "tools": tools, "targets": targets}


def journeys(folder: Path) -> dict[str, Any]:
    records = []
    for rep, tool, stem in runs(folder):
        cpu = read_time(stem.with_suffix(".time"))
        record: dict[str, Any] = {"rep": rep, "tool": tool, "loadavg": loadavg(stem), **cpu}
        if tool == "gonogo":
            data = json.loads(stem.with_suffix(".json").read_text())
            record.update(
                journeys=data["passed"],
                attempted=data["iterations"],
                failures=data["failures"],
                elapsed_s=data["elapsed_seconds"],
                journeys_per_second=data["journeys_per_second"],
                requests=data["requests"],
                rps=data["requests_per_second"],
                steps={
                    name: {"p50_ms": s.get("p50_ms"), "p95_ms": s.get("p95_ms"), "passed": s["passed"]}
                    for name, s in data["steps"].items()
                },
            )
        else:
            data = read_locust(stem)
            names = data["names"]
            health = names.get("health", {"requests": 0, "failures": 0})
            done = health["requests"] - health["failures"]
            record.update(
                journeys=done,
                failures=data["failures"],
                elapsed_s=data["duration_s"],
                journeys_per_second=done / data["duration_s"],
                requests=data["requests"],
                rps=data["rps"],
                steps={
                    name: {
                        "p50_ms": s["p50_ms"],
                        "p95_ms": s["p95_ms"],
                        "passed": s["requests"] - s["failures"],
                    }
                    for name, s in names.items()
                },
            )
        records.append(record)
    tools: dict[str, Any] = {}
    for tool in ("gonogo", "locust"):
        mine = [r for r in records if r["tool"] == tool]
        steps = sorted({name for r in mine for name in r["steps"]}, key=_step_order)
        tools[tool] = {
            "journeys_per_second": spread(r["journeys_per_second"] for r in mine),
            "rps": spread(r["rps"] for r in mine),
            "steps": {
                name: {
                    "p50_ms": spread(r["steps"].get(name, {}).get("p50_ms") for r in mine),
                    "p95_ms": spread(r["steps"].get(name, {}).get("p95_ms") for r in mine),
                }
                for name in steps
            },
        }
    return {"runs": records, "tools": tools}


def _step_order(name: str) -> int:
    order = ["register", "login", "list", "health"]
    return order.index(name) if name in order else len(order)


# -- the journey benchmarks of issue 11 ------------------------------------------------------


def _histograms(stem: Path) -> dict[str, Any]:
    """gonogo's load histograms (the artifact load-histograms.json), decoded; {} if absent."""
    path = stem.with_suffix(".histograms.json")
    if not path.exists():
        return {}
    from hdrh.histogram import HdrHistogram  # gonogo's venv: summarize runs with its Python

    data = json.loads(path.read_text())

    def decode(pair: Mapping[str, str]) -> dict[str, Any]:
        return {kind: HdrHistogram.decode(text.encode("ascii")) for kind, text in pair.items()}

    return {
        "overall": decode(data["overall"]),
        "endpoints": {name: decode(pair) for name, pair in data.get("endpoints", {}).items()},
        "journeys": {name: decode(pair) for name, pair in data.get("journeys", {}).items()},
    }


def _ms_at(h: Any, percentile: float) -> float | None:
    return h.get_value_at_percentile(percentile) / 1000 if h.get_total_count() else None


def _at_least(h: Any, ms: float) -> int:
    """How many recorded values are >= ms."""
    return sum(
        item.count_at_value_iterated_to
        for item in h.get_recorded_iterator()
        if item.value_iterated_to >= ms * 1000
    )


def _exit_status(stem: Path) -> int:
    """The generator's exit status, as /usr/bin/time wrote it (gonogo: 1 is a NO-GO verdict)."""
    found = re.search(r"exited with non-zero status (\d+)", stem.with_suffix(".time").read_text())
    return int(found.group(1)) if found else 0


def read_gonogo_run(stem: Path) -> dict[str, Any]:
    """A `gonogo run` of the journey plan: its load metrics (report.json), measured window,
    driver (the metrics' source), latency from its histograms when the run was invalid (a user
    sees none then: the generator was the bottleneck), iteration counts."""
    report = json.loads(stem.with_suffix(".report.json").read_text())
    metrics = {m["full_name"].removeprefix("load."): m for m in report["metrics"] if m["check"] == "load"}

    def value(name: str) -> float | None:
        return metrics[name]["value"] if name in metrics else None

    def ms(name: str) -> float | None:
        got = value(name)
        return 1000 * got if got is not None else None

    window = metrics["requests"]
    start = datetime.fromisoformat(window["window_start"])
    measured_s = (datetime.fromisoformat(window["window_end"]) - start).total_seconds()
    requests = int(value("requests") or 0)
    iterations = int(value("iterations") or 0)
    h = _histograms(stem)
    record: dict[str, Any] = {
        "check_status": report["checks"][0]["status"],
        "check_message": report["checks"][0]["message"],
        "decision": report["run"].get("decision"),
        "exit_status": _exit_status(stem),
        # which driver ran the journeys: generator.fast_path says (its source: why), or, before it
        # existed, the load metrics' source ("one asyncio loop": the httpx driver)
        "driver": (
            ("C engine: " if value("generator.fast_path") == 1 else "Python driver: ")
            + metrics["generator.fast_path"]["source"]
            if "generator.fast_path" in metrics
            else window["source"]
        ),
        "fast_path": value("generator.fast_path"),
        "window_start": start.timestamp(),
        "measured_s": measured_s,
        "requests": requests,
        "rps": value("rps"),
        "iterations": iterations,
        "iterations_per_second": iterations / measured_s if measured_s else None,
        "errors": int(value("errors") or 0),
        "errors_4xx": int(value("errors.4xx") or 0),
        "success_rate": value("success_rate"),
        "late": value("late"),
        "dropped": value("dropped"),
        "generator_valid": value("generator.valid"),
        "generator_cpu": value("generator.cpu"),
        "generator_late": value("generator.late"),
        "generator_max_lag_ms": ms("generator.max_lag"),
        "steps": {
            step: {
                "requests": int(value(f"endpoint.{JOURNEY}.{step}.requests") or 0),
                "errors": int(value(f"endpoint.{JOURNEY}.{step}.errors") or 0),
            }
            for step in JOURNEY_STEPS
        },
        "p95_ms": ms("latency.p95"),
        "p99_ms": ms("latency.p99"),
        "journey_p99_ms": ms(f"journey.{JOURNEY}.duration.p99"),
        "latency_from": "metrics",
    }
    if record["generator_cpu"] is not None:
        # the driver's thread alone, during the measured phase (generator.cpu is its share)
        record["driver_cpu_s"] = record["generator_cpu"] * measured_s
    path = stem.with_suffix(".iterations.json")
    if path.exists():
        record["iteration_counts"] = json.loads(path.read_text()).get("iterations", {})
    if h:
        corrected, uncorrected = h["overall"]["corrected"], h["overall"]["uncorrected"]
        journey = h["journeys"].get(JOURNEY, {})
        record.update(
            histogram_count_corrected=int(corrected.get_total_count()),
            histogram_count_uncorrected=int(uncorrected.get_total_count()),
            hist_p50_uncorrected_ms=_ms_at(uncorrected, 50),
            hist_p95_ms=_ms_at(corrected, 95),
            hist_p99_ms=_ms_at(corrected, 99),
            hist_max_ms=_ms_at(corrected, 100),
            hist_journey_p99_ms=_ms_at(journey["corrected"], 99) if journey else None,
            hist_journey_p50_uncorrected_ms=_ms_at(journey["uncorrected"], 50) if journey else None,
            journey_histogram_count=int(journey["corrected"].get_total_count()) if journey else None,
            at_least_ms={x: _at_least(corrected, x) for x in (50, 100, 200, 300, 400, 450, 500)},
        )
        # a request without a response (connection error, timeout) has no latency to record
        answered = requests - int(value("errors.connection") or 0) - int(value("errors.timeout") or 0)
        record["every_request_in_histogram"] = (
            record["histogram_count_corrected"] == record["histogram_count_uncorrected"] == answered
        )
        if record["p95_ms"] is None:  # an invalid run: the histogram holds what it measured
            record.update(
                p95_ms=record["hist_p95_ms"],
                p99_ms=record["hist_p99_ms"],
                journey_p99_ms=record["hist_journey_p99_ms"],
                latency_from="histogram artifact (the run was invalid: no latency metric)",
            )
    return record


def read_wrk_journey(stem: Path) -> dict[str, Any]:
    data = read_wrk(stem)
    bad = sum(v["bad"] for v in data["steps"].values())
    return {
        "requests": data["requests"],
        "rps": data["rps"],
        "iterations": data["journeys"],
        "iterations_per_second": data["journeys"] / data["duration_s"],
        # a 401 (or any status >= 400) is one of wrk's status errors too: not counted twice
        "errors": sum(data["errors"].values()) + bad - data["errors"]["status"],
        "errors_4xx": data["errors"]["status"],
        "steps": {
            step: {"requests": v["ok"] + v["bad"], "errors": v["bad"]} for step, v in data["steps"].items()
        },
        "p95_ms": data["p95_us"] / 1000,
        "p99_ms": data["p99_us"] / 1000,
        "max_ms": data["max_us"] / 1000,
    }


def read_locust_journey(stem: Path) -> dict[str, Any]:
    data = read_locust(stem)
    names = data["names"]
    static = names.get("static", {"requests": 0, "failures": 0})
    done = static["requests"] - static["failures"]
    # its p95 over every request, on Locust's own rounded buckets
    entries = json.loads(stem.with_suffix(".json").read_text())
    merged: dict[int, int] = {}
    for entry in entries:
        for k, v in entry["response_times"].items():
            merged[int(k)] = merged.get(int(k), 0) + v
    return {
        "requests": data["requests"],
        "rps": data["rps"],
        "iterations": done,
        "iterations_per_second": done / data["duration_s"],
        "errors": data["failures"],
        "errors_4xx": None,
        "steps": {
            step: {"requests": names[step]["requests"], "errors": names[step]["failures"]}
            for step in JOURNEY_STEPS
            if step in names
        },
        "p95_ms": locust_percentile(merged, data["requests"], 0.95),
        "p99_ms": data["p99_ms"],
        "max_ms": data["max_ms"],
        "every_request_in_histogram": data["histogram_count"] == data["requests"],
    }


def journey3(folder: Path) -> dict[str, Any]:
    records = []
    for rep, tool, stem in runs(folder):
        record: dict[str, Any] = {
            "rep": rep,
            "tool": tool,
            "loadavg": loadavg(stem),
            **read_time(stem.with_suffix(".time")),
            **cores(stem),
        }
        server = stem.with_suffix(".server")
        if server.exists():
            before, after, ticks = (int(float(x)) for x in server.read_text().split())
            record["server_cpu"] = (after - before) / ticks
        reader = {"gonogo": read_gonogo_run, "wrk": read_wrk_journey, "locust": read_locust_journey}[tool]
        record.update(reader(stem))
        record["cpu_per_request_us"] = (
            1e6 * record["cpu"] / record["requests"] if record["requests"] else None
        )
        if "driver_cpu_s" in record and record["requests"]:
            record["driver_cpu_per_request_us"] = 1e6 * record["driver_cpu_s"] / record["requests"]
        if "gen_core_busy" in record:
            record["gen_core_other"] = record["gen_core_busy"] - record["cpu"]
        # correct: every step answered 200, every journey complete
        record["all_correct"] = record["errors"] == 0 and all(
            v["errors"] == 0 for v in record["steps"].values()
        )
        records.append(record)
    tools: dict[str, Any] = {}
    for tool in ("gonogo", "wrk", "locust"):
        mine = [r for r in records if r["tool"] == tool]
        tools[tool] = {
            "rps": spread(r["rps"] for r in mine),
            "iterations_per_second": spread(r["iterations_per_second"] for r in mine),
            "cpu_per_request_us": spread(r["cpu_per_request_us"] for r in mine),
            "driver_cpu_per_request_us": spread(r.get("driver_cpu_per_request_us") for r in mine),
            "cpu_utilisation": spread(r["cpu"] / r["elapsed"] for r in mine),
            "p95_ms": spread(r["p95_ms"] for r in mine),
            "errors": sum(r["errors"] for r in mine),
            "all_correct": all(r["all_correct"] for r in mine) if mine else None,
            "every_request_in_histogram": all(r.get("every_request_in_histogram", False) for r in mine)
            if mine and tool != "wrk"
            else None,
            "drivers": sorted({r["driver"] for r in mine if r.get("driver")}),
            "generator_valid": [r.get("generator_valid") for r in mine],
        }
    targets: dict[str, Any] = {}
    g, loc = tools["gonogo"], tools["locust"]
    if g["rps"]["n"] and loc["rps"]["n"]:
        ratio = g["rps"]["median"] / loc["rps"]["median"]
        targets["rps_vs_locust"] = {
            "ratio": ratio,
            "target": RPS_RATIO_TARGET,
            "met": ratio >= RPS_RATIO_TARGET and bool(g["every_request_in_histogram"]),
            "every_request_in_histogram": g["every_request_in_histogram"],
        }
    return {"runs": records, "tools": tools, "targets": targets}


def _plan_number(plan: str, key: str) -> float:
    found = re.search(rf"^\s*{key}: ([0-9.]+)", plan, re.MULTILINE)
    if not found:
        raise ValueError(f"no {key} in the plan")
    return float(found.group(1))


def _nearest_rank(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def schedule_truth(
    *,
    rate: float,
    scheduled: int,
    steps: int,
    stall_at: float,
    pause: float,
    service: float,
    journey_service: float,
) -> tuple[float, float]:
    """The true p99 (seconds) of the requests and of the iterations of one run, from its own
    schedule: arrival k intended at k/R after the measured phase's start, the stall from
    `stall_at` for `pause` seconds (both measured), the service times measured (uncorrected p50
    of a request and of an iteration). A first step arriving in the stall waits until its end."""
    waits = [
        max(0.0, stall_at + pause - k / rate) if stall_at <= k / rate < stall_at + pause else 0.0
        for k in range(scheduled)
    ]
    requests = [w + service for w in waits] + [service] * (scheduled * (steps - 1))
    iterations = [w + journey_service for w in waits]
    return _nearest_rank(requests, 0.99), _nearest_rank(iterations, 0.99)


def journey_omission(folder: Path) -> dict[str, Any]:
    """The true p99 of an open-model journey run with a stall of D seconds, as in `omission`:
    R iterations/s for T s, S steps each. A first step arriving u seconds into the stall waits
    D - u (plus service); every other request, and every later step (sent once the previous
    response is in), waits about the service time. The slowest 1% of the N = S*R*T requests
    are the first steps that arrived in the stall's first 0.01*S*T seconds:
    p99 = D - 0.01*S*T + s (0.5 - 0.3 = 200 ms for S = 3, T = 10). For whole iterations (the
    journey's duration from its intended start) the static benchmark's 0.5 - 0.01*T = 400 ms.
    The backlog drains at the server's rate (tens of thousands of requests/s against R*S in
    the hundreds), which moves both by well under 1%: not modelled. At a few tens of iterations
    per second arrivals are 1/R apart, a step as large as 10% of 200 ms: the true value of each
    run is also computed from its own schedule (`schedule_truth`), which the target is judged on."""
    records = []
    for rep, tool, stem in runs(folder):
        pause = json.loads(Path(f"{stem}-pause.json").read_text())
        pause_s = pause["pause_seconds"]
        record: dict[str, Any] = {
            "rep": rep,
            "tool": tool,
            "loadavg": loadavg(stem),
            "pause_ms": 1000 * pause_s,
            **read_time(stem.with_suffix(".time")),
            **cores(stem),
        }
        if tool == "gonogo":
            run = read_gonogo_run(stem)
            plan = stem.with_suffix(".plan.yaml").read_text()
            rate, duration = _plan_number(plan, "rate"), _plan_number(plan, "duration")
            steps = len(JOURNEY_STEPS)
            clock = json.loads(stem.with_suffix(".clock.json").read_text())
            stall_wall = pause["stopped_monotonic"] - clock["monotonic"] + clock["wall"]
            # the service time: the run's uncorrected p50, as in `omission`; in an invalid run that
            # is the generator's own queueing, not nginx's (well under a millisecond): left out
            valid = run["generator_valid"] != 0
            service_ms = (run.get("hist_p50_uncorrected_ms") or 0.0) if valid else 0.0
            journey_service_ms = (run.get("hist_journey_p50_uncorrected_ms") or 0.0) if valid else 0.0
            n_requests = run.get("histogram_count_corrected") or run["requests"]
            n_iterations = run.get("journey_histogram_count") or run["iterations"]
            true_ideal_ms = 1000 * (0.5 - 0.01 * steps * duration)
            true_measured_ms = 1000 * (pause_s - 0.01 * n_requests / rate) + service_ms
            journey_true_ideal_ms = 1000 * (0.5 - 0.01 * duration)
            journey_true_measured_ms = 1000 * (pause_s - 0.01 * n_iterations / rate) + journey_service_ms
            stall_at = stall_wall - run["window_start"]
            scheduled = int(run.get("iteration_counts", {}).get("scheduled") or rate * duration)
            true_schedule_s, journey_true_schedule_s = schedule_truth(
                rate=rate,
                scheduled=scheduled,
                steps=steps,
                stall_at=stall_at,
                pause=pause_s,
                service=service_ms / 1000,
                journey_service=journey_service_ms / 1000,
            )
            record.update(
                run,
                rate=rate,
                duration=duration,
                stall_at_s=stall_at,
                true_ideal_ms=true_ideal_ms,
                true_measured_pause_ms=true_measured_ms,
                true_schedule_ms=1000 * true_schedule_s,
                journey_true_ideal_ms=journey_true_ideal_ms,
                journey_true_measured_pause_ms=journey_true_measured_ms,
                journey_true_schedule_ms=1000 * journey_true_schedule_s,
                error_vs_ideal=run["p99_ms"] / true_ideal_ms - 1 if run["p99_ms"] else None,
                error_vs_schedule=run["p99_ms"] / (1000 * true_schedule_s) - 1 if run["p99_ms"] else None,
                journey_error_vs_schedule=run["journey_p99_ms"] / (1000 * journey_true_schedule_s) - 1
                if run["journey_p99_ms"]
                else None,
                at_least_ms={
                    x: {"measured": n, "ideal": max(0.0, rate * (pause_s - x / 1000))}
                    for x, n in run.get("at_least_ms", {}).items()
                },
            )
        else:
            record.update(read_locust_journey(stem))
        records.append(record)
    tools: dict[str, Any] = {}
    for tool in ("gonogo", "locust"):
        mine = [r for r in records if r["tool"] == tool]
        tools[tool] = {
            "p99_ms": spread(r["p99_ms"] for r in mine),
            "rps": spread(r["rps"] for r in mine),
            "pause_ms": spread(r["pause_ms"] for r in mine),
            "journey_p99_ms": spread(r.get("journey_p99_ms") for r in mine),
        }
    g = [r for r in records if r["tool"] == "gonogo" and r["error_vs_schedule"] is not None]
    targets = {}
    if g:
        targets["p99_within_10pct"] = {
            "true_ideal_ms": g[0]["true_ideal_ms"],
            "true_schedule_ms": statistics.median(r["true_schedule_ms"] for r in g),
            "median_p99_ms": tools["gonogo"]["p99_ms"]["median"],
            "median_error": statistics.median(r["error_vs_schedule"] for r in g),
            "worst_error": max((r["error_vs_schedule"] for r in g), key=abs),
            "met": all(abs(r["error_vs_schedule"]) <= P99_TOLERANCE for r in g),
            "latency_from": sorted({r["latency_from"] for r in g}),
        }
        journeys = [r for r in g if r["journey_error_vs_schedule"] is not None]
        if journeys:
            targets["journey_p99_within_10pct"] = {
                "true_ideal_ms": journeys[0]["journey_true_ideal_ms"],
                "true_schedule_ms": statistics.median(r["journey_true_schedule_ms"] for r in journeys),
                "median_p99_ms": tools["gonogo"]["journey_p99_ms"]["median"],
                "worst_error": max((r["journey_error_vs_schedule"] for r in journeys), key=abs),
                "met": all(abs(r["journey_error_vs_schedule"]) <= P99_TOLERANCE for r in journeys),
            }
    return {"runs": records, "tools": tools, "targets": targets}


# -- markdown -----------------------------------------------------------------------------


def markdown(summary: Mapping[str, Any]) -> str:
    out: list[str] = []
    add = out.append
    machine = summary.get("machine", {})
    add(f"# gonogo bench run {summary['run']}\n")
    if machine:
        add("| fact | value |\n|---|---|")
        for key, value in machine.items():
            add(f"| {key} | {value} |")
        add("")
    if "throughput" in summary:
        _throughput_md(summary["throughput"], add)
    if "omission" in summary:
        _omission_md(summary["omission"], add)
    if "journeys" in summary:
        _journeys_md(summary["journeys"], add)
    if "journey3" in summary:
        _journey3_md(summary["journey3"], add)
    if "journey_omission" in summary:
        _journey_omission_md(summary["journey_omission"], add)
    return "\n".join(out) + "\n"


def _met(flag: bool) -> str:
    return "**met**" if flag else "**not met**"


def _throughput_md(t: Mapping[str, Any], add: Callable[[str], None]) -> None:
    add("## 1. Throughput and client CPU per request, one core (median (min-max) of the runs)\n")
    add(
        "| tool | requests/s | client CPU per request (µs) | client CPU use | server (nginx) CPU per "
        "request (µs) | server CPU use | every request in a histogram |"
    )
    add("|---|---|---|---|---|---|---|")
    labels = [("gonogo", "gonogo engine"), ("wrk", "wrk"), ("locust", "Locust FastHttpUser")]
    labels.append(("gonogo-item", "gonogo engine, item.json, no expect"))
    labels += [(tool, f"gonogo engine, item.json, expect: {what}") for tool, what in _CHECKED.items()]
    for tool, label in labels:
        s = t["tools"].get(tool)
        if not s or not s["rps"]["n"]:
            continue
        histogram = {True: "yes", False: "no", None: "n/a"}[s["every_request_in_histogram"]]
        cpu = fmt_spread(s["cpu_per_request_us"], 2)
        if s["engine_cpu_per_request_us"]["n"]:
            cpu += f"; engine thread only: {fmt_spread(s['engine_cpu_per_request_us'], 2)}"
        server_use = s["server_cpu_utilisation"]["median"]
        add(
            f"| {label} | {fmt_spread(s['rps'])} | {cpu} | "
            f"{fmt(100 * s['cpu_utilisation']['median'])}% | "
            f"{fmt_spread(s['server_cpu_per_request_us'], 2)} | "
            f"{fmt(100 * server_use) + '%' if server_use is not None else 'n/a'} | {histogram} |"
        )
    add("")
    targets = t["targets"]
    if "rps_vs_locust" in targets:
        r = targets["rps_vs_locust"]
        add(
            f"- gonogo / Locust requests/s: **{r['ratio']:.1f}x** (target >= {r['target']:g}x): "
            f"{_met(r['met'])}. Per CPU second (1 / CPU per request): {r['cpu_capacity_ratio']:.1f}x."
        )
    if "cpu_vs_wrk" in targets:
        r = targets["cpu_vs_wrk"]
        engine = f"; engine thread only: {r['engine_thread_ratio']:.2f}x" if r["engine_thread_ratio"] else ""
        add(
            f"- gonogo / wrk CPU per request: **{r['ratio']:.2f}x** (target <= {r['target']:g}x): "
            f"{_met(r['met'])}{engine}."
        )
    for tool, c in t.get("checked", {}).items():
        add(
            f"- gonogo with expect ({_CHECKED[tool]}) / without, on item.json, CPU per request: "
            f"**{c['cpu_ratio']:.2f}x**; engine thread only: {c['engine_ratio']:.2f}x."
        )
    add("\nRuns (in the order they ran):\n")
    add(
        "| run | tool | requests | requests/s | client CPU user+sys (s) | client CPU/request (µs) "
        "| server CPU (s) | errors | other use of core 0 / core 1 (s) | loadavg before |"
    )
    add("|---|---|---|---|---|---|---|---|---|---|")
    for r in t["runs"]:
        other = f"{fmt(r.get('gen_core_other'), 2)} / {fmt(r.get('server_core_other'), 2)}"
        add(
            f"| {r['rep']} | {r['tool']} | {r['requests']:,} | {fmt(r['rps'])} | "
            f"{r['cpu_user']:.2f}+{r['cpu_sys']:.2f} | {fmt(r['cpu_per_request_us'], 2)} | "
            f"{fmt(r.get('server_cpu'), 2)} | {r['errors']} | {other} | {r['loadavg']} |"
        )
    add("")


def _omission_md(o: Mapping[str, Any], add: Callable[[str], None]) -> None:
    add("## 2. Coordinated omission: 500 ms SIGSTOP of the nginx worker during each run\n")
    g = o["tools"]["gonogo"]
    add("| tool | load | p99 (ms) | max (ms) | requests/s reached | pause (ms) |")
    add("|---|---|---|---|---|---|")
    rows = (
        ("gonogo, corrected", "gonogo", "open, 5000/s", "p99_ms"),
        ("gonogo, uncorrected", "gonogo", "open, 5000/s", "p99_uncorrected_ms"),
        ("wrk -t1 -c50", "wrk", "closed, 50 connections, max rate", "p99_ms"),
        ("Locust FastHttpUser", "locust", "closed, 50 users, 100/s each asked", "p99_ms"),
    )
    for label, tool, load, key in rows:
        s = o["tools"][tool]
        if key not in s or not s[key]["n"]:
            continue
        add(
            f"| {label} | {load} | {fmt_spread(s[key], 1)} | {fmt_spread(s['max_ms'], 1)} | "
            f"{fmt_spread(s['rps'])} | {fmt_spread(s['pause_ms'], 1)} |"
        )
    target = o["targets"].get("p99_within_10pct")
    if target:
        drain = target["true_with_drain_ms"]
        add(
            f"\nTrue p99 of the open model (ideal, 500 ms stall): **{target['true_ideal_ms']:.0f} ms**"
            + (f"; with the measured pause and a finite drain after it: {drain:.1f} ms" if drain else "")
            + f". gonogo's corrected p99: {fmt(g['p99_ms']['median'], 1)} ms, "
            f"{100 * target['median_error']:+.1f}% of the ideal value (worst run "
            f"{100 * target['worst_error']:+.1f}%): within 10% {_met(target['met'])}.\n"
        )
    add("Runs:\n")
    add(
        "| run | tool | p99 (ms) | true p99: measured pause / and drain (ms) | pause (ms) | requests "
        "| requests/s | dropped | errors | stall at (s) |"
    )
    add("|---|---|---|---|---|---|---|---|---|---|")
    for r in o["runs"]:
        truth = f"{fmt(r.get('true_measured_pause_ms'), 1)} / {fmt(r.get('true_with_drain_ms'), 1)}"
        stall = fmt(r.get("stall_at_s"), 2)
        if r["tool"] != "gonogo":
            truth = ""
        add(
            f"| {r['rep']} | {r['tool']} | {fmt(r['p99_ms'], 1)} | {truth} | "
            f"{r['pause_ms']:.1f} | {r['requests']:,} | {fmt(r['rps'])} | {r.get('dropped', '')} | "
            f"{r['errors']} | {stall} |"
        )
    checks = [r for r in o["runs"] if r["tool"] == "gonogo"]
    if checks:
        add(
            "\nCross-check of gonogo's corrected histogram: responses at >= x ms: measured / ideal "
            "R(D - x) / with the drain R(D - x)/(1 - R/mu):\n"
        )
        xs = list(checks[0]["at_least_ms"])
        add("| run | " + " | ".join(f">= {x} ms" for x in xs) + " |")
        add("|---|" + "---|" * len(xs))
        for r in checks:
            cells = [
                f"{c['measured']} / {c['ideal']:.0f} / {fmt(c['with_drain'])}"
                for c in r["at_least_ms"].values()
            ]
            add(f"| {r['rep']} | " + " | ".join(cells) + " |")
    wrk = [r for r in o["runs"] if r["tool"] == "wrk"]
    if wrk:
        extra = ", ".join(f"{r['synthetic_samples']:,}" for r in wrk)
        add(f"\nwrk's histogram held more samples than requests (its stats_correct): {extra} extra.")
    add("")


def _journeys_md(j: Mapping[str, Any], add: Callable[[str], None]) -> None:
    add("## 3. Journey throughput against examples/docservice\n")
    add("| tool | journeys/s | requests/s | " + " | ".join(f"{s} p50 / p95 (ms)" for s in _steps(j)) + " |")
    add("|---|---|---|" + "---|" * len(_steps(j)))
    for tool, label in (("gonogo", "gonogo journeys engine"), ("locust", "Locust HttpUser")):
        s = j["tools"][tool]
        if not s["journeys_per_second"]["n"]:
            continue
        cells = []
        for step in _steps(j):
            got = s["steps"].get(step)
            cells.append(
                f"{fmt(got['p50_ms']['median'], 1)} / {fmt(got['p95_ms']['median'], 1)}" if got else "n/a"
            )
        add(
            f"| {label} | {fmt_spread(s['journeys_per_second'], 2)} | {fmt_spread(s['rps'], 1)} | "
            + " | ".join(cells)
            + " |"
        )
    add("\nRuns:\n")
    add("| run | tool | journeys | requests | seconds | journeys/s | client CPU (s) | loadavg before |")
    add("|---|---|---|---|---|---|---|---|")
    for r in j["runs"]:
        add(
            f"| {r['rep']} | {r['tool']} | {r['journeys']} | {r['requests']} | {r['elapsed_s']:.1f} | "
            f"{r['journeys_per_second']:.2f} | {r['cpu']:.2f} | {r['loadavg']} |"
        )
    add("")


def _journey3_md(j: Mapping[str, Any], add: Callable[[str], None]) -> None:
    add("## 5. The 3-step journey against nginx, 50 users, one core (median (min-max) of the runs)\n")
    add(
        "| tool | requests/s (all steps) | iterations/s | client CPU per request (µs) | client CPU use "
        "| p95 (ms) | every response correct | every request in a histogram |"
    )
    add("|---|---|---|---|---|---|---|---|")
    labels = (
        ("gonogo", "gonogo `load` of `journeys`"),
        ("wrk", "wrk + wrk_journey.lua"),
        ("locust", "Locust FastHttpUser"),
    )
    yes_no = {True: "yes", False: "**no**", None: "n/a"}
    for tool, label in labels:
        s = j["tools"][tool]
        if not s["rps"]["n"]:
            continue
        cpu = fmt_spread(s["cpu_per_request_us"], 1)
        if s["driver_cpu_per_request_us"]["n"]:
            cpu += f"; driver thread only: {fmt_spread(s['driver_cpu_per_request_us'], 1)}"
        add(
            f"| {label} | {fmt_spread(s['rps'])} | {fmt_spread(s['iterations_per_second'])} | {cpu} | "
            f"{fmt(100 * s['cpu_utilisation']['median'])}% | {fmt_spread(s['p95_ms'], 1)} | "
            f"{yes_no[s['all_correct']]} ({s['errors']} errors) | {yes_no[s['every_request_in_histogram']]} |"
        )
    add("")
    g = j["tools"]["gonogo"]
    if g["drivers"]:
        add(f"gonogo's driver (its load metrics' source): {'; '.join(g['drivers'])}.")
        add(f"generator.valid per run: {', '.join(fmt(v) for v in g['generator_valid'])}.\n")
    r = j["targets"].get("rps_vs_locust")
    if r:
        add(
            f"- gonogo / Locust requests/s: **{r['ratio']:.2f}x** (target >= {r['target']:g}x, every request "
            f"in the histograms): {_met(r['met'])}.\n"
        )
    add("Runs (in the order they ran):\n")
    add(
        "| run | tool | requests | requests/s | iterations | login / item / static (errors) | client CPU "
        "user+sys (s) | CPU/request (µs) | nginx CPU (s) | p95 (ms) | gonogo: status, valid, generator CPU "
        "| other use of core 0 (s) | loadavg before |"
    )
    add("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in j["runs"]:
        steps = " / ".join(f"{v['requests']:,} ({v['errors']})" for v in r["steps"].values())
        gonogo = ""
        if r["tool"] == "gonogo":
            gonogo = (
                f"{r['check_status']}, {fmt(r['generator_valid'])}, {fmt(100 * (r['generator_cpu'] or 0))}%"
                + (" (p95 from the histogram)" if r["latency_from"] != "metrics" else "")
            )
        add(
            f"| {r['rep']} | {r['tool']} | {r['requests']:,} | {fmt(r['rps'])} | {r['iterations']:,} | "
            f"{steps} | "
            f"{r['cpu_user']:.2f}+{r['cpu_sys']:.2f} | {fmt(r['cpu_per_request_us'], 1)} | "
            f"{fmt(r.get('server_cpu'), 2)} | {fmt(r['p95_ms'], 1)} | {gonogo} | "
            f"{fmt(r.get('gen_core_other'), 2)} | {r['loadavg']} |"
        )
    add("")


def _journey_omission_md(o: Mapping[str, Any], add: Callable[[str], None]) -> None:
    add("## 6. Coordinated omission for journeys: 500 ms SIGSTOP of the nginx worker during each run\n")
    target = o["targets"].get("p99_within_10pct")
    add("| tool | load | p99 of requests (ms) | p99 of iterations (ms) | requests/s | pause (ms) |")
    add("|---|---|---|---|---|---|")
    g = [r for r in o["runs"] if r["tool"] == "gonogo"]
    rate = f"{g[0]['rate']:g}" if g else "?"
    for tool, label, load in (
        ("gonogo", "gonogo, corrected", f"open, {rate} iterations/s"),
        ("locust", "Locust FastHttpUser", f"closed, 50 users asking {rate} journeys/s in all"),
    ):
        s = o["tools"][tool]
        if not s["rps"]["n"]:
            continue
        add(
            f"| {label} | {load} | {fmt_spread(s['p99_ms'], 1)} | {fmt_spread(s['journey_p99_ms'], 1)} | "
            f"{fmt_spread(s['rps'])} | {fmt_spread(s['pause_ms'], 1)} |"
        )
    if target:
        add(
            f"\nTrue p99 of the requests: ideal (500 ms stall) **{target['true_ideal_ms']:.0f} ms**; "
            f"from each run's own schedule, pause and service time: {target['true_schedule_ms']:.1f} ms "
            "(median). "
            f"gonogo's corrected p99: {fmt(target['median_p99_ms'], 1)} ms, median error "
            f"{100 * target['median_error']:+.1f}% of the run's true value (worst run "
            f"{100 * target['worst_error']:+.1f}%): within 10% {_met(target['met'])} "
            f"(latency from: {'; '.join(target['latency_from'])})."
        )
    jt = o["targets"].get("journey_p99_within_10pct")
    if jt:
        add(
            "True p99 of whole iterations (from the intended start): ideal "
            f"**{jt['true_ideal_ms']:.0f} ms**, from the runs' schedules {jt['true_schedule_ms']:.1f} ms; "
            f"gonogo's: {fmt(jt['median_p99_ms'], 1)} ms "
            f"(worst run {100 * jt['worst_error']:+.1f}%): within 10% {_met(jt['met'])}."
        )
    add("\nRuns:\n")
    add(
        "| run | tool | p99 (ms) | true p99: ideal / measured pause / schedule (ms) | iterations p99 (ms) | "
        "true: ideal / measured / schedule (ms) | pause (ms) | requests | requests/s | late / dropped "
        "| errors | valid | stall at (s) | client CPU (s) | core 0 / core 1 busy (s, any process) |"
    )
    add("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in o["runs"]:
        if r["tool"] == "gonogo":
            add(
                f"| {r['rep']} | gonogo | {fmt(r['p99_ms'], 1)} | {fmt(r['true_ideal_ms'], 1)} / "
                f"{fmt(r['true_measured_pause_ms'], 1)} / {fmt(r['true_schedule_ms'], 1)} | "
                f"{fmt(r['journey_p99_ms'], 1)} | {fmt(r['journey_true_ideal_ms'], 1)} / "
                f"{fmt(r['journey_true_measured_pause_ms'], 1)} / {fmt(r['journey_true_schedule_ms'], 1)} | "
                f"{r['pause_ms']:.1f} | {r['requests']:,} | {fmt(r['rps'])} | {fmt(r['late'])} / "
                f"{fmt(r['dropped'])} | {r['errors']} | {fmt(r['generator_valid'])} | "
                f"{fmt(r['stall_at_s'], 2)} | {_busy(r)}"
            )
        else:
            add(
                f"| {r['rep']} | {r['tool']} | {fmt(r['p99_ms'], 1)} | | | | {r['pause_ms']:.1f} | "
                f"{r['requests']:,} | {fmt(r['rps'])} | | {r['errors']} | | | {_busy(r)}"
            )
    checks = [r for r in g if r.get("at_least_ms")]
    if checks:
        add(
            "\nCross-check of gonogo's corrected histogram: requests at >= x ms, measured / ideal R(D - x):\n"
        )
        xs = list(checks[0]["at_least_ms"])
        add("| run | " + " | ".join(f">= {x} ms" for x in xs) + " |")
        add("|---|" + "---|" * len(xs))
        for r in checks:
            cells = [f"{c['measured']} / {c['ideal']:.0f}" for c in r["at_least_ms"].values()]
            add(f"| {r['rep']} | " + " | ".join(cells) + " |")
    add("")


def _busy(r: Mapping[str, Any]) -> str:
    """The client's CPU time and how busy each core was (other processes show as the difference)."""
    return (
        f"{r['cpu']:.2f} | {fmt(r.get('gen_core_busy'), 2)} / {fmt(r.get('server_core_busy'), 2)} "
        f"of {r['elapsed']:.1f} |"
    )


def _steps(j: Mapping[str, Any]) -> list[str]:
    return sorted({name for s in j["tools"].values() for name in s["steps"]}, key=_step_order)


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: summarize.py RESULTS_DIR")
    folder = Path(sys.argv[1]).resolve()
    summary: dict[str, Any] = {"run": folder.name}
    if (folder / "machine.json").exists():
        summary["machine"] = json.loads((folder / "machine.json").read_text())

    def present(name: str) -> bool:
        return (folder / name).is_dir() and any((folder / name).glob("*.time"))

    drain_rate = None
    if present("throughput"):
        summary["throughput"] = throughput(folder / "throughput")
        drain_rate = summary["throughput"]["tools"]["gonogo"]["rps"]["median"]
    if present("omission"):
        summary["omission"] = omission(folder / "omission", drain_rate)
    if present("journeys"):
        summary["journeys"] = journeys(folder / "journeys")
    if present("journey3"):
        summary["journey3"] = journey3(folder / "journey3")
    if present("journey-omission"):
        summary["journey_omission"] = journey_omission(folder / "journey-omission")
    (folder / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    text = markdown(summary)
    (folder / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
