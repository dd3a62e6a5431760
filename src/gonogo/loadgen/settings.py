"""The `load` check's settings: the plan's `checks.<name>` section, validated once.

```yaml
checks:
  load:
    kind: load
    model: open                    # open (arrival rate) | closed (virtual users)
    rate: 200/s                    # open: constant arrivals; or `stages` to ramp
    duration: 60s
    warmup: 5s                     # measured apart, not in the results
    setup:                         # a journey run once first; its variables feed the requests
      steps:
        - name: login
          request: {method: POST, path: /login, json: {user: demo}}
          extract: {token: "json:$.token"}
    requests:
      - {name: list, path: /documents, headers: {Authorization: "Bearer {token}"}, component: api, weight: 3}
      - {name: health, path: /health, component: api}
      - name: item
        path: /items/3
        expect:                    # checked on every response, in the engine (see `LoadExpect`)
          status: [200, 201]       # default: any 2xx
          headers: {Content-Type: json}       # the value contains this text
          body_contains: '"id"'
          json: {"$.id": 3, "$.tags[0]": new, "$.deleted": false}
      - name: tokens               # a streaming response (an LLM server's token stream):
        method: POST               # time to first event, time between events, events/s,
        path: /v1/completions      # streams cut short (see docs/load.md)
        json: {prompt: hi, stream: true}
        stream: sse                # sse | chunks | lines (newline-delimited JSON)
```

Or, instead of `requests`, the plan's own journeys (the journeys kind's model, so a YAML
anchor can reuse the e2e journeys): each arrival (open) or each turn of a virtual user
(closed) runs one iteration of a journey, step after step, with its own variables and
cookies; `max_connections` caps the iterations in flight and `max_requests` counts
iterations. See `journey_load` for the measurements.

```yaml
    journeys:
      browse: *browse_journey          # an anchor on the e2e check's journey
      upload: *upload_journey
    journey_weights: {browse: 4}       # default 1 each: 4 browse iterations per upload
    components: {upload: api, upload.wait_processed: worker}
```
"""

from __future__ import annotations

__all__ = ["GeneratorLimits", "LoadExpect", "LoadRequest", "LoadSettings", "SetupFeedsJourneys", "Stage"]

import json
import math
import re
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from pydantic import BeforeValidator, Field, ModelWrapValidatorHandler, field_validator, model_validator

from gonogo.journey.jsonpath import JsonPath
from gonogo.journey.settings import (
    Journey,
    JourneysSettings,
    JsonPathKey,
    Name,
    Statuses,
    inherited_variables,
)
from gonogo.journey.variables import BUILTINS, names_in, unknown_message
from gonogo.loadgen.expect import (
    DEFAULT_MAX_BODY,
    MAX_BODY_LIMIT,
    MAX_HEADERS,
    MAX_JSON_FIELDS,
    MAX_PATH_STEPS,
    MAX_TEXT_BYTES,
    JsonField,
    JsonScalar,
    ResponseExpect,
)
from gonogo.loadgen.spec import Endpoint, LoadSpec, StreamKind
from gonogo.plan.model import ByteSize, Duration, StrictModel
from gonogo.units import parse_quantity

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _parse_rate(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a rate such as 200/s or 200")
    number, unit = parse_quantity(value)
    if unit not in ("per_second", "number") or number <= 0:
        raise ValueError(f"{value!r} is not a rate; expected requests per second such as 200/s")
    return number


def _parse_ratio(value: Any) -> float:
    number, unit = parse_quantity(value)
    if unit not in ("ratio", "number") or not 0 <= number <= 1:
        raise ValueError(f"{value!r} is not a share; expected e.g. 90% or 0.9")
    return number


Rate = Annotated[float, BeforeValidator(_parse_rate), Field(description="requests per second, e.g. 200/s")]
Ratio = Annotated[float, BeforeValidator(_parse_ratio), Field(description="a share, e.g. 90%")]


class Stage(StrictModel):
    """Ramp linearly from the previous stage's rate (the first starts at 0) to `rate`."""

    duration: Duration
    rate: Rate


_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def _scalar(value: Any) -> JsonScalar:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise ValueError(
        f"{value!r}: a load compares a JSON field with one value (a string, a number, true, "
        "false or null); operators ({equals|exists|matches|one_of: ...}), objects and lists "
        "are the journeys kind's"
    )


Scalar = Annotated[JsonScalar, BeforeValidator(_scalar)]


def _text(limit: int, what: str) -> Any:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"expected the text {what} must contain, not {value!r}")
        if not 1 <= len(value.encode()) <= limit:
            raise ValueError(f"{what}: 1 to {limit} bytes of text, not {len(value.encode())}")
        return value

    return BeforeValidator(check)


