"""An observability check's settings, validated once when the plan loads.

    checks:
      telemetry:
        kind: observability
        health: /health                  # a path on the base URL, or a URL
        metrics: /metrics                # a Prometheus text endpoint (optional)
        require_metrics: [http_requests_total, process_resident_memory_bytes]
        error_counters: ['http_requests_total{status="503"}']
        load: {rate: 20/s, requests: [{name: orders, path: /orders}]}
        faults:
          - fault: {proxy: enricher, toxic: down}
            detect_within: 5s
          - fault: {kill: api}
            error_counters: []           # a killed service counts nothing while it is dead

A fault's metrics are named after it: `name`, or one made from the fault (`proxy_enricher_down`,
`kill_api`).
"""

from __future__ import annotations

__all__ = ["FaultCase", "MetricSelector", "ObservabilitySettings"]

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, PlainSerializer, model_validator

from gonogo.experiment.settings import BackgroundLoad, Fault
from gonogo.journey.settings import JsonPathKey, MatcherField, Name, Statuses
from gonogo.plan.model import Duration, LocatedValueError, StrictModel, http_url

# Names of the check's own figures: a fault may not take them (`health.truthful`, `metrics.parses`).
RESERVED_NAMES = ("health", "metrics")

_METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SELECTOR = re.compile(rf"^\s*({_METRIC_NAME})\s*(?:\{{(.*)\}})?\s*$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')


@dataclass(frozen=True)
class MetricSelector:
    """A Prometheus metric name with optional label values, as in PromQL:
    `http_requests_total{status="503"}` selects the samples of that name whose labels include those."""

    name: str
    labels: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        if not self.labels:
            return self.name
        return self.name + "{" + ",".join(f'{key}="{value}"' for key, value in self.labels) + "}"


def _parse_selector(value: Any) -> MetricSelector:
    if isinstance(value, MetricSelector):
        return value
    if not isinstance(value, str):
        raise ValueError(f'expected a metric name such as errors_total{{route="/orders"}}; got {value!r}')
    match = _SELECTOR.match(value)
    if match is None:
        raise ValueError(
            f"{value!r} is not a Prometheus metric name (letters, digits, '_' and ':', not starting "
            'with a digit), optionally followed by labels such as {status="503"}'
        )
    name, inside = match.group(1), match.group(2)
    labels: list[tuple[str, str]] = []
    position = 0
    text = (inside or "").strip()
    while position < len(text):
        label = _LABEL.match(text, position)
        if label is None:
            raise ValueError(
                f'{value!r}: the labels must read key="value", separated by commas; '
                f"could not read {text[position:]!r}"
            )
        labels.append((label.group(1), label.group(2).replace('\\"', '"').replace("\\\\", "\\")))
        position = label.end()
    return MetricSelector(name, tuple(labels))


Selector = Annotated[MetricSelector, BeforeValidator(_parse_selector), PlainSerializer(str, return_type=str)]


def _url_or_path(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a path such as /health or a URL; got {value!r}")
    if value.startswith("/"):
        return value
    return http_url(value)


UrlOrPath = Annotated[str, BeforeValidator(_url_or_path)]


class FaultCase(StrictModel):
    """One fault, and what the health endpoint must say of it."""

    fault: Fault
    name: Name | None = Field(default=None, description="names its metrics; default: made from the fault")
    expect: Literal["unhealthy", "healthy"] = Field(
        default="unhealthy",
        description="unhealthy: the service needs what the fault breaks; healthy: it must carry on "
        "(an optional dependency)",
    )
    detect_within: Duration = Field(
        default=10.0,
        gt=0,
        description="how soon the health endpoint must say unhealthy; for expect: healthy, how long "
        "it must keep saying healthy",
    )
    hold: Duration = Field(
        default=2.0, ge=0, description="how long the fault stays on once detected (error counters rise)"
    )
    recover_within: Duration = Field(
        default=30.0, gt=0, description="how soon after the fault's removal health must say healthy"
    )
    error_counters: list[Selector] | None = Field(
        default=None, description="default: the check's error_counters; [] for none (a killed service)"
    )


def default_fault_name(fault: Fault) -> str:
    """`kill_api`, `proxy_enricher_down`, `stress_cpu`: the fault's key, then what it names (when
    that is a plain name, not a path or a placeholder)."""
    key = next(iter(type(fault).model_fields))  # every fault's first field is its kind: kill, proxy...
    parts = [key]
    for value in (getattr(fault, key), getattr(fault, "toxic", None)):
        if isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9_-]+", value):
            parts.append(value)
    return "_".join(parts)


def _refuse(at: tuple[str | int, ...], problem: str) -> None:
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in at).lstrip(".")
    raise LocatedValueError(f"{where}: {problem}", at, problem)


