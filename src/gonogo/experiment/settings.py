"""What an experiment is made of, as a plan writes it: the steady-state hypothesis, the faults, the
background load and the integrity writes. The chaos check combines them; the observability and
operation checks reuse them.

A chaos experiment as the plan writes it, validated once when the plan loads.

    checks:
      worker_crash:
        kind: chaos
        load: {rate: 20/s, requests: [{name: list, path: /documents}]}
        hypothesis:
          probes:
            - {name: health, http: /health, status: 200, latency: "< 500ms"}
        faults:
          - {kill: worker, signal: SIGKILL}
        before: 5s       # steady state observed before the fault
        duration: 10s    # the fault window
        recovery: {timeout: 60s, sustain: 5s}

Probes and faults are each written as a mapping whose first key says what it is
(`http:`, `command:`, `metric:`; `kill:`, `pause:`, `proxy:`...), so a plan reads like the
experiment it describes; each form is its own typed model with its own error messages.
"""

from __future__ import annotations

__all__ = [
    "FAULT_KINDS",
    "BackgroundLoad",
    "ClockFault",
    "CommandProbe",
    "DiskFillFault",
    "DiskFullFault",
    "Fault",
    "HttpFault",
    "HttpProbe",
    "Hypothesis",
    "Integrity",
    "KillFault",
    "MetricProbe",
    "NetworkFault",
    "PauseFault",
    "PostgresRestartFault",
    "PostgresTerminateFault",
    "Probe",
    "ProcessSelector",
    "ProxyFault",
    "RestartFault",
    "SqliteGoneFault",
    "SqliteLockFault",
    "StressFault",
]

import re
import signal
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Discriminator, Field, Tag, ValidationError, model_validator

from gonogo.experiment.readback import written_json_expectations
from gonogo.journey.jsonpath import JsonPath
from gonogo.journey.settings import (
    Journey,
    JourneysSettings,
    JsonPathKey,
    MatcherField,
    Name,
    Statuses,
    Step,
    VariableName,
)
from gonogo.loadgen.settings import LoadRequest, Rate, Ratio
from gonogo.plan.model import ByteSize, Duration, SignalField, StrictModel, ThresholdField
from gonogo.units import parse_duration

# ---------------------------------------------------------------------------------------
# The steady-state hypothesis


class HttpProbe(StrictModel):
    """An HTTP request that must answer as expected (status, JSON fields, latency)."""

    name: Name
    http: str = Field(description="a path on the base URL (/health) or a loopback URL")
    method: str = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    status: Statuses = None  # default: any 2xx
    json_fields: dict[JsonPathKey, MatcherField] = Field(default_factory=dict, alias="json")
    latency: ThresholdField | None = Field(default=None, description='e.g. "< 500ms"')
    timeout: Duration = Field(default=2.0, gt=0)


class CommandProbe(StrictModel):
    """A command that must exit with `exit_code` (run in the plan's directory)."""

    name: Name
    command: list[str] | str
    shell: bool = False
    exit_code: int = 0
    timeout: Duration = Field(default=10.0, gt=0)


class MetricProbe(StrictModel):
    """A figure of the background load over its last `window` that must meet `expr`."""

    name: Name
    metric: Literal["error_rate", "availability", "rps"]
    expr: ThresholdField
    window: Duration = Field(default=2.0, ge=1.0)


def _tag_by_key(kinds: dict[str, type]) -> Any:
    """The union member to validate with: the one whose key the mapping has."""

    def tag(value: Any) -> str | None:
        if isinstance(value, dict):
            found = [key for key in kinds if key in value]
            return found[0] if len(found) == 1 else None
        return next((key for key, kind in kinds.items() if isinstance(value, kind)), None)

    return tag


Probe = Annotated[
    Annotated[HttpProbe, Tag("http")]
    | Annotated[CommandProbe, Tag("command")]
    | Annotated[MetricProbe, Tag("metric")],
    Discriminator(
        _tag_by_key({"http": HttpProbe, "command": CommandProbe, "metric": MetricProbe}),
        custom_error_type="probe_kind",
        custom_error_message="a probe needs exactly one of http (a path or URL), command, or metric",
    ),
]


class Hypothesis(StrictModel):
    """What "working" means; checked before the fault, during it and until recovered."""

    interval: Duration = Field(default=1.0, gt=0, description="between two rounds of probes")
    probes: list[Probe] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> Hypothesis:
        names = [probe.name for probe in self.probes]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"probe names must be unique; repeated: {', '.join(duplicates)}")
        return self