class LoadExpect(StrictModel):
    """What every response to a load request must be, checked by the engine as it reads the
    response (the journeys' `expect`, in a subset). Placeholders (`{port.api}`, `{base_url}`,
    the setup's variables) are filled in once, before the load starts, as in the request."""

    status: Statuses = None  # None: any 2xx
    headers: dict[str, Annotated[str, _text(MAX_TEXT_BYTES, "a header")]] = Field(
        default_factory=dict, description="header → a text its value must contain (names: any case)"
    )
    body_contains: Annotated[str, _text(MAX_TEXT_BYTES, "body_contains")] | None = None
    json_fields: dict[JsonPathKey, Scalar] = Field(
        default_factory=dict, alias="json", description="JSON path → the value there (JSON equality)"
    )
    max_body: ByteSize | None = Field(
        default=None, description=f"bytes of body read for `json` (default {DEFAULT_MAX_BODY // 1024} KiB)"
    )

    @field_validator("headers")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _TOKEN.match(name):
                raise ValueError(f"{name!r} is not a header name")
        if len(value) > MAX_HEADERS:
            raise ValueError(f"at most {MAX_HEADERS} headers")
        lowered = [name.lower() for name in value]
        if len(set(lowered)) != len(lowered):
            raise ValueError("a header is named twice (names are case-insensitive)")
        return value

    @field_validator("json_fields")
    @classmethod
    def _fields(cls, value: dict[JsonPath, JsonScalar]) -> dict[JsonPath, JsonScalar]:
        if len(value) > MAX_JSON_FIELDS:
            raise ValueError(f"at most {MAX_JSON_FIELDS} JSON fields")
        for path in value:
            if len(path.parts) > MAX_PATH_STEPS:
                raise ValueError(f"{path}: at most {MAX_PATH_STEPS} steps")
        return value

    @model_validator(mode="after")
    def _bounded(self) -> LoadExpect:
        if self.max_body is not None:
            if not self.json_fields:
                raise ValueError("`max_body` bounds the body read for `json` fields; this expect has none")
            if not 1 <= self.max_body <= MAX_BODY_LIMIT:
                raise ValueError(f"max_body: 1 byte to {MAX_BODY_LIMIT // (1 << 20)} MiB")
        return self

    def templates(self) -> list[Any]:
        """Every text that may hold a placeholder."""
        return [self.headers, self.body_contains or "", list(self.json_fields.values())]

    def compile(self, fill: Callable[[str], str], fill_value: Callable[[Any], Any]) -> ResponseExpect:
        """The engine's form, with placeholders filled by `fill` (texts) and `fill_value` (a
        JSON value: a lone `{name}` keeps its variable's type)."""
        return ResponseExpect(
            statuses=self.status or (),
            headers=tuple((name, fill(value)) for name, value in self.headers.items()),
            body_contains=fill(self.body_contains) if self.body_contains is not None else None,
            json=tuple(
                JsonField(str(path), path.parts, fill_value(value))
                for path, value in self.json_fields.items()
            ),
            max_body=self.max_body or DEFAULT_MAX_BODY,
        )


