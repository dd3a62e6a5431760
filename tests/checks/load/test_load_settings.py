"""The load check's settings refuse what cannot run, with the reason."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from gonogo.loadgen.settings import LoadSettings

REQUESTS = [{"name": "home", "path": "/"}]


def settings(**fields: Any) -> LoadSettings:
    return LoadSettings.model_validate({"requests": REQUESTS, **fields})


def refused(**fields: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        settings(**fields)
    return str(caught.value)


def test_an_open_model_with_a_constant_rate() -> None:
    loaded = settings(rate="200/s", duration="1m", warmup="5s")
    assert (loaded.rate, loaded.duration, loaded.warmup) == (200, 60, 5)
    assert loaded.planned_duration == 65


def test_a_ramp_and_a_closed_model() -> None:
    ramp = settings(stages=[{"duration": "10s", "rate": 50}, {"duration": "20s", "rate": "100/s"}])
    assert [(s.duration, s.rate) for s in ramp.stages] == [(10, 50), (20, 100)]
    assert ramp.planned_duration == 30
    closed = settings(model="closed", users=10, think_time="100ms", max_requests=1000)
    assert closed.users == 10 and closed.think_time == 0.1


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"duration": "10s"}, "exactly one of `rate` (constant) or `stages`"),
        ({"rate": 10, "stages": [{"duration": 1, "rate": 1}], "duration": 1}, "exactly one of `rate`"),
        ({"rate": 10}, "a load must be bounded"),
        ({"model": "closed", "duration": 1}, "a closed model needs `users`"),
        ({"model": "closed", "users": 2, "rate": 5, "duration": 1}, "belong to the open model"),
        ({"rate": "fast", "duration": 1}, "is not a quantity"),
        ({"rate": "5%", "duration": 1}, "is not a rate"),
        ({"rate": 5, "duration": 1, "workers": 0}, "`workers` is 'auto' or a number"),
    ],
)
def test_incoherent_settings_are_refused(fields: dict[str, Any], message: str) -> None:
    assert message in refused(**fields)


def test_requests_are_checked() -> None:
    def with_requests(requests: list[dict[str, Any]]) -> str:
        with pytest.raises(ValidationError) as caught:
            LoadSettings.model_validate({"rate": 1, "duration": 1, "requests": requests})
        return str(caught.value)

    assert "must start with '/'" in with_requests([{"name": "x", "path": "http://elsewhere/"}])
    assert "is not an HTTP method" in with_requests([{"name": "x", "path": "/", "method": "FETCH"}])
    assert "at most one body" in with_requests([{"name": "x", "path": "/", "json": {}, "body": "x"}])
    assert "request names must be unique" in with_requests([{"name": "x", "path": "/"}] * 2)
    unknown = with_requests([{"name": "x", "path": "/", "headers": {"Authorization": "Bearer {tokn}"}}])
    assert "request x:" in unknown and "tokn" in unknown


def test_setup_variables_feed_the_requests() -> None:
    loaded = LoadSettings.model_validate(
        {
            "rate": 1,
            "duration": 1,
            "setup": {
                "steps": [
                    {
                        "name": "login",
                        "request": {"method": "POST", "path": "/login"},
                        "extract": {"token": "json:$.token"},
                    }
                ]
            },
            "requests": [{"name": "me", "path": "/me", "headers": {"Authorization": "Bearer {token}"}}],
        }
    )
    assert loaded.setup is not None and loaded.requests[0].headers["Authorization"] == "Bearer {token}"


def test_builtins_in_plain_requests_need_a_setup() -> None:
    # plain requests are rendered once, so {uuid} could only ever be one value: the setup's
    fresh = {"name": "x", "path": "/items/{uuid}"}
    message = refused(requests=[fresh], rate=1, duration=1)
    assert "request x: {uuid} is the setup journey's, and this load has no setup" in message
    assert "load `journeys` instead" in message
    setup = {"steps": [{"name": "login", "request": {"path": "/login"}}]}
    assert settings(requests=[fresh], setup=setup, rate=1, duration=1).setup is not None


def test_a_streaming_request_says_how_its_events_are_delimited() -> None:
    loaded = settings(rate=10, duration="1s", requests=[{"name": "chat", "path": "/v1", "stream": "sse"}])
    assert loaded.requests is not None and loaded.requests[0].stream == "sse"
    assert "Input should be 'sse', 'chunks' or 'lines'" in refused(
        rate=10, duration="1s", requests=[{"name": "chat", "path": "/v1", "stream": "websocket"}]
    )
    # what other tools call newline-delimited JSON is pointed to `lines`
    assert "newline-delimited JSON is `lines`" in refused(
        rate=10, duration="1s", requests=[{"name": "chat", "path": "/v1", "stream": "ndjson"}]
    )
    head = [{"name": "chat", "method": "HEAD", "path": "/v1", "stream": "chunks"}]
    assert "a HEAD request gets no body: it cannot be a `stream`" in refused(
        rate=10, duration="1s", requests=head
    )
