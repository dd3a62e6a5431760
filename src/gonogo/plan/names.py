"""What a plan names, and what check kinds say about names, so that `gonogo validate` can
refuse before the run a gate or a reference that could only end *not measured* or fail.

A check kind's settings are validated on their own; whether `kill: web` names a service, or
whether a gate's metric is one the check can record, depends on the rest of the plan. A kind
says which metric names it can record (`CheckKind.metric_names`, patterns in which `*` stands
for what is only known at run time) and which plan names its settings use
(`CheckKind.references`); the plan loader, which knows where everything is written, checks
them against the `PlanNames` it builds and points at the line.
"""

from __future__ import annotations

__all__ = [
    "HISTORY_FIGURES",
    "HISTORY_PREFIX",
    "LIMIT_FIGURES",
    "SERVICE_PREFIX",
    "TREND_FIGURES",
    "Location",
    "MetricPatterns",
    "PlanNames",
    "Reference",
    "matches",
    "overlaps",
    "service_metric_patterns",
]

import functools
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Literal

Location = tuple[str | int, ...]
# Metric names relative to the check (`latency.p95`); `*` stands for any text, and only where
# the name cannot be known before the run (an endpoint named in a k6 results file).
MetricPatterns = Collection[str]


@dataclass(frozen=True)
class PlanNames:
    """The names a plan defines, for a kind whose metric names depend on them."""

    services: frozenset[str] = frozenset()
    with_metrics: frozenset[str] = frozenset()  # services that name a Prometheus `metrics:` URL
    proxies: frozenset[str] = frozenset()
    checks: Mapping[str, str] = field(default_factory=dict)  # check name → its kind


@dataclass(frozen=True)
class Reference:
    """A name a check's settings use that the rest of the plan must define.

    `location` is where it is written inside the check's section (`("faults", 0, "kill")`);
    `needs` are settings the named service or proxy must have for `purpose`
    (`{"protocol": "http"}` for "an http fault").
    """

    kind: Literal["service", "proxy", "check"]
    name: str
    location: Location
    needs: Mapping[str, str] = field(default_factory=dict)  # `a|b`: either value will do; `*`: set
    purpose: str = ""
    advice: str = ""  # what to do when a need is not met


# Metrics a run records from its plan's history (`history.flaky_tests`): no check may be named so.
HISTORY_PREFIX = "history"
HISTORY_FIGURES = ("flaky_tests", "tests_compared_runs")

# Metrics every run records of every service (`service.api.exits.unplanned`): no check may be named so.
SERVICE_PREFIX = "service"
_RESOURCES = ("rss", "fds", "threads", "cpu")
# Figures of every trend (slopes are per hour, in the series' own unit: bytes per hour for RSS),
# and those recorded only when the series has a limit (`time_to_limit` only when it is reached).
TREND_FIGURES = ("start", "end", "growth", "slope_per_hour", "slope_low", "slope_high", "projected", "leak")
LIMIT_FIGURES = ("limit", "within_limit", "time_to_limit")
_SERVICE_FIGURES = (
    "exits.unplanned",
    "exits.planned",
    "restarts",
    "log.errors",
    "log.tracebacks",
    "shutdown.seconds",
    "shutdown.clean",
    "shutdown.exit_code",
    "shutdown.in_flight",
    "shutdown.in_flight_lost",
)


def service_metric_patterns(services: Collection[str], with_metrics: Collection[str] = ()) -> list[str]:
    """The run-level metrics of `services` (names after `service.`); `with_metrics`: the services
    that name a Prometheus endpoint, whose gauges are trended too (`api.metrics.<gauge>.leak`)."""
    patterns: list[str] = []
    for service in sorted(services):
        patterns += [f"{service}.{figure}" for figure in _SERVICE_FIGURES]
        patterns += [
            f"{service}.{resource}.{figure}"
            for resource in _RESOURCES
            for figure in (*TREND_FIGURES, *LIMIT_FIGURES)
        ]
        if service in with_metrics:
            patterns += [f"{service}.metrics.*.{figure}" for figure in (*TREND_FIGURES, *LIMIT_FIGURES)]
            patterns.append(f"{service}.metrics.scrape_errors")
    return patterns


def matches(name: str, patterns: MetricPatterns) -> bool:
    """Whether the metric `name` is one that `patterns` declare."""
    return any(name == pattern or ("*" in pattern and fnmatchcase(name, pattern)) for pattern in patterns)


def overlaps(glob: str, pattern: str) -> bool:
    """Whether some name matches both a gate's glob (`*`, `?`, `[...]`) and a declared pattern
    (`*` only): can a gate `e2e.*.success_rate` ever read a metric `e2e.<j>.success_rate`?"""
    left, right = _tokens(glob, glob=True), _tokens(pattern, glob=False)

    @functools.cache
    def meet(i: int, j: int) -> bool:
        if i == len(left) and j == len(right):
            return True
        if i < len(left) and left[i] is _STAR:
            return meet(i + 1, j) or (j < len(right) and meet(i, j + 1))
        if j < len(right) and right[j] is _STAR:
            return meet(i, j + 1) or (i < len(left) and meet(i + 1, j))
        if i == len(left) or j == len(right):
            return False
        return bool(left[i] & right[j]) and meet(i + 1, j + 1)

    return meet(0, 0)


_STAR = frozenset({"*"})  # compared by identity: any text
_PRINTABLE = [chr(code) for code in range(32, 127)]


def _tokens(text: str, *, glob: bool) -> list[frozenset[str]]:
    """One token per character of a name: the characters it may be, or `_STAR`."""
    tokens: list[frozenset[str]] = []
    index = 0
    while index < len(text):
        char = text[index]
        end = text.find("]", index + 2) if glob and char == "[" else -1
        if char == "*":
            tokens.append(_STAR)
        elif glob and char == "?":
            tokens.append(frozenset(_PRINTABLE))
        elif end != -1:
            members = frozenset(c for c in _PRINTABLE if fnmatchcase(c, text[index : end + 1]))
            tokens.append(members)
            index = end
        else:
            tokens.append(frozenset({char}))
        index += 1
    return tokens