# ---------------------------------------------------------------------------------------
# Faults


class ProcessSelector(StrictModel):
    """One process inside a service: a worker rather than the whole tree.

    `matching` (a regular expression searched in the command line) or `pid_file` (a file
    holding the pid, placeholders allowed) narrow the choice; without either, gonogo chooses
    among the processes the service started (every one but the one it launched itself).
    """

    pick: Literal["newest", "oldest", "random"] = "newest"
    matching: str | None = None
    pid_file: str | None = None

    @model_validator(mode="after")
    def _one_way(self) -> ProcessSelector:
        if self.matching is not None and self.pid_file is not None:
            raise ValueError("give matching or pid_file, not both")
        if self.pid_file is not None and "pick" in self.model_fields_set:
            raise ValueError("a pid_file names one process: pick does not apply")
        if self.matching is not None:
            try:
                re.compile(self.matching)
            except re.error as error:
                raise ValueError(
                    f"matching: {self.matching!r} is not a regular expression ({error})"
                ) from None
        return self


def _process_selector(value: Any) -> Any:
    # `process: newest` is short for `process: {pick: newest}`.
    return {"pick": value} if isinstance(value, str) else value


class KillFault(StrictModel):
    """Kill a service's whole process tree, or with `process` one process inside it (a worker),
    `repeat` times `every` seconds apart."""

    kill: str = Field(description="a service of the plan")
    process: Annotated[ProcessSelector | None, BeforeValidator(_process_selector)] = None
    signal: SignalField = int(signal.SIGKILL)
    repeat: int = Field(default=1, ge=1, le=100)
    every: Duration = Field(default=5.0, gt=0)


class PauseFault(StrictModel):
    """SIGSTOP a service for the fault window (a hung process), SIGCONT after."""

    pause: str = Field(description="a service of the plan")


class RestartFault(StrictModel):
    """Restart a service gracefully (its stop signal and grace), as a deployment would."""

    restart: str = Field(description="a service of the plan")


TOXICS = ("latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer", "limit_data")


class ProxyFault(StrictModel):
    """A Toxiproxy toxic on one of the plan's proxies, or `toxic: down` (the proxy refuses)."""

    proxy: str = Field(description="a proxy of system.proxies")
    toxic: Literal[
        "latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer", "limit_data", "down"
    ]
    attributes: dict[str, int] = Field(
        default_factory=dict, description="as Toxiproxy's, e.g. {latency: 2000}"
    )
    stream: Literal["upstream", "downstream"] = "downstream"
    toxicity: Ratio = 1.0


class HttpFault(StrictModel):
    """An HTTP-level fault on a `protocol: http` proxy: exactly one of status, delay, truncate, reset."""

    http: str = Field(description="a proxy of system.proxies with protocol: http")
    status: int | None = Field(default=None, ge=200, le=599, description="answer this status instead")
    delay: Duration | None = Field(default=None, ge=0)
    truncate: ByteSize | None = Field(default=None, description="bytes of the response body kept")
    reset: bool = Field(default=False, description="close the connection with a TCP reset, no answer")
    rate: Ratio = Field(default=1.0, description="share of the requests affected")
    method: str | None = None
    path: str | None = Field(
        default=None, description="only requests to this path or below it (or a glob with *)"
    )

    @model_validator(mode="after")
    def _one_effect(self) -> HttpFault:
        given = [name for name in ("status", "delay", "truncate") if getattr(self, name) is not None]
        given += ["reset"] if self.reset else []
        if len(given) != 1:
            raise ValueError(
                f"an http fault needs exactly one of status, delay, truncate, reset; got {given or 'none'}"
            )
        return self


class StressFault(StrictModel):
    """stress-ng on this machine during the fault window."""

    stress: Literal["cpu", "memory", "io", "disk"]
    workers: int = Field(default=1, ge=1, le=64)
    load: Ratio | None = Field(default=None, description="cpu: share of each worker's core, e.g. 90%")
    memory: ByteSize | None = Field(default=None, description="memory: bytes held in total")


class DiskFillFault(StrictModel):
    """Fill the filesystem holding `disk_fill` until only `leave_free` is left."""

    disk_fill: str = Field(description="a directory, e.g. {run_dir}/data")
    leave_free: ByteSize = 1024 * 1024
    max_fill: ByteSize = Field(default=4 * 1024**3, description="refuse to write more than this")


