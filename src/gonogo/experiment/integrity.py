"""Acknowledged writes, recorded during the experiment and read back after recovery.

A write is *acknowledged* when its step passed (the service said it was stored) and it
yielded its identifier. Each write is one iteration of the `integrity` journey, with its
own `{iteration}` (1, 2, … in order of sending) and `{uuid}`. After recovery each one is
read back by the read step, whose `expect` holds the comparison with what was written
(`integrity_journeys` in settings.py adds it: the bytes of one body or file, the fields of
a JSON body, see `readback`): *intact* (the read passed), *corrupted* (answered 2xx, but
not what was written), *lost* (not found, or still unreadable when the read-back time is
up). With a `settled` step, a write whose processing never finished is *stuck*, and one
processed more than once (`applied_count` > 1) is *duplicated*.

`burst()` sends a group of writes all at once once the steady writes are stopped (the chaos
check's kill moments); `verify()` reads them back with the others, and also counts each
group on its own (`IntegrityReport.groups`).
"""

from __future__ import annotations

__all__ = ["Burst", "IntegrityReport", "IntegrityWriter"]

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from gonogo.experiment.settings import Integrity
from gonogo.journey.engine import Engine, Failure, IterationState
from gonogo.journey.settings import JourneysSettings
from gonogo.journey.variables import BUILTINS

_NOT_FOUND = (404, 410)


@dataclass
class _Write:
    state: IterationState
    acknowledged_at: float
    group: str | None = None  # the burst it belongs to; None for the steady writes


@dataclass(frozen=True)
class Burst:
    """What one burst did: every write sent at once, every answer awaited."""

    group: str
    sent: int
    acknowledged: int
    last_acknowledged_at: float | None  # time.monotonic() of the last acknowledgement


@dataclass
class IntegrityReport:
    attempted: int = 0
    acknowledged: int = 0
    intact: int = 0
    lost: int = 0
    corrupted: int = 0
    stuck: int = 0
    duplicated: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)  # one per write that is not intact
    groups: dict[str, IntegrityReport] = field(default_factory=dict)  # each burst's writes on their own

    def summary(self) -> str:
        return (
            f"{self.acknowledged} of {self.attempted} writes acknowledged: {self.intact} intact, "
            f"{self.lost} lost, {self.corrupted} corrupted, {self.duplicated} duplicated, {self.stuck} stuck"
        )