class LoadRequest(StrictModel):
    """One request the load picks by weight. `{name}` placeholders come from `setup`."""

    name: Name
    method: str = "GET"
    path: str
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, str] = Field(default_factory=dict)
    json_body: Any = Field(default=None, alias="json")
    form: dict[str, str] | None = None
    body: str | None = None
    component: Name = "default"  # gates can read each component's error rate on its own
    weight: int = Field(default=1, ge=1, le=10_000)
    expect: LoadExpect | None = None  # without it: any response but a 4xx/5xx is a success
    stream: StreamKind | None = Field(
        default=None,
        description="the response is a stream whose events are timed: sse (server-sent events), "
        "chunks (each chunk of a chunked body) or lines (newline-delimited JSON)",
    )

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        if value.upper() not in METHODS:
            raise ValueError(f"{value!r} is not an HTTP method; expected one of {', '.join(METHODS)}")
        return value.upper()

    @field_validator("stream", mode="before")
    @classmethod
    def _stream_alias(cls, value: object) -> object:
        # the names other tools give newline-delimited JSON: pointed to `lines`, not just refused
        if isinstance(value, str) and value.lower() in {"ndjson", "jsonl", "json-lines", "jsonlines", "json"}:
            raise ValueError(
                f"expected one of sse, chunks, lines (got {value!r}): newline-delimited JSON is `lines`"
                " (every non-empty line is an event)"
            )
        return value

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"{value!r} must start with '/': requests go to the check's base URL only")
        return value

    @model_validator(mode="after")
    def _one_body(self) -> LoadRequest:
        bodies = (("json", self.json_body), ("form", self.form), ("body", self.body))
        given = [name for name, value in bodies if value is not None]
        if len(given) > 1:
            raise ValueError(f"give at most one body (json, form or body), not {', '.join(given)}")
        if self.method == "HEAD" and self.expect and (self.expect.body_contains or self.expect.json_fields):
            raise ValueError("a HEAD request gets no body: its expect cannot have body_contains or json")
        if self.method == "HEAD" and self.stream is not None:
            raise ValueError("a HEAD request gets no body: it cannot be a `stream`")
        return self

    def target(self) -> str:
        return (
            self.path + ("&" if "?" in self.path else "?") + urlencode(self.query)
            if self.query
            else self.path
        )

    def body_template(self) -> tuple[str | None, str | None]:
        """(text with placeholders, content type) of the body, if any."""
        if self.json_body is not None:
            return json.dumps(self.json_body, separators=(",", ":")), "application/json"
        if self.form is not None:
            return urlencode(self.form), "application/x-www-form-urlencoded"
        return self.body, None


class GeneratorLimits(StrictModel):
    """Beyond these the generator itself was the bottleneck: the run is invalid."""

    max_cpu: Ratio = 0.9  # of the generator's cores
    max_late: Ratio = 0.01  # of the requests the generator itself reached later than `late_threshold`


Weight = Annotated[int, Field(ge=1, le=10_000)]


