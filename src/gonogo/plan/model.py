"""The plan as typed models. Validated once, when the plan loads; trusted everywhere after.

Strings may contain placeholders that are filled in at run time:
`{port.NAME}` (a free TCP port gonogo allocates for NAME), `{base_url}`, `{plan_dir}`,
`{run_dir}` (a fresh directory per run, for the services' data), `{work_dir}`
(a check's scratch directory).
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_LOG_ERRORS",
    "BaselinePolicy",
    "ByteSize",
    "CheckSpec",
    "DataVolume",
    "Duration",
    "GateSpec",
    "History",
    "LocatedValueError",
    "Plan",
    "ProxyRoute",
    "ReadinessProbe",
    "ResourceLimits",
    "Score",
    "Service",
    "Signoff",
    "SystemSpec",
    "Trends",
    "host_port",
    "http_url",
    "refuse_unknown_placeholders",
]

import difflib
import re
import shlex
import signal
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gonogo.errors import GonogoError
from gonogo.threshold import Threshold, parse_threshold
from gonogo.units import parse_duration, parse_quantity

PLACEHOLDER = re.compile(r"\{(port\.[A-Za-z0-9_-]+|base_url|plan_dir|run_dir|work_dir)\}")
_BRACED = re.compile(r"\{([^{}]*)\}")
_FIXED_PLACEHOLDERS = ("base_url", "plan_dir", "run_dir", "work_dir")
# What a placeholder stands for when checking the shape of a URL before the run.
_SAMPLES = {"base_url": "http://127.0.0.1:8080", "plan_dir": "/plan", "run_dir": "/run", "work_dir": "/work"}


def _sample(match: re.Match[str]) -> str:
    name = match.group(1)
    return "8080" if name.startswith("port.") else _SAMPLES[name]


def refuse_unknown_placeholders(value: str) -> None:
    """A `{...}` in a URL or an address that is no placeholder is a typo (`{prot.api}`)."""
    for match in _BRACED.finditer(value):
        if PLACEHOLDER.fullmatch(match.group(0)):
            continue
        token = match.group(1)
        _, dot, tail = token.partition(".")
        candidates = [*_FIXED_PLACEHOLDERS, *([f"port.{tail}"] if dot and tail else [])]
        close = difflib.get_close_matches(token, candidates, n=1, cutoff=0.7)
        hint = f"; did you mean {{{close[0]}}}?" if close else ""
        raise ValueError(
            f"{{{token}}} is not a placeholder (they are {{port.NAME}}, {{base_url}}, {{plan_dir}}, "
            f"{{run_dir}} and {{work_dir}}){hint}"
        )


def http_url(value: str) -> str:
    """Check that `value` is an http(s) URL with a host, placeholders allowed; returns it."""
    refuse_unknown_placeholders(value)
    parts = urlsplit(PLACEHOLDER.sub(_sample, value))
    try:
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a port that is not a number in range
        valid = False
    if not valid:
        raise ValueError(
            f"expected an http:// or https:// URL with a host, such as "
            f"http://127.0.0.1:{{port.api}}/health; got {value!r}"
        )
    return value


def host_port(value: str) -> str:
    """Check that `value` is host:port, placeholders allowed; returns it."""
    refuse_unknown_placeholders(value)
    host, colon, port = PLACEHOLDER.sub(_sample, value).rpartition(":")
    if not (colon and host and port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"expected host:port, such as 127.0.0.1:{{port.db}}; got {value!r}")
    return value


DIMENSIONS = ("tests", "coverage", "performance", "reliability", "security", "operations")


class LocatedValueError(GonogoError, ValueError):
    """A model's own check that knows where inside the model the mistake is (`("steps", 2,
    "request", "auth")`): the plan loader reports it at that line rather than the model's."""

    def __init__(self, message: str, at: tuple[str | int, ...], located: str = "") -> None:
        super().__init__(message)
        self.at = at
        self.located = located or message  # the message once the line and field say where


class StrictModel(BaseModel):
    """Unknown keys are errors (with a suggestion), never silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(lambda seconds: f"{seconds}s", return_type=str),
    Field(description="seconds, or a string such as 500ms, 2s, 1m"),
]


def _parse_threshold_field(value: Any) -> Threshold:
    if isinstance(value, Threshold):
        return value
    return parse_threshold(value)


ThresholdField = Annotated[
    Threshold,
    BeforeValidator(_parse_threshold_field),
    PlainSerializer(lambda threshold: threshold.text, return_type=str),
]


def _signal_number(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return int(signal.Signals(value))
        except ValueError:
            raise ValueError(f"{value} is not a signal number; expected e.g. SIGTERM, SIGINT or 15") from None
    name = str(value).upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        close = difflib.get_close_matches(name, [s.name for s in signal.Signals], n=1, cutoff=0.7)
        hint = f"; did you mean {close[0]}?" if close else "; expected e.g. SIGTERM, SIGINT"
        raise ValueError(f"{value!r} is not a signal name{hint}") from None


SignalField = Annotated[int, BeforeValidator(_signal_number)]


def _parse_size(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected a size such as 1024, 64KiB or 50MB")
    number, unit = parse_quantity(value)
    if unit not in ("bytes", "number") or number < 0 or number != int(number):
        raise ValueError(f"{value!r} is not a size; expected a whole number of bytes or e.g. 64KiB, 50MB")
    return int(number)


ByteSize = Annotated[int, BeforeValidator(_parse_size), Field(description="bytes, or e.g. 64KiB, 50MB")]


def _parse_ratio(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a share of one CPU core such as 150% or 1.5")
    number, unit = parse_quantity(value)
    if unit not in ("ratio", "number") or number <= 0:
        raise ValueError(f"{value!r} is not a share of one CPU core; expected e.g. 80%, 150% or 1.5")
    return number


CpuShare = Annotated[float, BeforeValidator(_parse_ratio), Field(description="of one core: 80%, 150%, 1.5")]

# Lines of a service's log counted as errors unless the plan says otherwise (`log_errors`).
DEFAULT_LOG_ERRORS = (
    r"Traceback \(most recent call last\)",
    r"\b(ERROR|CRITICAL|FATAL|PANIC)\b",
    r"^panic: ",
    r"\bException in thread\b",
    r"\bSegmentation fault\b",
)


def require_splits(command: list[str] | str | None, *, shell: bool | None) -> None:
    """A string command that runs without a shell must split into words like a shell would.
    `shell`: None where there is no `shell:` option."""
    if isinstance(command, str) and not shell:
        try:
            shlex.split(command)
        except ValueError as error:
            fixes = "give a list, or set shell: true" if shell is not None else "or give a list"
            raise ValueError(
                f"{command!r} cannot be split into words ({error}); fix the quoting, {fixes}"
            ) from None


class ReadinessProbe(StrictModel):
    """How to tell a service is ready: exactly one of `http`, `tcp`, `command`."""

    http: str | None = None
    status: int | list[int] = 200
    tcp: str | None = Field(default=None, description="host:port")
    command: list[str] | str | None = None
    timeout: Duration = 30.0
    interval: Duration = 0.2

    @model_validator(mode="after")
    def _exactly_one(self) -> ReadinessProbe:
        given = [name for name in ("http", "tcp", "command") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                "a readiness probe needs exactly one of http (a URL), tcp (host:port) "
                f"or command; got {', '.join(given) or 'none'}"
            )
        return self

    @field_validator("command")
    @classmethod
    def _command_splits(cls, value: list[str] | str | None) -> list[str] | str | None:
        require_splits(value, shell=None)
        return value

    @field_validator("http")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return None if value is None else http_url(value)

    @field_validator("tcp")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        return None if value is None else host_port(value)

    @property
    def statuses(self) -> list[int]:
        return [self.status] if isinstance(self.status, int) else list(self.status)


class ResourceLimits(StrictModel):
    """What a service may use; a trend projected past one fails `service.<s>.<resource>.within_limit`."""

    memory: ByteSize | None = Field(default=None, description="resident memory, e.g. 1GB")
    fds: int | None = Field(default=None, gt=0, description="open file descriptors, e.g. 1024 (its ulimit)")
    threads: int | None = Field(default=None, gt=0)
    cpu: CpuShare | None = None


class DataVolume(StrictModel):
    """A small filesystem of its own for a service's data, so that a `disk_full` fault fills it and
    not the host's disk: mounted (tmpfs) at `path` before the service starts, removed after."""

    path: str = Field(description="where to mount it, usually under {run_dir}, e.g. {run_dir}/api-data")
    # At least 1 MiB: a tmpfs given no size (0) would be as large as half the machine's memory.
    size: ByteSize = Field(default=64 * 1024**2, ge=1024**2, description="e.g. 64MB; at least 1MiB")


class Service(StrictModel):
    shell: bool = False  # before `command`, whose validator reads it
    command: list[str] | str
    cwd: str | None = None  # relative to the plan's directory
    env: dict[str, str] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list)
    ready: ReadinessProbe | None = None
    stop_signal: SignalField = int(signal.SIGTERM)
    grace: Duration = 10.0
    # Supervision while the system is up: restart a service that exits on its own.
    restart: Literal["never", "on-failure", "always"] = "never"
    restart_backoff: Duration = 1.0  # before the first restart; doubles for each one after
    restart_backoff_max: Duration = 30.0
    max_restarts: int = Field(default=10, ge=0, description="restarts allowed within one run")
    # "faketime": started under libfaketime, so that a chaos experiment can skew its clock.
    clock: Literal["real", "faketime"] = "real"
    limits: ResourceLimits = Field(default_factory=ResourceLimits)
    # A Prometheus text endpoint: scraped with every resource sample, its process_* gauges trended.
    metrics: str | None = Field(default=None, description="e.g. http://127.0.0.1:{port.api}/metrics")
    log_errors: list[str] = Field(
        default_factory=lambda: list(DEFAULT_LOG_ERRORS),
        description="regular expressions; a log line matching one counts in service.<s>.log.errors",
    )
    data: DataVolume | None = None

    @field_validator("metrics")
    @classmethod
    def _metrics_url(cls, value: str | None) -> str | None:
        return None if value is None else http_url(value)

    @field_validator("log_errors")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"{pattern!r} is not a regular expression: {error}") from None
        return patterns

    @field_validator("command")
    @classmethod
    def _usable(cls, value: list[str] | str, info: ValidationInfo) -> list[str] | str:
        if not value or (isinstance(value, str) and not value.strip()):
            raise ValueError("a command must not be empty")
        require_splits(value, shell=bool(info.data.get("shell", False)))
        return value

    @model_validator(mode="after")
    def _backoff_is_sane(self) -> Service:
        if self.restart_backoff < 0 or self.restart_backoff_max < self.restart_backoff:
            raise ValueError(
                "restart_backoff must be >= 0 and restart_backoff_max at least restart_backoff; "
                f"got {self.restart_backoff:g}s and {self.restart_backoff_max:g}s"
            )
        return self


class ProxyRoute(StrictModel):
    """A dependency reached through gonogo's fault proxy: services talk to `listen`, which
    forwards to `upstream` until an experiment adds a fault."""

    listen: str = Field(description="host:port on loopback, e.g. 127.0.0.1:{port.db_proxy}")
    upstream: str = Field(description="host:port on loopback, e.g. 127.0.0.1:{port.db}")
    # tcp: Toxiproxy-style toxics; http: HTTP-level faults (status, delay, truncated body)
    protocol: Literal["tcp", "http"] = "tcp"


class Trends(StrictModel):
    """How resource trends are judged: the first `warmup` of each service's samples is left out
    (caches filling, pools growing), and slopes are projected to `horizon` (how long the service
    must run between restarts in production)."""

    warmup: Duration = Field(default=30.0, ge=0)
    horizon: Duration = Field(default=72 * 3600.0, gt=0)
    confidence: float = Field(default=0.95, gt=0.5, lt=1)


class SystemSpec(StrictModel):
    base_url: str | None = None
    services: dict[str, Service] = Field(default_factory=dict)
    sample_interval: Duration = 1.0
    trends: Trends = Field(default_factory=Trends)
    proxies: dict[str, ProxyRoute] = Field(default_factory=dict)
    # Where the fault proxy's Toxiproxy-compatible API listens (for Toxiproxy clients and
    # Chaos Toolkit); a free port when not given.
    faults_api: str | None = Field(default=None, description="host:port, e.g. 127.0.0.1:{port.toxiproxy}")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return None if value is None else http_url(value)

    @model_validator(mode="after")
    def _dependencies_exist_and_do_not_cycle(self) -> SystemSpec:
        for name, service in self.services.items():
            for dependency in service.depends_on:
                if dependency not in self.services:
                    raise ValueError(
                        f"service {name!r} depends on {dependency!r}, which is not a service "
                        f"of this plan (services: {', '.join(self.services)})"
                    )
        service_order(self.services)  # raises on a cycle
        return self


def service_order(services: dict[str, Service]) -> list[str]:
    """Names in an order where every service comes after what it depends on."""
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise ValueError(f"services depend on each other in a cycle: {' -> '.join([*path, name])}")
        state[name] = "visiting"
        for dependency in services[name].depends_on:
            visit(dependency, [*path, name])
        state[name] = "done"
        order.append(name)

    for name in services:
        visit(name, [])
    return order


class CheckSpec(BaseModel):
    """A named check: its kind and the kind's own settings (validated by the kind's model)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    kind: str
    settings: BaseModel
    timeout: float | None = None  # seconds; the whole check is stopped after it
    needs_system: bool = True  # False: runs before services start (e.g. unit tests)


class GateSpec(StrictModel):
    metric: str  # a metric name or a glob over metric names (`*.error_rate`)
    expr: ThresholdField
    severity: Literal["must", "should"] = "must"
    dimension: str | None = None  # overrides the measured metric's dimension
    # Stop the check that measures this metric as soon as the gate is in breach while it
    # runs (a load test that is already failing need not go on).
    abort_on_fail: bool = False


class Score(StrictModel):
    weights: dict[str, float] = Field(
        default_factory=lambda: {
            "tests": 3.0,
            "coverage": 1.0,
            "performance": 2.0,
            "reliability": 3.0,
            "security": 3.0,
            "operations": 1.0,
        }
    )
    minimum: float = Field(default=80.0, ge=0, le=100, description="overall score needed for GO, 0-100")


class Signoff(StrictModel):
    """People who must sign a GO off before release, each with a confidence of 0-10."""

    roles: list[str] = Field(default_factory=list, description="roles that must sign off, e.g. qa, security")
    min_confidence: int = Field(default=0, ge=0, le=10, description="a sign-off counts from this confidence")

    @field_validator("roles")
    @classmethod
    def _distinct_names(cls, roles: list[str]) -> list[str]:
        for role in roles:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", role):
                raise ValueError(f"a role is one word of letters, digits, '_', '.' or '-'; got {role!r}")
        repeated = sorted({role for role in roles if roles.count(role) > 1})
        if repeated:
            raise ValueError(f"role {repeated[0]!r} is listed twice")
        return roles


def _parse_confidence(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a confidence such as 95% or 0.95")
    number, unit = parse_quantity(value)
    if unit not in ("ratio", "number") or not 0.5 < number < 1:
        raise ValueError(f"{value!r} is not a confidence between 50% and 100%; expected e.g. 95% or 0.95")
    return number


Confidence = Annotated[float, BeforeValidator(_parse_confidence), Field(description="e.g. 95% or 0.95")]


class BaselinePolicy(StrictModel):
    """What relative gates (`"<= +10% baseline"`) compare with: the run pinned with `gonogo
    baseline set` when there is one, else the last `runs` passing runs of the plan (GO, completed)."""

    runs: int = Field(default=5, ge=1, le=100, description="passing runs aggregated when none is pinned")
    # of the interval around the shift of a latency distribution (Hodges-Lehmann, Moses)
    confidence: Confidence = 0.95


class History(StrictModel):
    """How far back a run looks in its plan's earlier runs (the history of flaky tests)."""

    runs: StrictInt = Field(
        default=10,
        ge=0,
        le=1000,
        description="earlier runs of this plan read besides this one; 0: only this run's reruns",
    )


class Plan(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    path: Path  # the plan file, absolute
    text: str  # the plan exactly as read, kept as evidence
    name: str
    system: SystemSpec
    checks: dict[str, CheckSpec]
    gates: list[GateSpec]
    score: Score
    signoff: Signoff = Field(default_factory=Signoff)  # no roles: no sign-off required
    baseline: BaselinePolicy = Field(default_factory=BaselinePolicy)
    history: History = Field(default_factory=History)
    # the metrics of `gates` that no line of the plan wrote: its check kinds' own gates
    default_gate_metrics: frozenset[str] = frozenset()

    @property
    def directory(self) -> Path:
        return self.path.parent

    @property
    def has_relative_gates(self) -> bool:
        """Whether a gate compares with a baseline (`"<= +10% baseline"`)."""
        return any(gate.expr.relative_to_baseline for gate in self.gates)

    def port_names(self) -> list[str]:
        """Every `{port.NAME}` the plan mentions, in order of first mention."""
        names: list[str] = []
        for match in PLACEHOLDER.finditer(self.text):
            token = match.group(1)
            if token.startswith("port.") and token[5:] not in names:
                names.append(token[5:])
        return names
