"""`gonogo run` of a load on a real streaming server (Starlette under uvicorn, as LLM servers
answer): time to first event, time between events, events per stream, streams cut short,
and gates on them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from cli_support import gonogo, write_plan

from gonogo.loadgen import histogram as hist

pytestmark = pytest.mark.usefixtures("no_leftovers")

SERVER = Path(__file__).parents[1] / "checks" / "load" / "stream_server.py"

PLAN = f"""
name: llm
system:
  services:
    llm:
      command: [python, "{SERVER}", "{{port.llm}}"]
      ready: {{http: "http://127.0.0.1:{{port.llm}}/health", timeout: 20s}}
      grace: 2s
  base_url: "http://127.0.0.1:{{port.llm}}"
checks:
  chat:
    kind: load
    rate: 30/s
    duration: 2s
    workers: 2                  # each worker's streams merged bucket by bucket
    request_timeout: 5s
    requests:
      - {{name: tokens, path: "/tokens?n=5&every=40", stream: sse, weight: 2, component: chat}}
      - {{name: slow_start, path: "/stall?n=3&every=20&first=300", stream: sse, component: chat}}
      - {{name: crlf, path: "/crlf?n=4&every=30", stream: sse}}
      - {{name: cut, path: "/cut?n=3&every=20", stream: sse}}
      - {{name: truncated, path: "/tokens?n=2&every=10", stream: sse,
          expect: {{body_contains: "data: [DONE]"}}}}
      - {{name: ndjson, path: "/ndjson?n=4&every=30", stream: lines}}
      - {{name: chunked, path: "/ndjson?n=4&every=30", stream: chunks}}
      - {{name: health, path: /health}}
gates:
  chat.endpoint.tokens.stream.first_event.p95: "< 250ms"
  chat.endpoint.tokens.stream.cut: "== 0"
  chat.endpoint.slow_start.stream.first_event.p95: "< 250ms"
  chat.component.chat.stream.events_per_stream.min: ">= 3"
  chat.endpoint.cut.stream.cut_rate: "< 1%"
  chat.endpoint.truncated.stream.events_per_stream.min: ">= 3"
