"""Journey programs for the C engine: journeys under load at the engine's speed.

A `Program` is what `_engine.Engine(..., program=...)` runs instead of static requests:
per virtual user, the steps of a journey in order, each request built per send from a
template and the user's variables, values extracted from responses into variables. The
journey compiler (`journey_compile`) builds one from the plan's journeys; `run_program`
runs it on one engine (one worker) and returns its raw results.

Variables are *slots* (0 .. slots-1), each unset or holding bytes. A user starts from
`initial`; four slots may be builtins: `uuid_slot` (a fresh random v4 UUID at every
iteration start, before each setup attempt and before the teardown), `user_uuid_slot` (a
random v4 UUID per virtual user: drawn before each of its setup attempts, or at its first
iteration without a setup, and kept by all its iterations and its teardown: what the
setup's `{uuid}` compiles to, so a variable built from it, an e-mail to sign up with, is
the same in the iterations), `iteration_slot` (this journey's iterations started by this
engine, from 1; "0" during setup; with `iteration_stride` n and `iteration_offset` i, the
k-th is (k-1)*n + i + 1: run_load's worker i of n, so that workers' never coincide),
`user_slot` (the virtual user's index, from `user_offset`). Every iteration starts from the user's *base*:
`initial`, the builtins, and whatever its `setup` extracted (variables and cookies); what
an iteration extracts lasts until its end. Teardown starts from the base too.

A `Step`'s request is its `head` parts (request line and headers, each line ending in
CRLF, without Content-Length and without the final empty line), then, when `cookies` is
set and the user has any, one `Cookie` header, then `Content-Length` when there is a
`body`, then the empty line and the body. A part is literal bytes or `(slot, Encoding)`.
A variable that is not set, or (RAW, in the head) holds a line break, fails the step as an
`assertion` without sending it ("variable doc_id is not set").

A *derived* slot (`derived`: `(slot, parts)`, parts as a template's, naming no derived slot)
is made again from its parts before each send of a step that uses it, so it always holds
what its variables hold then: `Authorization: Basic ` + `(derived, BASE64)` whose parts are
`(user, RAW), b":", (password, RAW)` sends the credentials of this user's variables. One of
its variables not set fails the step as any unset variable does, naming that variable.

After a response that met the step's `expect` (`None`: any status below 400), each
`Extract` stores a value: `json` (a path of keys and indexes: a string unescaped, other
values as written, objects and arrays as raw JSON text), `json_value` (the same value's
JSON text as written, a string with its quotes: spliced RAW into a JSON body, it sends the
value with its JSON type), `header` (the first one of that
name, trimmed), `regex` (POSIX ERE on the body: group 1 if the pattern has one, else the
whole match), `status`. Nothing found fails the step as an `assertion` ("extract token:
$.access_token not found"), kept as evidence with the `what` "extract". A `poll` step is
sent again every interval until its expect holds, for at most its timeout: one request in
the counts, its latency from the first send. `think` waits after the step before the next.
A step's `timeout` overrides the engine's. With `cookies`, Set-Cookie of the step's
responses goes into the user's jar (name=value; Max-Age <= 0 deletes) and the jar is sent.

Timing, as `journey_load` documents it: an iteration's first step is recorded corrected
from the iteration's intended start (open: its arrival; closed: the previous iteration's
end + think_time; after a user's setup: the setup's end), later steps from their own send.
Per journey: iterations started, completed, passed, failed (by position of the failing
step, and `failed_setup` in the open model: the arrival whose user's setup failed), and
the corrected and uncorrected duration histograms of passed iterations, all of the
measured phase (`warmup`: the warm-up's counts). Setup and teardown steps count in their
steps' warm-up counters, never in a histogram. A failed setup is tried again: closed, by
the same user after max(think_time, 10 ms); open, by the next arrival that takes the user.
Teardown runs once per user that was set up, at the end, bounded by `timeout`, and not
after `stop()`.

Counting, per step as the engine counts endpoints (`raw["endpoints"][i]`): a step not sent
(a variable not set) is a request with an `assertion` error and no response; its kept
failure has status 0, `what` "variable" and the message as detail. A failed extraction is
kept with `what` "extract" and the message as detail (status and body excerpt of the
response). Failures of setup and teardown steps are kept too (they are few: once per
user). A poll counts one request, one response (the last), its intermediate responses are
never kept. `raw["journeys"][j]`: started, completed, passed, failed, failed_setup,
failed_by_step, hcorr / hunc (first index, counts bytes: the endpoints' histogram form) and
warmup (the same counts for the warm-up). Beyond the format the compiler targets, the
engine takes optional program keys: `names` (slot names, for messages), `user_offset`,
`iteration_offset` and `iteration_stride`.
"""

