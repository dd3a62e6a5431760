"""Reading the service's health and metrics endpoints, one request at a time.

The health endpoint's answer is judged healthy, unhealthy or neither by the check's settings; the
metrics endpoint is parsed with prometheus_client's parser of the text exposition format, and the
error counters are summed from it.
"""

from __future__ import annotations

__all__ = ["HealthAnswer", "MetricsReader", "Scrape", "Verdict", "judge", "read_health", "rise"]

import itertools
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from prometheus_client.parser import text_string_to_metric_families

from gonogo.checks.observability.settings import MetricSelector, ObservabilitySettings
from gonogo.journey.assertions import status_problem

Verdict = Literal["healthy", "unhealthy", "neither"]
SNIPPET = 200  # characters of a body kept as evidence
MAX_METRICS_BYTES = 16 * 1024 * 1024  # a metrics page larger than this is refused, not parsed


@dataclass(frozen=True)
class HealthAnswer:
    at: float  # time.monotonic() when the request was sent
    verdict: Verdict
    status: int | None  # None: no answer
    body: str  # the first characters of the body, or why there was no answer
    why: str  # what made it healthy or not
    latency: float


def read_health(client: httpx.Client, url: str, settings: ObservabilitySettings) -> HealthAnswer:
    started, clock = time.monotonic(), time.perf_counter()
    try:
        response = client.get(url, timeout=settings.timeout)
    except httpx.TimeoutException:
        return _silent(started, clock, f"no answer within {settings.timeout:g}s", settings)
    except httpx.HTTPError as error:
        return _silent(started, clock, f"{type(error).__name__}: {error or 'connection failed'}", settings)
    latency = time.perf_counter() - clock
    verdict, why = judge(response.status_code, response.content, settings)
    body = response.content[: SNIPPET * 4].decode(errors="replace")[:SNIPPET]
    return HealthAnswer(started, verdict, response.status_code, body, why, latency)


def _silent(started: float, clock: float, why: str, settings: ObservabilitySettings) -> HealthAnswer:
    verdict: Verdict = "unhealthy" if settings.no_answer == "unhealthy" else "neither"
    return HealthAnswer(started, verdict, None, "", why, time.perf_counter() - clock)


def judge(status: int, body: bytes, settings: ObservabilitySettings) -> tuple[Verdict, str]:
    """Healthy: a healthy status (and JSON, when the settings say what it holds). Unhealthy: an
    unhealthy status, or when the settings name none, any answer that is not healthy."""
    problem = status_problem(settings.healthy_status, status) or _json_problem(body, settings)
    if problem is None:
        return "healthy", f"status {status}"
    if settings.unhealthy_status is None or status in settings.unhealthy_status:
        return "unhealthy", problem
    wanted = " or ".join(map(str, settings.unhealthy_status))
    return "neither", f"{problem}, and not an unhealthy status ({wanted})"


def _json_problem(body: bytes, settings: ObservabilitySettings) -> str | None:
    if not settings.healthy_json:
        return None
    try:
        document = json.loads(body)
    except ValueError:
        return "the answer is not JSON"
    for path, matcher in settings.healthy_json.items():
        found, value = path.find(document)
        problem = matcher.check(str(path), found, value, lambda expected: expected)
        if problem:
            return problem
    return None


# ---------------------------------------------------------------------------------------
# Prometheus


@dataclass(frozen=True)
class Family:
    name: str
    type: str
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)


@dataclass(frozen=True)
class Scrape:
    at: float  # time.monotonic() when the request was sent
    status: int | None
    problem: str | None  # why the page could not be read or parsed; None: it parsed
    families: list[Family] = field(default_factory=list)
    text: bytes = b""

    @property
    def parsed(self) -> bool:
        return self.problem is None

    def present(self, selector: MetricSelector) -> bool:
        """Whether the page declares the metric: as a family (`http_requests`, or a counter's
        `http_requests_total`) or a sample name (`latency_seconds_bucket`), with the labels."""
        wanted = set(selector.labels)
        for family in self.families:
            counter_name = f"{family.name}_total" if family.type == "counter" else None
            if selector.name in (family.name, counter_name) and not wanted:
                return True
            for name, labels, _ in family.samples:
                named = selector.name in (name, family.name, counter_name)
                if named and wanted <= set(labels.items()):
                    return True
        return False

    def total(self, selector: MetricSelector) -> float | None:
        """The sum of the counter's samples with the selector's labels (0 when it has none yet: a
        labelled counter appears once first counted); None when the page could not be read."""
        if not self.parsed:
            return None
        wanted = set(selector.labels)
        names = {selector.name, f"{selector.name}_total"}
        return sum(
            value
            for family in self.families
            for name, labels, value in family.samples
            if name in names and wanted <= set(labels.items())
        )

    def summary(self, selectors: Sequence[MetricSelector]) -> dict[str, Any]:
        return {
            "status": self.status,
            "problem": self.problem,
            "counters": {str(s): self.total(s) for s in selectors},
        }


class MetricsReader:
    def __init__(self, client: httpx.Client, url: str, timeout: float) -> None:
        self._client = client
        self._url = url
        self._timeout = timeout

    def scrape(self) -> Scrape:
        started = time.monotonic()
        try:
            with self._client.stream(
                "GET", self._url, timeout=self._timeout, headers={"Accept": "text/plain"}
            ) as response:
                content = b""
                for chunk in response.iter_bytes():
                    content += chunk
                    if len(content) > MAX_METRICS_BYTES:
                        return Scrape(started, response.status_code, "larger than 16 MiB: not read")
        except httpx.TimeoutException:
            return Scrape(started, None, f"no answer within {self._timeout:g}s")
        except httpx.HTTPError as error:
            return Scrape(started, None, f"{type(error).__name__}: {error or 'connection failed'}")
        if response.status_code != 200:
            return Scrape(started, response.status_code, f"answered {response.status_code}", text=content)
        return _parse(started, content)


def _parse(started: float, content: bytes) -> Scrape:
    try:
        text = content.decode()
        families = [
            Family(f.name, f.type, [(s.name, dict(s.labels), float(s.value)) for s in f.samples])
            for f in text_string_to_metric_families(text)
        ]
    except (ValueError, UnicodeDecodeError, IndexError, KeyError) as error:
        return Scrape(started, 200, f"not the Prometheus text format: {error}", text=content)
    if not families:
        return Scrape(started, 200, "no metric in it", text=content)
    return Scrape(started, 200, None, families, text=content)


def rise(totals: Sequence[float | None]) -> float:
    """How much a counter rose over successive readings, as Prometheus' increase() counts it: a
    reading lower than the one before is a restart of the counter (the process restarted), so it
    rose by the new reading. Unreadable points (None) are skipped."""
    values = [value for value in totals if value is not None]
    return sum(now - before if now >= before else now for before, now in itertools.pairwise(values))