"""


def latest_report(plan_dir: Path) -> dict[str, Any]:
    (run_dir,) = sorted((plan_dir / ".gonogo" / "runs").iterdir())[-1:]
    report: dict[str, Any] = json.loads((run_dir / "report.json").read_text())
    return report


@pytest.mark.xdist_group("cpu")  # docs/testing.md: judges timing, never beside another of this group
def test_streaming_responses_are_timed_event_by_event_and_gated(tmp_path: Path) -> None:
    plan = write_plan(tmp_path, PLAN)
    # the plan's syntax and its gates' names are known before any run
    checked = gonogo("validate", cwd=tmp_path)
    assert checked.code == 0, checked.text
    plan.write_text(PLAN.replace("stream: lines", "stream: websocket"))
    refused = gonogo("validate", cwd=tmp_path)
    assert refused.code == 2
    assert "gonogo.yaml:24:" in refused.text, refused.text
    assert "requests[5].stream: expected one of sse, chunks, lines (got 'websocket')" in refused.text
    plan.write_text(PLAN + "  chat.endpoint.tokens.stream.first_token.p95: '< 1s'\n")
    refused = gonogo("validate", cwd=tmp_path)
    assert refused.code == 2 and "chat.endpoint.tokens.stream.first_token.p95" in refused.text, refused.text
    plan.write_text(PLAN)

    result = gonogo("run", cwd=tmp_path)
    assert result.code == 1, result.text  # NO-GO: the slow start and the cut streams fail their gates
    report = latest_report(tmp_path)
    value = {m["full_name"]: m["value"] for m in report["metrics"]}
    gates = {g["metric"]: g["status"] for g in report["gates"] if g["metric"].startswith("chat.")}
    assert gates == {
        "chat.endpoint.tokens.stream.first_event.p95": "pass",
        "chat.endpoint.tokens.stream.cut": "pass",
        "chat.endpoint.slow_start.stream.first_event.p95": "fail",
        "chat.component.chat.stream.events_per_stream.min": "pass",
        "chat.endpoint.cut.stream.cut_rate": "fail",
        "chat.endpoint.truncated.stream.events_per_stream.min": "fail",
    }, report["gates"]

    def stream(endpoint: str, figure: str) -> float:
        result: float = value[f"chat.endpoint.{endpoint}.stream.{figure}"]
        return result

    assert value["chat.generator.valid"] == 1
    # every event counted once: comment lines are keep-alives, an event split over writes (and
    # over CRLF line ends) is one; every complete stream of each endpoint had all its events
    for endpoint, events in (("tokens", 5), ("slow_start", 3), ("crlf", 4), ("ndjson", 4), ("chunked", 4)):
        streams = stream(endpoint, "streams")
        assert streams == value[f"chat.endpoint.{endpoint}.requests"] > 0, endpoint
        assert (
            stream(endpoint, "events_per_stream.min") == stream(endpoint, "events_per_stream.max") == events
        )
        assert stream(endpoint, "events") == events * streams
        assert stream(endpoint, "cut") == 0
    # the server's own pace: the first event at once, or after its stall; then the interval
    assert stream("tokens", "first_event.p50") < 0.1
    assert 0.3 <= stream("slow_start", "first_event.p50") < 0.45
    assert stream("slow_start", "first_event_uncorrected.p50") >= 0.3
    for endpoint, every in (("tokens", 0.04), ("slow_start", 0.02), ("crlf", 0.03), ("ndjson", 0.03)):
        assert every <= stream(endpoint, "between_events.p50") < every + 0.03, endpoint
    # 5 events over the stream's ~160 ms (from its first byte, the keep-alive comment)
    assert 20 < stream("tokens", "events_per_second.p50") <= 5 / 0.16
    assert stream("tokens", "events_per_second.min") <= stream("tokens", "events_per_second.p50")
    assert stream("tokens", "bytes_per_second.p50") > 0
    # a stream cut short: counted as cut and as a connection error, its events still timed
    cut = value["chat.endpoint.cut.requests"]
    assert stream("cut", "cut") == cut > 0 and stream("cut", "cut_rate") == 1
    assert stream("cut", "streams") == 0 and value["chat.endpoint.cut.errors.connection"] == cut
    assert 0.02 <= stream("cut", "between_events.p50") < 0.05
    # a stream that ends cleanly but early (no terminator) fails its expect, and still shows
    # how few events it had: it ended, it was not cut
    truncated = value["chat.endpoint.truncated.requests"]
    assert value["chat.endpoint.truncated.errors.assertion"] == truncated > 0
    assert stream("truncated", "streams") == truncated
    assert stream("truncated", "events_per_stream.max") == 2 and stream("truncated", "cut") == 0
    # the sums: per component and overall; a plain request has no stream figures
    assert value["chat.stream.cut"] == cut
    assert value["chat.component.chat.stream.streams"] == stream("tokens", "streams") + stream(
        "slow_start", "streams"
    )
    assert not any(name.startswith("chat.endpoint.health.stream.") for name in value)
    # the first cut streams are evidence: how far each got before the server dropped it
    (check,) = [c for c in report["checks"] if c["name"] == "chat"]
    assert f"{cut:.0f} stream(s) cut short (the first ones in load-stream-cuts.json)" in check["message"]
    # the latency is that of the complete responses: the message says how many others there were
    complete = value["chat.requests"] - cut
    assert (
        f" of the {complete:.0f} complete responses; {cut:.0f} request(s) ended without one"
        " (in error_rate, not in latency)" in check["message"]
    ), check["message"]
    assert re.search(
        r" — cut: stream cut short \((closed|reset)\) [\d.]+s after its send", check["message"]
    ), check
    (kept,) = [m for m in report["metrics"] if m["full_name"] == "chat.endpoint.cut.stream.cut"]
    assert kept["artifact"]["name"] == "load-stream-cuts.json", kept
    cuts = json.loads(artifact(report, "load-stream-cuts.json", tmp_path))
    assert cuts["cut_total"] == {
        "tokens": 0,
        "slow_start": 0,
        "crlf": 0,
        "cut": cut,
        "ndjson": 0,
        "chunked": 0,
        "truncated": 0,
    }
    assert cuts["kept"] == len(cuts["cuts"]) == min(cut, cuts["kept_per_endpoint"])
    for example in cuts["cuts"]:
        assert example["endpoint"] == "cut" and example["error"] in ("closed", "reset"), example
        assert example["status"] == 200 and example["events"] == 3
        assert example["tail"].endswith('data: {"token": 2}\n\n'), example
    # the stream histograms are evidence, beside the latency ones (each worker's merged)
    tokens = json.loads(artifact(report, "load-histograms.json", tmp_path))["streams"]["endpoint.tokens"]
    per_stream = hist.decode(tokens["events_per_stream"])
    assert per_stream.get_total_count() == stream("tokens", "streams") and per_stream.get_max_value() == 5
    assert hist.decode(tokens["between_events"]).get_total_count() == 4 * stream("tokens", "streams")
    assert hist.decode(tokens["milli_events_per_second"]).get_value_at_percentile(50) == pytest.approx(
        1000 * stream("tokens", "events_per_second.p50"), rel=0.01
    )


def artifact(report: dict[str, Any], name: str, plan_dir: Path) -> str:
    """The text of the chat check's artifact `name`, fetched as a user would."""
    saved = plan_dir / name
    fetched = gonogo(
        "artifacts", report["run"]["id"], name, "--check", "chat", "-o", str(saved), cwd=plan_dir
    )
    assert fetched.code == 0, fetched.text
    return saved.read_text()
