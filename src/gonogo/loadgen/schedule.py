"""The open model's arrival schedule, computed exactly as the C engine (`_engine.c`) computes it.

A schedule is a list of *stages* `(seconds, rate at start, rate at end)`: the warm-up first
(a constant stage at the initial rate), then a constant `rate`, or linear ramps, each from
the previous stage's rate (the first from `rate`, 0 when there is none). The arrivals are
spaced by one unit of *operational time* (the cumulative arrival count N(t) = ∫ rate), or,
with Poisson arrivals, by exponential gaps drawn from xoshiro256** seeded through splitmix64,
the C engine's generator. Arrival k is at the time t where N(t) = offset + k (+ the gaps),
solved per stage in the same floating-point operations as the C engine, so that one plan
gives, to the nanosecond, the same intended send times on the C engine and on the Python
driver (tests/checks/load/test_schedule.py runs both against a real server).

Splitting over `workers` processes: each worker takes the stages at `rate / workers`, the
seed `seed + i` and the offset `i / workers` (its deterministic arrivals interleave with the
others' instead of coinciding), and `share(total, workers, i)` of every integer bound.

The closed model has no schedule: a user's next send is due `think_time` after its previous
response.

Everything here is pure Python without the C extension; `gonogo validate` may import it.
"""

from __future__ import annotations

__all__ = ["Schedule", "Stage", "Xoshiro256", "open_stages", "share"]

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

Stage = tuple[float, float, float]  # (seconds, rate at start, rate at end); seconds may be inf

_MASK = 0xFFFFFFFFFFFFFFFF


def open_stages(
    rate: float | None, ramps: Sequence[tuple[float, float]], duration: float | None, warmup: float
) -> list[Stage]:
    """The stages of an open-model load: the warm-up at the initial rate, then `rate` for
    `duration` (None: unbounded), or the `ramps` (seconds, target rate) cut at `duration`."""
    stages: list[Stage] = []
    initial = rate if rate is not None else ramps[0][1] if ramps else 0.0
    if warmup > 0:
        stages.append((warmup, initial, initial))
    remaining = duration if duration is not None else math.inf
    if not ramps:
        assert rate is not None, "an open model needs a rate or ramps"
        stages.append((remaining, rate, rate))
        return stages
    previous = rate or 0.0
    for seconds, target in ramps:
        if remaining <= 0:
            break
        if seconds > remaining:  # a duration shorter than the ramps cuts the last one
            target = previous + (target - previous) * remaining / seconds
            seconds = remaining
        stages.append((seconds, previous, target))
        previous = target
        remaining -= seconds
    return stages


def share(total: int, parts: int, index: int) -> int:
    """Part `index` of `total` split over `parts` as evenly as integers allow."""
    return total // parts + (1 if index < total % parts else 0)


class Xoshiro256:
    """xoshiro256** seeded by splitmix64: the C engine's random number generator."""

    def __init__(self, seed: int) -> None:
        x = seed & _MASK
        state = []
        for _ in range(4):
            x = (x + 0x9E3779B97F4A7C15) & _MASK
            z = x
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
            state.append(z ^ (z >> 31))
        self.s = state

    def next(self) -> int:
        s = self.s
        result = (_rotl((s[1] * 5) & _MASK, 7) * 9) & _MASK
        t = (s[1] << 17) & _MASK
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = _rotl(s[3], 45)
        return result

    def unit(self) -> float:
        """Uniform in [0, 1), 53 bits."""
        return (self.next() >> 11) * 2.0**-53

    def exponential(self) -> float:
        """An exponential gap of mean 1."""
        return -math.log1p(-self.unit())


def _rotl(x: int, k: int) -> int:
    return ((x << k) | (x >> (64 - k))) & _MASK


def _count(stage: Stage) -> float:
    """Arrivals in a stage (its integral of rate), as the C engine's `stage_count`."""
    seconds, r0, r1 = stage
    return math.inf if math.isinf(seconds) else seconds * (r0 + r1) / 2.0


@dataclass(frozen=True)
class Schedule:
    """The arrivals of one engine (one worker): what `_engine.Engine` takes as `stages`,
    `poisson`, `seed`, `arrival_offset`, `warmup` and `max_requests`."""

    stages: tuple[Stage, ...]
    poisson: bool = False
    seed: int = 0
    offset: float = 0.0  # in [0, 1): where in the first unit of operational time arrivals start
    warmup: float = 0.0  # seconds; arrivals intended before its end are warm-up arrivals
    max_measured: int | None = None  # arrivals of the measured phase

    def split(self, workers: int) -> list[Schedule]:
        """Each worker's schedule when `workers` processes share this one."""
        return [
            replace(
                self,
                stages=tuple((d, r0 / workers, r1 / workers) for d, r0, r1 in self.stages),
                seed=(self.seed + i) & _MASK,
                offset=i / workers,
                max_measured=share(self.max_measured, workers, i) if self.max_measured is not None else None,
            )
            for i in range(workers)
        ]

    def engine_form(self) -> dict[str, Any]:
        """The keyword arguments of `_engine.Engine` that make its arrivals these."""
        form: dict[str, Any] = {
            "stages": list(self.stages),
            "poisson": self.poisson,
            "seed": self.seed,
            "arrival_offset": self.offset,
            "warmup": self.warmup,
        }
        if self.max_measured is not None:
            form["max_requests"] = self.max_measured
        return form

    def arrivals(self) -> Iterator[tuple[int, bool]]:
        """(intended time in ns from the start, in the warm-up) of every arrival, in order."""
        rng = Xoshiro256(self.seed)
        starts = []  # (∫ rate before the stage, its start in seconds): float sums in the C order
        cumulative = start = 0.0
        for stage in self.stages:
            starts.append((cumulative, start))
            cumulative += _count(stage)
            start += stage[0]
        end_ns = math.inf if math.isinf(start) else int(start * 1e9)
        warmup_ns = int(self.warmup * 1e9)
        index = measured = 0
        n = self.offset + (rng.exponential() if self.poisson else 0.0)
        while True:
            while index < len(self.stages) and not n < starts[index][0] + _count(self.stages[index]):
                index += 1
            if index >= len(self.stages):
                return
            at = _solve(n - starts[index][0], self.stages[index], starts[index][1])
            if at >= end_ns:
                return
            warm = at < warmup_ns
            if not warm:
                if self.max_measured is not None and measured >= self.max_measured:
                    return
                measured += 1
            yield at, warm
            n += rng.exponential() if self.poisson else 1.0


def _solve(m: float, stage: Stage, start: float) -> int:
    """The time (ns from the run's start) at which the stage starting at `start` seconds has
    had `m` arrivals: the root of N(t) = r0 t + (r1 - r0) t² / (2 d) = m."""
    seconds, r0, r1 = stage
    if m <= 0:
        t = 0.0
    elif r0 == r1 or math.isinf(seconds):
        t = m / r0
    else:
        a = (r1 - r0) / (2.0 * seconds)
        t = 2.0 * m / (r0 + math.sqrt(max(r0 * r0 + 4.0 * a * m, 0.0)))  # the stable form of the root
        t = min(t, seconds)
    return int((start + t) * 1e9)