from __future__ import annotations

__all__ = [
    "Encoding",
    "Extract",
    "JourneyResult",
    "Program",
    "ProgramResult",
    "Step",
    "program_result",
    "run_program",
]

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Literal

from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

from gonogo.loadgen import histogram as hist
from gonogo.loadgen import native  # the extension on first use: validation imports this module
from gonogo.loadgen.expect import ResponseExpect


class Encoding(IntEnum):
    RAW = 0
    PERCENT = 1  # RFC 3986: unreserved characters kept, every other byte %XX
    JSON = 2  # the content of a JSON string: " \ and control characters escaped
    BASE64 = 3  # RFC 4648 with padding: Basic credentials, a derived `user:password`


Part = bytes | tuple[int, Encoding]


@dataclass(frozen=True)
class Extract:
    slot: int
    kind: Literal["json", "json_value", "header", "regex", "status"]
    path: tuple[str | int, ...] = ()  # json, json_value
    text: str = ""  # header: its name; regex: the pattern

    def engine_form(self) -> tuple[object, ...]:
        if self.kind in ("json", "json_value"):
            return (self.slot, self.kind, self.path)
        if self.kind == "status":
            return (self.slot, "status")
        return (self.slot, self.kind, self.text.lower() if self.kind == "header" else self.text)


@dataclass(frozen=True)
class Step:
    head: tuple[Part, ...]
    body: tuple[Part, ...] | None = None
    extract: tuple[Extract, ...] = ()
    expect: ResponseExpect | None = None
    poll: tuple[float, float] | None = None  # (interval, timeout) in seconds
    think: float = 0.0
    timeout: float | None = None
    cookies: bool = False

    def engine_form(self) -> dict[str, object]:
        return {
            "head": [_part(p) for p in self.head],
            "body": None if self.body is None else [_part(p) for p in self.body],
            "extract": [e.engine_form() for e in self.extract],
            "poll": self.poll,
            "think": self.think,
            "timeout": self.timeout,
            "cookies": self.cookies,
        }


@dataclass(frozen=True)
class Program:
    slots: int
    steps: tuple[Step, ...]
    journeys: tuple[tuple[int, tuple[int, ...]], ...]  # (weight, step indexes)
    setup: tuple[int, ...] = ()
    teardown: tuple[int, ...] = ()
    initial: tuple[tuple[int, bytes], ...] = ()
    uuid_slot: int = -1
    iteration_slot: int = -1
    user_slot: int = -1
    user_uuid_slot: int = -1
    user_offset: int = 0  # the first user's index (workers: distinct users)
    iteration_offset: int = 0  # workers: worker i of n numbers its iterations i+1, i+1+n, ...
    iteration_stride: int = 1
    setup_attempts: int = 5  # closed model: a user's setup attempts before it gives up
    names: tuple[str, ...] | None = None  # slot names, for messages
    derived: tuple[tuple[int, tuple[Part, ...]], ...] = ()  # (slot, its parts): see the module doc

    def engine_form(self) -> dict[str, object]:
        return {
            "slots": self.slots,
            "uuid_slot": self.uuid_slot,
            "iteration_slot": self.iteration_slot,
            "user_slot": self.user_slot,
            "user_uuid_slot": self.user_uuid_slot,
            "user_offset": self.user_offset,
            "iteration_offset": self.iteration_offset,
            "iteration_stride": self.iteration_stride,
            "setup_attempts": self.setup_attempts,
            "names": list(self.names) if self.names is not None else None,
            "initial": list(self.initial),
            "steps": [s.engine_form() for s in self.steps],
            "journeys": [(w, list(steps)) for w, steps in self.journeys],
            "setup": list(self.setup),
            "teardown": list(self.teardown),
            "derived": [(slot, [_part(p) for p in parts]) for slot, parts in self.derived],
        }

    def expects(self) -> list[tuple[object, ...] | None]:
        return [s.expect.engine_form() if s.expect is not None else None for s in self.steps]


