from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gonogo.plan.model import SystemSpec
from gonogo.system import Reaper, System

from .helpers import Recorder, kill_with_token, with_token

MakeSystem = Callable[..., tuple[System, Recorder]]


@pytest.fixture(scope="session")
def reaper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reaper]:
    """One watchdog for the tests that do not test the watchdog itself."""
    token = "test-" + secrets.token_hex(8)
    log = tmp_path_factory.mktemp("reaper") / "reaper.log"
    watchdog = Reaper.start(token, log_path=log)
    yield watchdog
    watchdog.close()
    leftovers = with_token(token)
    kill_with_token(token)
    assert not leftovers, f"processes outlived the tests: {leftovers}"


@pytest.fixture
def make_system(tmp_path: Path, reaper: Reaper) -> Iterator[MakeSystem]:
    """Build Systems from plain dicts; every one is stopped when the test ends."""
    systems: list[System] = []

    def make(
        services: dict[str, Any],
        *,
        sample_interval: float = 1.0,
        placeholders: dict[str, str] | None = None,
    ) -> tuple[System, Recorder]:
        spec = SystemSpec.model_validate({"services": services, "sample_interval": sample_interval})

        def expand(text: str) -> str:
            for key, value in (placeholders or {}).items():
                text = text.replace("{" + key + "}", value)
            return text

        recorder = Recorder()
        system = System(
            spec,
            plan_dir=tmp_path,
            expand=expand,
            log_dir=tmp_path / "logs",
            reaper=reaper,
            observer=recorder,
        )
        systems.append(system)
        return system, recorder

    yield make
    for system in systems:
        system.stop()
