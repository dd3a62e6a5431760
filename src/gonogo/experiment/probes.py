"""The steady-state hypothesis, checked in rounds: every probe once per round."""

from __future__ import annotations

__all__ = ["HypothesisChecker", "LoadWindow", "ProbeResult", "Round"]

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from gonogo.experiment.settings import CommandProbe, HttpProbe, Hypothesis, MetricProbe, Probe
from gonogo.journey.assertions import status_problem
from gonogo.journey.matchers import show
from gonogo.journey.variables import render_value
from gonogo.units import format_value

# The background load's figures over the last seconds: (error_rate, availability, rps), or None.
LoadWindow = Callable[[float], dict[str, float] | None]


@dataclass(frozen=True)
class ProbeResult:
    name: str
    ok: bool
    detail: str  # why it failed, or what it saw


@dataclass(frozen=True)
class Round:
    at: float  # time.monotonic() when the round started
    results: list[ProbeResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.results)

    def failures(self) -> str:
        return "; ".join(f"{r.name}: {r.detail}" for r in self.results if not r.ok)


class HypothesisChecker:
    def __init__(
        self,
        hypothesis: Hypothesis,
        *,
        base_url: str | None,
        cwd: Path,
        expand: Callable[[str], str],
        variables: dict[str, Any],
        load_window: LoadWindow,
    ) -> None:
        self._hypothesis = hypothesis
        self._base_url = base_url.rstrip("/") if base_url else None
        self._cwd = cwd
        self._expand = expand
        self._variables = variables
        self._load_window = load_window
        # A fresh connection per probe: a probe must see a restarted service as a new client would.
        self._http = httpx.Client(
            trust_env=False, follow_redirects=False, limits=httpx.Limits(max_keepalive_connections=0)
        )

    def close(self) -> None:
        self._http.close()

    def check(self) -> Round:
        started = time.monotonic()
        return Round(started, [self._probe(probe) for probe in self._hypothesis.probes])

    def _text(self, template: str) -> str:
        from gonogo.journey.variables import render

        return str(render(template, self._variables, self._expand))

    def _value(self, template: Any) -> Any:
        """An expected JSON value with its variables filled in, as in a journey's `expect.json`."""
        return render_value(template, self._variables, self._expand)

    def _probe(self, probe: Probe) -> ProbeResult:
        if isinstance(probe, HttpProbe):
            return self._http_probe(probe)
        if isinstance(probe, CommandProbe):
            return self._command_probe(probe)
        return self._metric_probe(probe)

    def _http_probe(self, probe: HttpProbe) -> ProbeResult:
        target = self._text(probe.http)
        if not target.startswith(("http://", "https://")):
            if self._base_url is None:
                return ProbeResult(probe.name, False, f"{target} is a path but the plan has no base_url")
            target = self._base_url + target
        headers = {name: self._text(value) for name, value in probe.headers.items()}
        started = time.perf_counter()
        try:
            response = self._http.request(probe.method, target, headers=headers, timeout=probe.timeout)
        except httpx.TimeoutException:
            return ProbeResult(
                probe.name, False, f"no answer within {format_value(probe.timeout, 'seconds')}"
            )
        except httpx.HTTPError as error:
            return ProbeResult(probe.name, False, f"{type(error).__name__}: {error or 'connection failed'}")
        latency = time.perf_counter() - started
        problem = status_problem(probe.status, response.status_code)
        if problem:
            return ProbeResult(probe.name, False, problem)
        if probe.json_fields:
            try:
                document = response.json()
            except ValueError:
                return ProbeResult(probe.name, False, "the response is not JSON")
            for path, matcher in probe.json_fields.items():
                found, value = path.find(document)
                problem = matcher.check(str(path), found, value, self._value)
                if problem:
                    return ProbeResult(probe.name, False, problem)
        if probe.latency is not None and not probe.latency.holds(latency):
            return ProbeResult(
                probe.name,
                False,
                f"answered in {format_value(latency, 'seconds')}, expected {probe.latency.text}",
            )
        return ProbeResult(probe.name, True, f"{response.status_code} in {format_value(latency, 'seconds')}")

    def _command_probe(self, probe: CommandProbe) -> ProbeResult:
        argv: str | list[str] = (
            self._text(probe.command)
            if isinstance(probe.command, str)
            else [self._text(a) for a in probe.command]
        )
        try:
            process = subprocess.Popen(
                argv,
                shell=probe.shell,
                cwd=self._cwd,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: a timeout kills its children too
            )
        except OSError as error:
            return ProbeResult(probe.name, False, f"cannot start: {error.strerror or error}")
        try:
            output, _ = process.communicate(timeout=probe.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            return ProbeResult(
                probe.name, False, f"still running after {format_value(probe.timeout, 'seconds')}"
            )
        if process.returncode != probe.exit_code:
            tail = output.decode(errors="replace").strip().splitlines()[-1:] or [""]
            return ProbeResult(
                probe.name,
                False,
                f"exited {process.returncode}, expected {probe.exit_code}: {show(tail[0], 120)}",
            )
        return ProbeResult(probe.name, True, f"exited {process.returncode}")

    def _metric_probe(self, probe: MetricProbe) -> ProbeResult:
        figures = self._load_window(probe.window)
        if figures is None or probe.metric not in figures:
            return ProbeResult(probe.name, False, "no background load measured yet")
        value = figures[probe.metric]
        unit = "per_second" if probe.metric == "rps" else "ratio"
        shown = format_value(value, unit)
        if not probe.expr.holds(value):
            return ProbeResult(probe.name, False, f"{probe.metric} = {shown}, expected {probe.expr.text}")
        return ProbeResult(probe.name, True, f"{probe.metric} = {shown}")