class DiskFullFault(StrictModel):
    """Fill the data volume of a service (its `data:`, a tmpfs gonogo mounts) until only
    `leave_free` is left: the service's own disk is full, the host's is untouched."""

    disk_full: str = Field(description="a service of the plan with data:")
    leave_free: ByteSize = 0


class SqliteLockFault(StrictModel):
    """Hold a lock on a SQLite database for the fault window, released on removal.

    `write` (BEGIN IMMEDIATE): the service's writes wait for it, then fail with "database is
    locked"; its reads go on. `exclusive` (BEGIN EXCLUSIVE): its reads wait too (except in WAL
    mode, where SQLite never blocks readers).
    """

    sqlite_lock: str = Field(description="the database file, e.g. {run_dir}/data/app.db")
    mode: Literal["write", "exclusive"] = "write"


class SqliteGoneFault(StrictModel):
    """Move a SQLite database file (and its -wal, -shm, -journal) away for the fault window,
    back on removal (unless the service made a new one meanwhile: then both are kept)."""

    sqlite_gone: str = Field(description="the database file, e.g. {run_dir}/data/app.db")


class PostgresTerminateFault(StrictModel):
    """Terminate the service's PostgreSQL backends (pg_terminate_backend), `repeat` times
    `every` seconds apart, as a failover or an administrator would.

    Backends of `database` (default: the one `postgres_terminate` connects to), narrowed by
    `user` and `application_name`; never gonogo's own connections.
    """

    postgres_terminate: str = Field(
        description="a connection string gonogo can use, e.g. postgresql://postgres@127.0.0.1:{port.db}/app"
    )
    database: str | None = None
    user: str | None = None
    application_name: str | None = None
    repeat: int = Field(default=1, ge=1, le=100)
    every: Duration = Field(default=5.0, gt=0)


class PostgresRestartFault(StrictModel):
    """Restart a PostgreSQL server gonogo did not start (`pg_ctl restart`, as the owner of its data
    directory). A server the plan starts as a service is restarted with `restart: <service>`."""

    postgres_restart: str = Field(description="the server's data directory (holding postmaster.pid)")
    mode: Literal["smart", "fast", "immediate"] = "fast"
    timeout: Duration = Field(default=60.0, gt=0, description="for the server to be back")


class NetworkFault(StrictModel):
    """Packet loss or a partition on a loopback TCP port (iptables, network namespace only)."""

    network: str = Field(description="a port, e.g. {port.db}")
    loss: Ratio | None = None
    partition: bool = False

    @model_validator(mode="after")
    def _one_effect(self) -> NetworkFault:
        if (self.loss is None) == (not self.partition):
            raise ValueError("a network fault needs exactly one of loss (e.g. 30%) or partition: true")
        return self


_SIGNED = re.compile(r"^\s*([+-])\s*(.+)$")


