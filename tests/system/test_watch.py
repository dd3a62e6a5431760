"""While the system is up: resource samples and services that exit on their own."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gonogo.errors import ServiceFailed

from .conftest import MakeSystem
from .helpers import SERVICE, wait_for


def test_samples_arrive_with_plausible_values(make_system: MakeSystem) -> None:
    services = {
        "single": {"command": [*SERVICE]},
        "forked": {"command": [*SERVICE, "--fork", "child"], "grace": "0.2s"},
    }
    system, recorder = make_system(services, sample_interval=0.1)
    before = datetime.now(UTC)
    with system:
        system.start()
        wait_for(
            lambda: (
                sum(s.service == "forked" for s in recorder.samples) >= 3
                and sum(s.service == "single" for s in recorder.samples) >= 3
            ),
            5,
            "samples",
        )
    count = len(recorder.samples)
    for sample in recorder.samples:
        assert sample.service in services
        assert sample.at >= before and sample.at.tzinfo is not None
        assert 1_000_000 < sample.rss_bytes < 1_000_000_000
        assert sample.open_fds >= 3
        assert sample.threads >= 1
        assert 0 <= sample.cpu_percent < 400
    # The forked service is two processes: their sums show it.
    last = {sample.service: sample for sample in recorder.samples}
    assert last["forked"].threads >= 2
    assert last["forked"].rss_bytes > last["single"].rss_bytes
    assert len(recorder.samples) == count  # nothing after stop


def test_an_unexpected_exit_is_reported_and_check_alive_raises(make_system: MakeSystem) -> None:
    services = {
        "steady": {"command": [*SERVICE]},
        "flaky": {"command": [*SERVICE, "--name", "flaky", "--exit-after", "0.7"]},
    }
    system, recorder = make_system(services, sample_interval=0.1)
    with system:
        system.start()
        system.check_alive()  # all fine yet
        wait_for(lambda: "exited" in recorder.kinds("flaky"), 5, "the exit event")
        assert recorder.messages("flaky", "exited") == ["exited with code 0 unexpectedly"]

        with pytest.raises(ServiceFailed) as caught:
            system.check_alive()

        assert caught.value.service == "flaky"
        assert caught.value.reason == "exited with code 0 unexpectedly"
        assert caught.value.last_log_lines[0].startswith("flaky: pid")
    assert recorder.kinds("flaky").count("exited") == 1
    assert "exited" not in recorder.kinds("steady")  # stopping is not an unexpected exit