def _part(part: Part) -> bytes | tuple[int, int]:
    return part if isinstance(part, bytes) else (part[0], int(part[1]))


@dataclass
class JourneyResult:
    started: int
    completed: int
    passed: int
    failed: int
    failed_setup: int
    failed_by_step: list[int]  # by position in the journey's steps
    duration: HdrHistogram  # µs, passed iterations, from the intended start
    duration_uncorrected: HdrHistogram  # µs, from the first step's send
    warmup: dict[str, int]


@dataclass
class ProgramResult:
    """`raw` is `Engine.results()` as is: `raw["endpoints"][i]` is step i's counters,
    statuses, histograms and kept failures, in the engine's form (see engine.py)."""

    raw: dict[str, Any]
    journeys: list[JourneyResult] = field(default_factory=list)


def run_program(
    program: Program,
    host: str,
    port: int,
    *,
    closed: bool,
    users: int = 1,
    stages: Sequence[tuple[float, float, float]] | None = None,
    duration: float = 0.0,
    max_iterations: int = 0,
    think_time: float = 0.0,
    warmup: float = 0.0,
    max_connections: int = 64,
    timeout: float = 10.0,
    poisson: bool = False,
    seed: int = 0,
    late_threshold: float = 0.01,
    sequence_offset: int = 0,
    arrival_offset: float = 0.0,
    stop: threading.Event | None = None,
    progress: Callable[[dict[str, Any]], object] | None = None,
) -> ProgramResult:
    """Run `program` on one engine in the calling thread (GIL released) and return what
    it measured. The open model (`closed=False`) needs `stages` [(seconds, r0, r1)]:
    arrivals are iterations, virtual users are `max_connections`."""
    kwargs: dict[str, Any] = {
        "closed": closed,
        "users": users,
        "think_time": think_time,
        "duration": duration,
        "max_requests": max_iterations,
        "warmup": warmup,
        "max_connections": max_connections,
        "timeout": timeout,
        "poisson": poisson,
        "seed": seed,
        "late_threshold": late_threshold,
        "sequence_offset": sequence_offset,
        "arrival_offset": arrival_offset,
        "expects": program.expects(),
        "program": program.engine_form(),
    }
    if stages is not None:
        kwargs["stages"] = list(stages)
    engine = native.engine.Engine(host, port, [], [], **kwargs)
    engine.run(progress=progress, should_stop=stop.is_set if stop is not None else None)
    return program_result(engine.results())


def program_result(raw: dict[str, Any]) -> ProgramResult:
    """The typed per-journey part of an engine's results (a worker's, in any process)."""
    journeys = [
        JourneyResult(
            started=j["started"],
            completed=j["completed"],
            passed=j["passed"],
            failed=j["failed"],
            failed_setup=j["failed_setup"],
            failed_by_step=list(j["failed_by_step"]),
            duration=hist.from_counts(*j["hcorr"]),
            duration_uncorrected=hist.from_counts(*j["hunc"]),
            warmup=dict(j["warmup"]),
        )
        for j in raw.get("journeys", [])
    ]
    return ProgramResult(raw=raw, journeys=journeys)