def _signed_duration(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _SIGNED.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not an offset; expected e.g. +1h or -90s")
    seconds = parse_duration(match.group(2))
    return -seconds if match.group(1) == "-" else seconds


class ClockFault(StrictModel):
    """Skew the clock of a service started with `clock: faketime`."""

    clock: str = Field(description="a service of the plan with clock: faketime")
    skew: Annotated[float, BeforeValidator(_signed_duration)] = Field(description="e.g. +1h, -90s")


FAULT_KINDS = (
    "kill",
    "pause",
    "restart",
    "proxy",
    "http",
    "stress",
    "disk_fill",
    "disk_full",
    "network",
    "clock",
    "sqlite_lock",
    "sqlite_gone",
    "postgres_terminate",
    "postgres_restart",
)

Fault = Annotated[
    Annotated[KillFault, Tag("kill")]
    | Annotated[PauseFault, Tag("pause")]
    | Annotated[RestartFault, Tag("restart")]
    | Annotated[ProxyFault, Tag("proxy")]
    | Annotated[HttpFault, Tag("http")]
    | Annotated[StressFault, Tag("stress")]
    | Annotated[DiskFillFault, Tag("disk_fill")]
    | Annotated[DiskFullFault, Tag("disk_full")]
    | Annotated[NetworkFault, Tag("network")]
    | Annotated[ClockFault, Tag("clock")]
    | Annotated[SqliteLockFault, Tag("sqlite_lock")]
    | Annotated[SqliteGoneFault, Tag("sqlite_gone")]
    | Annotated[PostgresTerminateFault, Tag("postgres_terminate")]
    | Annotated[PostgresRestartFault, Tag("postgres_restart")],
    Discriminator(
        _tag_by_key(
            {
                "kill": KillFault,
                "pause": PauseFault,
                "restart": RestartFault,
                "proxy": ProxyFault,
                "http": HttpFault,
                "stress": StressFault,
                "disk_fill": DiskFillFault,
                "disk_full": DiskFullFault,
                "network": NetworkFault,
                "clock": ClockFault,
                "sqlite_lock": SqliteLockFault,
                "sqlite_gone": SqliteGoneFault,
                "postgres_terminate": PostgresTerminateFault,
                "postgres_restart": PostgresRestartFault,
            }
        ),
        custom_error_type="fault_kind",
        custom_error_message=f"a fault needs exactly one of {', '.join(FAULT_KINDS)}",
    ),
]


# ---------------------------------------------------------------------------------------
# Load, integrity, timing


class BackgroundLoad(StrictModel):
    """Open-model traffic from the load engine for the whole experiment, so the fault hits users."""

    rate: Rate
    requests: list[LoadRequest] = Field(min_length=1)
    setup: Journey | None = Field(default=None, description="run once first; its variables feed requests")
    max_connections: int = Field(default=256, ge=1, le=100_000)
    request_timeout: Duration = Field(default=5.0, gt=0)


class Integrity(StrictModel):
    """Writes during the whole experiment whose acknowledgements are read back after recovery.

    `write` must extract what identifies the write (e.g. `id`); `read` fetches it back and its
    body is compared with what `write` sent (byte for byte for one body or file; field by
    field for JSON, at `written_json_at`: see `readback`); `settled` (optional, with `poll`)
    waits for the write's processing to finish, and `applied_count` names a variable it
    extracts that says how many times the processing ran (more than once: duplicated).
    """

    rate: Rate = 5.0
    concurrency: int = Field(default=4, ge=1, le=256)
    write: Step
    read: Step
    settled: Step | None = None
    applied_count: VariableName | None = None
    written_json_at: JsonPathKey = Field(
        default=JsonPath("$", ()), description="where the read's JSON body holds what a json write sent"
    )
    read_timeout: Duration = Field(default=60.0, gt=0, description="to read back every write after recovery")


def setup_variables(load: BackgroundLoad | None) -> list[str]:
    """The variables the setup journey leaves for requests and writes (e.g. a token)."""
    if load is None or load.setup is None:
        return []
    names: list[str] = list(load.setup.variables)
    for step in load.setup.steps:
        names.extend(step.extract)
    return names


def integrity_journeys(integrity: Integrity, load: BackgroundLoad | None) -> JourneysSettings:
    """One journey `integrity`: write, read (compared with what write sent), settled.

    Validating it here gives the plan's author the journeys' own messages (an unknown
    `{variable}`, a step name used twice) at load time. Only `write` runs while the fault is
    on; the others run after recovery on the same iteration state.
    """
    read = integrity.read.model_dump(by_alias=True, exclude_unset=True)
    write_sources = integrity.write.request.sources()
    if len(write_sources) == 1 and "body_sha256_of" not in read.get("expect", {}):
        read.setdefault("expect", {})["body_sha256_of"] = integrity.write.name
    if integrity.write.request.has_json:
        expected = read.setdefault("expect", {}).setdefault("json", {})
        at = integrity.written_json_at
        expected.update(written_json_expectations(integrity.write.request.json_body, at, expected))
    elif integrity.written_json_at.parts:
        raise ValueError("integrity.written_json_at is for a write that sends json; this one sends none")
    steps = [integrity.write.model_dump(by_alias=True, exclude_unset=True), read]
    if integrity.settled is not None:
        steps.append(integrity.settled.model_dump(by_alias=True, exclude_unset=True))
        if integrity.applied_count is not None and integrity.applied_count not in integrity.settled.extract:
            raise ValueError(
                f"integrity.applied_count names {integrity.applied_count!r}, which integrity.settled "
                f"does not extract (it extracts: {', '.join(integrity.settled.extract) or 'nothing'})"
            )
    elif integrity.applied_count is not None:
        raise ValueError("integrity.applied_count needs a settled step that extracts it")
    variables = dict.fromkeys(setup_variables(load), "")  # filled from the setup at run time
    journey = {"variables": variables, "steps": steps}
    try:
        return JourneysSettings.model_validate({"journeys": {"integrity": journey}})
    except ValidationError as error:
        problems = "; ".join(e["msg"].removeprefix("Value error, ") for e in error.errors())
        raise ValueError(f"integrity: {problems}") from None
