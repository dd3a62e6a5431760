"""The `soak` check's settings: the plan's `checks.<name>` section, validated once.

```yaml
checks:
  soak:
    kind: soak
    duration: 10m                  # measured, after the warm-up
    rate: 50/s                     # open model, constant arrivals
    requests: [{path: /health}]    # or `journeys:`, as in the load kind
    # optional
    warmup: 30s                    # default: system.trends.warmup
    services: [api]                # default: every service of the plan
    latency_slo: 200ms             # the p95 trend is projected against it
    detect: {rss: 1MB/h, fds: 10/h}  # slopes to say how long a soak needs to see
```

The traffic is the load kind's (`gonogo.loadgen.settings.LoadSettings`): the same request and
journey shapes, checked by the same rules; `load_settings(warmup)` makes the load this soak sends.
"""

from __future__ import annotations

__all__ = ["RESOURCE_NAMES", "SoakSettings", "parse_slope"]

import re
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from gonogo.journey.settings import Journey, Name
from gonogo.loadgen.settings import GeneratorLimits, LoadRequest, LoadSettings, Rate, SetupFeedsJourneys
from gonogo.plan.model import Duration
from gonogo.units import parse_duration, parse_quantity

Resource = Literal["rss", "fds", "threads", "cpu"]
RESOURCE_NAMES: tuple[Resource, ...] = ("rss", "fds", "threads", "cpu")
MAX_DURATION = 7 * 24 * 3600.0  # a soak is bounded; a week is already more than any CI job
# After the measured phase, what journeys still in flight may take before they are cut.
_DRAIN = 60.0
_SLOPE_EXAMPLES = {
    "rss": "1MB/h or 512KiB/min",
    "fds": "10/h",
    "threads": "2/h",
    "cpu": "5%/h (of one core)",
}
_SLOPE = re.compile(r"^\s*(.+?)\s*/\s*([a-zA-Zµ]+)\s*$")


def parse_slope(resource: str, value: Any) -> float:
    """A growth rate written for `resource` ("1MB/h", "10/h", "5%/h"), per hour in the resource's
    base unit (bytes for rss, a count for fds and threads, a share of one core for cpu)."""
    example = _SLOPE_EXAMPLES[resource]
    match = _SLOPE.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{resource}: {value!r} is not a growth rate; expected e.g. {example}")
    try:
        amount, unit = parse_quantity(match.group(1))
        per = parse_duration("1" + match.group(2))
    except ValueError as error:
        raise ValueError(f"{resource}: {value!r}: {error}; expected e.g. {example}") from None
    allowed = {"rss": ("bytes", "number"), "cpu": ("ratio", "number")}.get(resource, ("number",))
    if unit not in allowed or amount <= 0:
        raise ValueError(f"{resource}: {value!r} is not a growth of {resource}; expected e.g. {example}")
    return amount * 3600.0 / per


def _request_name(request: dict[str, Any]) -> str:
    path = re.sub(r"[^A-Za-z0-9_-]+", "_", request["path"].split("?", 1)[0]).strip("_") or "root"
    method = request.get("method")
    return f"{method.lower()}_{path}" if isinstance(method, str) and method.upper() != "GET" else path


def _free_name(name: str, taken: set[str]) -> str:
    found, number = name, 1
    while found in taken:
        number += 1
        found = f"{name}-{number}"
    return found


