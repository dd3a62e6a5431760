"""Reading stored evidence as the weighted samples a baseline comparison reads."""

from __future__ import annotations

import json

from gonogo.verdict.distributions import distribution_stem, journey_distributions


def test_stems_drop_the_statistic_only() -> None:
    assert distribution_stem("endpoint.list.latency.p95") == "endpoint.list.latency"
    assert distribution_stem("latency.p99.9") == "latency"
    assert distribution_stem("journey.buy.duration.max") == "journey.buy.duration"
    assert distribution_stem("rps") is None
    assert distribution_stem("errors.timeout") is None


def test_journey_steps_count_their_passed_executions_only() -> None:
    document = {
        "journey": "buy",
        "results": [
            {"ok": True, "duration": 0.5, "steps": [
                {"step": "login", "ok": True, "latency": 0.1},
                {"step": "pay", "ok": True, "latency": 0.4},
            ]},
            {"ok": False, "duration": 0.9, "steps": [
                {"step": "login", "ok": True, "latency": 0.1},
                {"step": "pay", "ok": False, "latency": 0.8},
            ]},
        ],
    }  # fmt: skip
    found = journey_distributions(json.dumps(document).encode())
    assert found == {
        "buy.duration": {0.5: 1},
        "buy.login.latency": {0.1: 2},
        "buy.pay.latency": {0.4: 1},
    }