class SetupFeedsJourneys(StrictModel):
    """Settings whose `journeys` (and `teardown`) may use what their `setup` defines: `setup`
    (declared before them) is validated first and tells them, through `inherited_variables`,
    for the span of this validation. The load and the soak kinds both take it."""

    setup: Journey | None = None

    @model_validator(mode="wrap")
    @classmethod
    def _setup_feeds_journeys(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        token = inherited_variables.set(frozenset())
        try:
            return handler(data)
        finally:
            inherited_variables.reset(token)

    @field_validator("setup")
    @classmethod
    def _tell_journeys(cls, setup: Journey | None) -> Journey | None:
        if setup is not None:
            inherited_variables.set(frozenset(_defined_by(setup)))
        return setup


class LoadSettings(SetupFeedsJourneys):
    base_url: str | None = None
    model: Literal["open", "closed"] = "open"
    rate: Rate | None = None
    stages: list[Stage] = Field(default_factory=list)
    arrivals: Literal["constant", "poisson"] = "constant"
    seed: int = 1
    users: int | None = Field(default=None, ge=1, le=100_000)
    think_time: Duration = 0.0
    duration: Duration | None = None
    max_requests: int | None = Field(default=None, ge=1)
    max_duration: Duration = 3600.0  # a hard stop, whatever else the plan says
    warmup: Duration = 0.0
    workers: int | Literal["auto"] = 1
    max_connections: int = Field(default=256, ge=1, le=100_000)
    request_timeout: Duration = 10.0
    late_threshold: Duration = 0.01
    generator: GeneratorLimits = Field(default_factory=GeneratorLimits)
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
    journey_weights: dict[Name, Weight] = Field(
        default_factory=dict, description="journey → integer share of the iterations (default 1)"
    )
    setup_attempts: int = Field(
        default=5,
        ge=1,
        le=100,
        description="journeys, closed model: how many times a user tries its setup, with a growing "
        "random backoff between attempts, before it gives up (and runs no iteration)",
    )
    components: dict[str, Name] = Field(
        default_factory=dict,
        description="journeys only: JOURNEY or JOURNEY.STEP → component (default: `default`)",
    )

    @model_validator(mode="after")
    def _coherent(self) -> LoadSettings:
        if self.model == "open":
            if (self.rate is None) == (not self.stages):
                raise ValueError("an open model needs exactly one of `rate` (constant) or `stages` (a ramp)")
            if self.users is not None:
                raise ValueError(
                    "`users` belongs to the closed model; the open model sets `rate` or `stages`"
                )
        else:
            if self.users is None:
                raise ValueError("a closed model needs `users` (how many virtual users)")
            if self.rate is not None or self.stages:
                raise ValueError(
                    "`rate` and `stages` belong to the open model; the closed model sets `users`"
                )
        if self.duration is None and self.max_requests is None and not self.stages:
            raise ValueError("a load must be bounded: give `duration` or `max_requests` (or `stages`)")
        if isinstance(self.workers, int) and not 1 <= self.workers <= 64:
            raise ValueError("`workers` is 'auto' or a number from 1 to 64")
        if self.warmup >= self.max_duration:
            raise ValueError("`warmup` must be shorter than `max_duration`, which includes it")
        if (self.requests is None) == (self.journeys is None):
            raise ValueError(
                "a load sends exactly one of `requests` (a mix of plain requests) or `journeys` "
                "(multi-step iterations)" + ("; this one has both" if self.requests is not None else "")
            )
        if self.journeys is not None:
            self._check_journeys(self.journeys)
            return self
        if self.journey_weights or self.components:
            raise ValueError(
                "`journey_weights` and `components` belong to `journeys`; a request names its "
                "`component` and `weight` itself"
            )
        if self.teardown is not None:
            raise ValueError(
                "`teardown` runs once per virtual user of `journeys`; plain `requests` have no users to end"
            )
        assert self.requests is not None
        names = [request.name for request in self.requests]
        if len(set(names)) != len(names):
            raise ValueError(f"request names must be unique: {names}")
        # the built-ins are the setup journey's (its one iteration); without a setup there are none
        known = (set(BUILTINS) if self.setup is not None else set()) | self._setup_variables()
        for request in self.requests:
            text, _ = request.body_template()
            expected = request.expect.templates() if request.expect is not None else []
            for name in sorted(
                names_in([request.path, request.headers, request.query, text or "", *expected])
            ):
                if name in BUILTINS and name not in known:
                    raise ValueError(
                        f"request {request.name}: {{{name}}} is the setup journey's, and this load has no "
                        "setup; plain requests are sent as the same bytes every time: for a fresh "
                        f"{{{name}}} per request, load `journeys` instead"
                    )
                if name not in known:
                    raise ValueError(f"request {request.name}: " + unknown_message(name, known))
        return self

    def _check_journeys(self, journeys: dict[str, Journey]) -> None:
        for name, once in (("setup", self.setup), ("teardown", self.teardown)):
            if once is not None and name in journeys:
                raise ValueError(
                    f"journeys: a journey named {name!r} beside the load's `{name}` would share its "
                    f"metric names (`endpoint.{name}.STEP`); rename the journey"
                )
            if once is not None and "iteration" in _used_by(once):
                raise ValueError(
                    f"{name}: {{iteration}} has no value there: {name} runs once per virtual user, "
                    "outside its iterations; {uuid} is fresh for each user"
                )
        if isinstance(self.workers, int) and self.workers > 1:  # `auto`: one process on the Python driver
            from gonogo.loadgen.journey_compile import fast_path_fallback  # it imports this module

            fallback = fast_path_fallback(self)
            if fallback is not None:
                change = "change that step" if len(fallback.reasons) == 1 else "change those steps"
                raise ValueError(
                    f"workers: {self.workers} needs the C engine, and {fallback.reason} (in one process): "
                    f"set workers: 1, or {change}"
                )
        for name in self.journey_weights:
            if name not in journeys:
                raise ValueError(
                    f"journey_weights: {name!r} is not one of the journeys ({', '.join(journeys)})"
                )
        for key in self.components:
            journey, _, step = key.partition(".")
            if journey not in journeys:
                raise ValueError(f"components: {key!r}: {journey!r} is not one of the journeys")
            if step and step not in {s.name for s in journeys[journey].steps}:
                steps = ", ".join(s.name for s in journeys[journey].steps)
                raise ValueError(f"components: {key!r}: journey {journey} has no step {step!r} ({steps})")

    def journeys_settings(self) -> JourneysSettings:
        """The journeys as the journeys engine takes them."""
        assert self.journeys is not None
        return self._as_journeys(self.journeys)

    def once_journeys(self) -> dict[str, Journey]:
        """The per-user `setup` and `teardown` (those given), by those names."""
        return {name: j for name, j in (("setup", self.setup), ("teardown", self.teardown)) if j is not None}

    def once_settings(self) -> JourneysSettings | None:
        """The per-user `setup` and `teardown` as journeys named so, for the journeys engine."""
        once = self.once_journeys()
        return self._as_journeys(once) if once else None

    def _as_journeys(self, journeys: dict[str, Journey]) -> JourneysSettings:
        # validated again there: what the setup defines is known to the journeys, as here
        token = inherited_variables.set(frozenset(self._setup_variables()))
        try:
            return JourneysSettings.model_validate(
                {"journeys": journeys, "request_timeout": self.request_timeout}
            )
        finally:
            inherited_variables.reset(token)

    def component_of(self, journey: str, step: str) -> str:
        """A journey step's component: its own entry, else its journey's, else `default`."""
        return self.components.get(f"{journey}.{step}", self.components.get(journey, "default"))

    def engine_spec(
        self, *, host: str, port: int, host_header: str, endpoints: Sequence[Endpoint]
    ) -> LoadSpec:
        """The engine's spec: these settings' model and bounds, sending `endpoints`."""
        return LoadSpec(
            host=host,
            port=port,
            endpoints=list(endpoints),
            model=self.model,
            rate=self.rate,
            stages=[(stage.duration, stage.rate) for stage in self.stages],
            poisson=self.arrivals == "poisson",
            seed=self.seed,
            users=self.users or 1,
            think_time=self.think_time,
            duration=self.measured_limit,
            max_requests=self.max_requests,
            warmup=self.warmup,
            max_connections=self.max_connections,
            timeout=self.request_timeout,
            late_threshold=self.late_threshold,
            workers=0 if self.workers == "auto" else self.workers,
            host_header=host_header,
        )

    def _setup_variables(self) -> set[str]:
        return _defined_by(self.setup) if self.setup is not None else set()

    @property
    def measured_limit(self) -> float:
        """How long the measured phase may run: `duration`, within `max_duration` (a hard stop,
        warm-up included, that bounds a run given only `max_requests` or stages too)."""
        return min(self.duration or float("inf"), self.max_duration - self.warmup)

    @property
    def planned_duration(self) -> float:
        """How long the load runs at most, warm-up included."""
        ramp = sum(stage.duration for stage in self.stages)
        return min(self.max_duration, self.warmup + (self.duration or ramp or self.max_duration))


def _defined_by(journey: Journey) -> set[str]:
    """The variables a journey defines: its `variables` and what its steps extract."""
    found = set(journey.variables)
    for step in journey.steps:
        found |= set(step.extract)
    return found


def _used_by(journey: Journey) -> set[str]:
    """The variables a journey's templates refer to."""
    found = names_in(list(journey.variables.values()))
    for step in journey.steps:
        for _, template in step.templates():
            found |= names_in(template)
    return found