class ObservabilitySettings(StrictModel):
    base_url: str | None = Field(default=None, description="default: the plan's system.base_url")
    health: UrlOrPath = Field(default="/health", description="a path on the base URL, or a URL")
    healthy_status: Statuses = Field(default=(200,), description="the status(es) of a healthy answer")
    healthy_json: dict[JsonPathKey, MatcherField] = Field(
        default_factory=dict, description='what a healthy answer\'s JSON holds, e.g. {"$.status": "ok"}'
    )
    unhealthy_status: Statuses = Field(
        default=None, description="the status(es) of an unhealthy answer; default: any answer not healthy"
    )
    no_answer: Literal["unhealthy", "neither"] = Field(
        default="unhealthy",
        description="what a health endpoint that does not answer (refused, timed out) says: unhealthy "
        "(as an orchestrator's probe reads it), or neither (an answer is required)",
    )
    timeout: Duration = Field(default=2.0, gt=0, description="for each health or metrics request")
    metrics: UrlOrPath | None = Field(default=None, description="a Prometheus text endpoint: path or URL")
    require_metrics: list[Selector] = Field(default_factory=list)
    error_counters: list[Selector] = Field(
        default_factory=list, description="counters that must rise during each fault"
    )
    load: BackgroundLoad | None = Field(
        default=None,
        description="traffic during the whole check, so the error counters have requests to count",
    )
    poll: Duration = Field(default=0.25, gt=0, description="between two health (and metrics) requests")
    before: Duration = Field(
        default=2.0, ge=0, description="health must say healthy this long before each fault"
    )
    sustain: Duration = Field(
        default=1.0, ge=0, description="how long health must keep saying healthy to count as recovered"
    )
    faults: list[FaultCase] = Field(min_length=1)

    @model_validator(mode="after")
    def _coherent(self) -> ObservabilitySettings:
        if self.healthy_status and self.unhealthy_status:
            both = sorted(set(self.healthy_status) & set(self.unhealthy_status))
            if both:
                _refuse(("unhealthy_status",), f"{', '.join(map(str, both))} is also a healthy_status")
        if self.metrics is None:
            for at, given in [
                (("require_metrics",), self.require_metrics),
                (("error_counters",), self.error_counters),
                *(
                    (("faults", i, "error_counters"), case.error_counters)
                    for i, case in enumerate(self.faults)
                ),
            ]:
                if given:
                    _refuse(at, "needs metrics: the Prometheus endpoint to read it from (e.g. /metrics)")
        seen: dict[str, int] = {}
        for index, case in enumerate(self.faults):
            name = self.fault_name(index)
            at = ("faults", index, "name") if case.name is not None else ("faults", index)
            if name in RESERVED_NAMES:
                _refuse(at, f"{name!r} names the check's own figures ({name}.*); choose another name")
            if name in seen:
                _refuse(
                    at,
                    f"its metrics would be named {name}.*, as those of faults[{seen[name]}]; "
                    "give each fault a distinct name",
                )
            seen[name] = index
        return self

    def fault_name(self, index: int) -> str:
        case = self.faults[index]
        return case.name if case.name is not None else default_fault_name(case.fault)

    def counters_of(self, index: int) -> list[MetricSelector]:
        """The error counters that must rise during fault `index`."""
        own = self.faults[index].error_counters
        return list(self.error_counters if own is None else own)
