"""Before the services start: the plan's fault proxies, clocks that experiments can skew, and
where the services' data volumes will be (for `disk_full`).

Proxies are in place before any service starts, so a service configured to reach its
database through `{port.db_proxy}` finds it there from its first connection.
"""

from __future__ import annotations

__all__ = ["FaultSetup", "FaultSetupFailed"]

from pathlib import Path
from types import TracebackType
from typing import Any

from gonogo.errors import GonogoError
from gonogo.faults.addresses import AddressError, parse_loopback_address
from gonogo.faults.client import ToxiproxyClient, ToxiproxyError
from gonogo.faults.proxy import FaultProxy
from gonogo.faults.targets import FaultTargets, ProxyTarget, VolumeTarget
from gonogo.plan import Plan
from gonogo.run.context import RunContext
from gonogo.system.volumes import volume_path


class FaultSetupFailed(GonogoError):
    """A proxy or a clock could not be set up; the message says which and why."""


class FaultSetup:
    """Owns the fault proxy servers of a run; closing it stops them."""

    def __init__(self, plan: Plan, ctx: RunContext) -> None:
        self._plan = plan
        self._ctx = ctx
        self._server: FaultProxy | None = None
        self._http_proxies: list[Any] = []
        self.targets = FaultTargets(reaper=ctx.reaper)
        self.service_env: dict[str, dict[str, str]] = {}

    def start(self) -> FaultTargets:
        system = self._plan.system
        try:
            if system.proxies:
                self._start_proxies()
            for name, service in system.services.items():
                if service.clock == "faketime":
                    self._faketime(name)
                if service.data is not None:  # mounted by the System; a disk_full fault fills it
                    path = volume_path(service.data, self._ctx.expand, self._plan.directory)
                    self.targets.data_volumes[name] = VolumeTarget(name, path, service.data.size)
        except BaseException:
            self.close()
            raise
        return self.targets

    def _start_proxies(self) -> None:
        system = self._plan.system
        api = self._ctx.expand(system.faults_api) if system.faults_api else "127.0.0.1:0"
        try:
            host, port = parse_loopback_address(api, "system.faults_api")
        except AddressError as error:
            raise FaultSetupFailed(str(error)) from None
        try:
            self._server = FaultProxy.start(host, port)
        except OSError as error:
            raise FaultSetupFailed(
                f"the fault proxy API cannot listen on {api}: {error.strerror or error}"
            ) from None
        client = ToxiproxyClient(self._server.api_url)
        self.targets.toxiproxy = client
        for name, route in system.proxies.items():
            listen, upstream = self._ctx.expand(route.listen), self._ctx.expand(route.upstream)
            http_proxy = None
            try:
                if route.protocol == "tcp":
                    client.create_proxy(name, listen, upstream)
                else:
                    from gonogo.faults.http import HttpFaultProxy

                    http_proxy = HttpFaultProxy.start(listen=listen, upstream=upstream)
                    self._http_proxies.append(http_proxy)
            except (ToxiproxyError, AddressError, OSError, ValueError) as error:
                raise FaultSetupFailed(f"system.proxies.{name}: {error}") from None
            self.targets.proxies[name] = ProxyTarget(name, listen, upstream, route.protocol, http_proxy)
            self._ctx.progress.milestone("faults", f"proxy {name}: {listen} → {upstream} ({route.protocol})")

    def _faketime(self, service: str) -> None:
        from gonogo.faults.clock import faketime_env, faketime_supported

        why_not = faketime_supported()
        if why_not is not None:
            raise FaultSetupFailed(f"system.services.{service}.clock: faketime: {why_not}")
        control = Path(self._ctx.scratch_dir) / "clocks" / f"{service}.faketime"
        control.parent.mkdir(parents=True, exist_ok=True)
        self.service_env[service] = faketime_env(control)
        self.targets.clock_files[service] = control

    def close(self) -> None:
        for proxy in self._http_proxies:
            proxy.stop()
        self._http_proxies.clear()
        if self.targets.toxiproxy is not None:
            self.targets.toxiproxy.close()
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> FaultSetup:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
