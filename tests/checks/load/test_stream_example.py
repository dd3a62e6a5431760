"""The streaming example of docs/load.md (its server and its load check), shortened: an
OpenAI-style completion streamed as server-sent events, every token timed."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml
from recording_context import MakeContext

from gonogo.checks.load import LoadCheck, LoadSettings
from service_process import free_port, serving

EXAMPLE = Path(__file__).parents[3] / "docs" / "examples" / "streaming"


def test_the_streaming_example_times_each_token(recording_context: MakeContext, tmp_path: Path) -> None:
    plan = yaml.safe_load((EXAMPLE / "gonogo.yaml").read_text())
    check = plan["checks"]["chat"]
    del check["kind"]
    check["duration"] = "1s"
    tokens = check["requests"][0]["json"]["max_tokens"]
    port = free_port()
    argv = [
        sys.executable,
        str(EXAMPLE / "app.py"),
        "--port",
        str(port),
        "--prefill-ms",
        "60",
        "--token-ms",
        "15",
    ]
    with serving(argv, port, tmp_path / "llm.log", what="example server") as (base_url, _):
        ctx = recording_context(check_name="chat", base_url=base_url)
        outcome = LoadCheck().run(LoadSettings.model_validate(check), ctx)
    assert outcome.status == "completed", outcome
    prefix = "endpoint.completion.stream."
    streams = ctx.value(prefix + "streams")
    assert streams == ctx.value("requests") == 10
    # every token, and the final `data: [DONE]`; the keep-alive comment is no event
    assert (
        ctx.value(prefix + "events_per_stream.min")
        == ctx.value(prefix + "events_per_stream.max")
        == tokens + 1
    )
    assert 0.06 <= ctx.value(prefix + "first_event.p50") < 0.2
    assert 0.015 <= ctx.value(prefix + "between_events.p50") < 0.05
    assert ctx.value(prefix + "cut") == 0 and ctx.value("error_rate") == 0
    assert ctx.value("errors.assertion") == 0  # every stream ended with its `data: [DONE]`
    assert "ended without one" not in outcome.message  # every request had its response
    assert "first event p95 " in outcome.message and "0 stream(s) cut short" in outcome.message, outcome
