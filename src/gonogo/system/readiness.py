"""Telling when a started service is ready: an HTTP status, a TCP connect, a command.

Probes only reach this machine: gonogo started the service here, so an answer from
anywhere else would say nothing about it.
"""

from __future__ import annotations

__all__ = [
    "CommandProbe",
    "HttpProbe",
    "Probe",
    "ProbeFailed",
    "TcpProbe",
    "build_probe",
    "wait_until_ready",
]

import ipaddress
import socket
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

import httpx

from gonogo.errors import GonogoError
from gonogo.plan.model import ReadinessProbe
from gonogo.system.command import run_command
from gonogo.system.process import describe_exit, resolve_argv, tail_lines
from gonogo.system.reaper import Reaper

_HTTP_ATTEMPT_TIMEOUT = 2.0
_TCP_ATTEMPT_TIMEOUT = 1.0


class ProbeFailed(GonogoError):
    """The service will not become ready; `reason` completes "service X …"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Probe(Protocol):
    description: str

    def attempt(self, timeout: float) -> str | None:
        """None when ready, else why not (yet). Raises ProbeFailed if it never can be."""
        ...

    def close(self) -> None: ...


def _ensure_loopback(host: str, what: str) -> None:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except OSError as error:
            raise ProbeFailed(f"has a readiness probe for {what} that cannot be resolved: {error}") from None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    # 0.0.0.0 and :: reach this machine too on Linux.
    if not all(address.is_loopback or address.is_unspecified for address in addresses):
        raise ProbeFailed(
            f"has a readiness probe for {what}, which is not on this machine; "
            "probes only reach loopback addresses (localhost, 127.0.0.1, ::1)"
        )


class HttpProbe:
    def __init__(self, url: str, statuses: list[int]) -> None:
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as error:
            raise ProbeFailed(f"has an invalid readiness URL {url!r}: {error}") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ProbeFailed(f"has a readiness URL {url!r} that is not http(s)://host…")
        _ensure_loopback(parsed.host, url)
        self.url = url
        self.statuses = statuses
        self.description = f"GET {url}"
        # No proxies from the environment (they would not reach our loopback), no
        # redirects (the expected status is the first answer), any certificate (we
        # started the server ourselves).
        self._client = httpx.Client(trust_env=False, follow_redirects=False, verify=False)

    def attempt(self, timeout: float) -> str | None:
        try:
            response = self._client.get(self.url, timeout=min(timeout, _HTTP_ATTEMPT_TIMEOUT))
        except httpx.HTTPError as error:
            return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        if response.status_code in self.statuses:
            return None
        expected = " or ".join(str(status) for status in self.statuses)
        return f"HTTP {response.status_code}, expected {expected}"

    def close(self) -> None:
        self._client.close()


class TcpProbe:
    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ProbeFailed(f"has a readiness tcp address {address!r}; expected host:port")
        _ensure_loopback(host, address)
        self.host, self.port = host.strip("[]"), int(port)
        self.description = f"TCP connect to {address}"

    def attempt(self, timeout: float) -> str | None:
        try:
            with socket.create_connection((self.host, self.port), timeout=min(timeout, _TCP_ATTEMPT_TIMEOUT)):
                return None
        except OSError as error:
            return error.strerror or str(error) or type(error).__name__

    def close(self) -> None:
        pass


class CommandProbe:
    def __init__(
        self,
        argv: list[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        log_path: Path,
        reaper: Reaper,
    ) -> None:
        self.argv, self.cwd, self.env, self.log_path, self.reaper = argv, cwd, env, log_path, reaper
        self.description = f"command {' '.join(argv)}"

    def attempt(self, timeout: float) -> str | None:
        outcome = run_command(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            shell=False,
            timeout=timeout,
            log_path=self.log_path,
            reaper=self.reaper,
        )
        if outcome.start_error is not None:
            raise ProbeFailed(f"has a readiness command that cannot start: {outcome.start_error}")
        if outcome.returncode == 0:
            return None
        why = "timed out" if outcome.returncode is None else describe_exit(outcome.returncode)
        last = tail_lines(self.log_path, 1)
        return f"it {why}" + (f": {last[0].strip()}" if last else "")

    def close(self) -> None:
        pass


def build_probe(
    spec: ReadinessProbe,
    *,
    expand: Callable[[str], str],
    cwd: Path,
    env: Mapping[str, str],
    log_path: Path,
    reaper: Reaper,
) -> Probe:
    """The probe `spec` describes, placeholders expanded. Raises ProbeFailed if unusable."""
    if spec.http is not None:
        return HttpProbe(expand(spec.http), spec.statuses)
    if spec.tcp is not None:
        return TcpProbe(expand(spec.tcp))
    assert spec.command is not None  # the model holds exactly one of the three
    try:
        argv = resolve_argv(spec.command, shell=False, expand=expand)
    except ValueError as error:
        raise ProbeFailed(f"has an unusable readiness command: {error}") from None
    return CommandProbe(argv, cwd=cwd, env=env, log_path=log_path, reaper=reaper)


def wait_until_ready(
    probe: Probe,
    *,
    timeout: float,
    interval: float,
    wait_exit: Callable[[float], int | None],
) -> None:
    """Probe every `interval` until ready; raise ProbeFailed on exit or after `timeout`.

    `wait_exit(seconds)` waits up to `seconds` for the service to exit and returns its
    exit code, or None if it is still running; it doubles as the pause between attempts.
    """
    deadline = time.monotonic() + timeout
    last = "no attempt finished"
    while True:
        code = wait_exit(0)
        if code is not None:
            raise ProbeFailed(f"{describe_exit(code)} before it was ready")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ProbeFailed(f"was not ready within {timeout:g}s (last probe, {probe.description}: {last})")
        why = probe.attempt(remaining)
        if why is None:
            code = wait_exit(0)
            if code is not None:  # something else answered on its port?
                raise ProbeFailed(f"{describe_exit(code)} just as its readiness probe succeeded")
            return
        last = why
        wait_exit(max(0.0, min(interval, deadline - time.monotonic())))