class SoakSettings(SetupFeedsJourneys):
    base_url: str | None = Field(default=None, description="default: the plan's system.base_url")
    duration: Duration = Field(gt=0, description="how long the soak is measured, e.g. 10m")
    rate: Rate
    setup: Journey | None = Field(
        default=None,
        description="requests: run once first, its variables fill the requests; journeys: run once "
        "per virtual user before its first iteration, its variables feed that user's iterations",
    )
    requests: list[LoadRequest] | None = Field(default=None, min_length=1)
    journeys: dict[Name, Journey] | None = Field(default=None, min_length=1)
    teardown: Journey | None = Field(
        default=None,
        description="journeys only: run once per virtual user at the end, with its setup's variables",
    )
    journey_weights: dict[Name, int] = Field(
        default_factory=dict, description="journey → integer share of the iterations (default 1)"
    )
    max_connections: int = Field(default=256, ge=1, le=100_000)
    request_timeout: Duration = Field(default=10.0, gt=0)
    warmup: Duration | None = Field(
        default=None, ge=0, description="before the measured phase; default system.trends.warmup"
    )
    services: list[Name] | None = Field(
        default=None, min_length=1, description="whose resources are trended; default: every service"
    )
    latency_slo: Duration | None = Field(
        default=None, gt=0, description="the p95 latency the trend is projected against, e.g. 200ms"
    )
    detect: dict[Resource, float] = Field(
        default_factory=dict,
        description="resource → the growth per hour to say how long a soak needs to flag it, e.g. rss: 1MB/h",
    )
    late_threshold: Duration = Field(
        default=0.01, gt=0, description="a request the generator sends this much after its time is late"
    )
    generator: GeneratorLimits = Field(default_factory=GeneratorLimits)

    @field_validator("detect", mode="before")
    @classmethod
    def _slopes(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value  # pydantic says what was expected
        parsed: dict[str, Any] = {}
        for resource, slope in value.items():
            if resource not in RESOURCE_NAMES:
                raise ValueError(
                    f"{resource!r} is not a sampled resource; expected one of {', '.join(RESOURCE_NAMES)}"
                )
            parsed[resource] = parse_slope(resource, slope)
        return parsed

    @field_validator("requests")
    @classmethod
    def _no_streams(cls, value: list[LoadRequest] | None) -> list[LoadRequest] | None:
        for request in value or []:
            if request.stream is not None:
                raise ValueError(
                    f"request {request.name}: a soak records no figure per request, so none of a "
                    "`stream`'s: time streaming responses with a `load` check"
                )
        return value

    @field_validator("requests", mode="before")
    @classmethod
    def _named(cls, value: Any) -> Any:
        """A soak records no figure per request, so a request needs no name: one is made from
        its method and path (`/health` → `health`) where the plan gives none."""
        if not isinstance(value, list):
            return value
        taken = {
            item["name"] for item in value if isinstance(item, dict) and isinstance(item.get("name"), str)
        }
        named = []
        for item in value:
            if isinstance(item, dict) and "name" not in item and isinstance(item.get("path"), str):
                item = {"name": _free_name(_request_name(item), taken), **item}
                taken.add(item["name"])
            named.append(item)
        return named

    @field_validator("duration")
    @classmethod
    def _bounded(cls, value: float) -> float:
        if value > MAX_DURATION:
            raise ValueError(
                f"a soak is measured for at most {MAX_DURATION / 3600:g}h (7 days), not {value / 3600:g}h"
            )
        return value

    @field_validator("services")
    @classmethod
    def _unique(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError(f"a service is named twice: {value}")
        return value

    @model_validator(mode="after")
    def _traffic(self) -> SoakSettings:
        self.load_settings(0.0)  # the load kind's rules for the traffic, once, at plan load
        return self

    def load_settings(self, warmup: float) -> LoadSettings:
        """The load this soak sends: `warmup`, then `duration` at `rate`."""
        fields: dict[str, Any] = {
            "base_url": self.base_url,
            "model": "open",
            "rate": self.rate,
            "duration": self.duration,
            "warmup": warmup,
            "max_duration": warmup + self.duration + _DRAIN,
            "max_connections": self.max_connections,
            "request_timeout": self.request_timeout,
            "generator": self.generator,
            "late_threshold": self.late_threshold,
            "setup": self.setup,
            "requests": self.requests,
            "journeys": self.journeys,
            "teardown": self.teardown,
            "journey_weights": self.journey_weights,
        }
        try:
            return LoadSettings.model_validate({k: v for k, v in fields.items() if v is not None})
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            message = str(first["msg"]).removeprefix("Value error, ")
            raise ValueError(f"{where}: {message}" if where else message) from None