class IntegrityWriter:
    """Writes at `integrity.rate` on a thread of its own until `stop()`; then `verify()`."""

    def __init__(
        self,
        integrity: Integrity,
        journeys: JourneysSettings,
        base_url: str,
        *,
        files: Mapping[str, Path],
        expand: Callable[[str], str],
        variables: Mapping[str, Any],
    ) -> None:
        self._integrity = integrity
        self._steps = journeys.journeys["integrity"].steps
        self._engine = Engine(journeys, base_url, files=files, expand=expand, progress=lambda _: None)
        # the setup's own {uuid}, {iteration} and {journey} would make every write the same
        self._variables = {name: value for name, value in variables.items() if name not in BUILTINS}
        self._writes: list[_Write] = []
        self._attempted = 0
        self._sent_in: dict[str, int] = {}  # writes sent per burst group
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._write_loop()), name="gonogo-integrity", daemon=True
        )
        self.error: BaseException | None = None

    @property
    def acknowledged(self) -> int:
        return len(self._writes)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self._integrity.write.request_timeout or 60)

    def _new_state(self, number: int) -> IterationState:
        state = self._engine.start_iteration("integrity", number)
        state.variables.update(self._variables)
        return state

    async def _write_loop(self) -> None:
        interval = 1.0 / self._integrity.rate
        in_flight: set[asyncio.Task[None]] = set()
        limit = asyncio.Semaphore(self._integrity.concurrency)
        try:
            async with self._engine.client(self._integrity.concurrency) as client:
                next_at = time.monotonic()
                while not self._stop.is_set():
                    await limit.acquire()
                    self._attempted += 1
                    task = asyncio.create_task(self._write(client, self._new_state(self._attempted), limit))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                    next_at += interval
                    await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                if in_flight:
                    await asyncio.wait(in_flight)
        except Exception as error:  # reported with the figures; the experiment still rolls back
            self.error = error

    async def _write(
        self,
        client: httpx.AsyncClient,
        state: IterationState,
        limit: asyncio.Semaphore,
        group: str | None = None,
    ) -> None:
        try:
            _, failure = await self._engine.run_step(client, state, self._steps[0])
            if failure is None:
                self._writes.append(_Write(state, time.monotonic(), group))
        finally:
            limit.release()

    def burst(self, count: int, group: str) -> Burst:
        """Send `count` writes at once and wait for every answer, on the calling thread. The
        steady writes must be stopped (`stop()`), so nothing else of this writer is in flight.
        The acknowledged ones are read back by `verify()` with the rest, and counted under
        `group` too."""
        if self._thread.is_alive():
            raise RuntimeError("a burst of writes needs the steady writes stopped first")
        before = len(self._writes)

        async def send_all() -> None:
            limit = asyncio.Semaphore(count)
            async with self._engine.client(count) as client:
                writes = []
                for _ in range(count):
                    await limit.acquire()
                    self._attempted += 1
                    writes.append(self._write(client, self._new_state(self._attempted), limit, group))
                await asyncio.gather(*writes)

        self._sent_in[group] = self._sent_in.get(group, 0) + count
        asyncio.run(send_all())
        acknowledged = self._writes[before:]
        last = max((write.acknowledged_at for write in acknowledged), default=None)
        return Burst(group, count, len(acknowledged), last)

    def verify(self) -> IntegrityReport:
        """Read every acknowledged write back (and wait for it to settle); classify it."""
        report = IntegrityReport(attempted=self._attempted, acknowledged=len(self._writes))
        for group, sent in self._sent_in.items():
            acknowledged = sum(1 for write in self._writes if write.group == group)
            report.groups[group] = IntegrityReport(attempted=sent, acknowledged=acknowledged)
        report_lock = asyncio.Lock()

        async def check_all() -> None:
            deadline = time.monotonic() + self._integrity.read_timeout
            limit = asyncio.Semaphore(self._integrity.concurrency)
            async with self._engine.client(self._integrity.concurrency) as client:

                async def check(write: _Write) -> None:
                    async with limit:
                        verdict, detail = await self._check(client, write, deadline)
                    async with report_lock:
                        problem = {"verdict": verdict, **detail}
                        tallies = [report]
                        if write.group is not None:
                            problem["group"] = write.group
                            tallies.append(report.groups[write.group])
                        for tally in tallies:
                            setattr(tally, verdict, getattr(tally, verdict) + 1)
                            if verdict != "intact":
                                tally.problems.append(problem)

                await asyncio.gather(*(check(write) for write in self._writes))

        asyncio.run(check_all())
        return report

    async def _check(
        self, client: httpx.AsyncClient, write: _Write, deadline: float
    ) -> tuple[str, dict[str, Any]]:
        read = self._steps[1]
        identity = {k: v for k, v in write.state.variables.items() if k in self._steps[0].extract}
        failure: Failure | None = None
        while True:
            _, failure = await self._engine.run_step(client, write.state, read)
            if failure is None:
                break
            if failure.status in _NOT_FOUND:
                return "lost", {"write": identity, "why": failure.summary()}
            if failure.status is not None and 200 <= failure.status < 300:
                return "corrupted", {"write": identity, "why": failure.summary()}
            if time.monotonic() >= deadline:  # unreadable until the end: as good as lost to its user
                return "lost", {"write": identity, "why": f"still unreadable: {failure.summary()}"}
            await asyncio.sleep(0.5)
        if len(self._steps) < 3:
            return "intact", {}
        settled = self._steps[2]
        _, failure = await self._engine.run_step(client, write.state, settled)
        if failure is not None:
            return "stuck", {"write": identity, "why": failure.summary()}
        count_name = self._integrity.applied_count
        if count_name is not None:
            count = write.state.variables.get(count_name)
            if isinstance(count, int | float) and count > 1:
                return "duplicated", {"write": identity, "why": f"{count_name} = {count}"}
        return "intact", {}
