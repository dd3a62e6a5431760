"""The background load of an operation check: the plan's requests from the load engine, open model."""

from __future__ import annotations

__all__ = ["first_figures", "start_traffic"]

import time
from typing import Any
from urllib.parse import urlsplit

from gonogo.checks.base import CheckContext
from gonogo.experiment.settings import BackgroundLoad
from gonogo.experiment.traffic import BackgroundTraffic
from gonogo.loadgen.endpoints import build_endpoint
from gonogo.loadgen.engine import LoadSpec, LoadSpecError, ProgressSnapshot

FIRST_FIGURES_WAIT = 10.0  # seconds the load may take to report its first second


def start_traffic(
    load: BackgroundLoad, base_url: str, variables: dict[str, Any], ctx: CheckContext, seconds: float
) -> BackgroundTraffic | str:
    """The load, started, or why it cannot run. It stops by itself after `seconds` if nobody
    stops it before."""
    target = urlsplit(base_url)
    if target.scheme != "http":
        return f"the background load cannot run: the load engine speaks plain HTTP/1.1; {base_url} is not http://"
    try:
        spec = LoadSpec(
            host=target.hostname or "",
            port=target.port or 80,
            endpoints=[build_endpoint(request, variables, ctx) for request in load.requests],
            model="open",
            rate=load.rate,
            duration=seconds,
            max_connections=load.max_connections,
            timeout=load.request_timeout,
            workers=1,
            host_header=target.netloc,
        )
        spec.validate()
    except LoadSpecError as error:
        return f"the background load cannot run: {error}"
    traffic = BackgroundTraffic(spec)
    traffic.start()
    return traffic


def first_figures(traffic: BackgroundTraffic) -> ProgressSnapshot | None:
    """The load's latest figures, once it has reported any (it does once a second); None if it
    has not within FIRST_FIGURES_WAIT."""
    deadline = time.monotonic() + FIRST_FIGURES_WAIT
    while (snapshot := traffic.latest()) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return snapshot
