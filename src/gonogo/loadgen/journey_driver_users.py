"""The Python journey driver's virtual users (`journey_driver`): each has an
`httpx.AsyncClient` of one connection and its own cookies; it runs the setup once, then
iterations that start from what the setup left (its variables, a copy of its cookies), and
the teardown at the run's end. What they send and receive is counted in the run's tally
(`journey_driver_tally`).
"""

from __future__ import annotations

__all__ = ["User", "VirtualUsers"]

import asyncio
import contextlib
import ssl
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from typing import Any

import httpx

from gonogo.journey.engine import USER_AGENT, Engine, Failure, IterationState
from gonogo.journey.settings import Journey
from gonogo.journey.variables import render_value
from gonogo.loadgen.journey_driver_records import JourneyRecord
from gonogo.loadgen.journey_driver_tally import RunTally
from gonogo.loadgen.settings import LoadSettings


class _NoSharedCookies(DefaultCookiePolicy):
    """A client's own jar keeps nothing: each user's cookies are in its own `httpx.Cookies`."""

    def set_ok(self, cookie: Any, request: Any) -> bool:
        return False


@dataclass
class User:
    """A virtual user (open model: a connection slot): its own client of one connection, so
    no request ever scans a pool of other users' connections, and its cookies and setup
    variables, which every iteration it runs starts from."""

    index: int
    client: httpx.AsyncClient
    cookies: httpx.Cookies = field(default_factory=httpx.Cookies)
    variables: dict[str, Any] | None = None  # what its setup defined; None: not set up yet


class VirtualUsers:
    """The run's users, and what they run: setup, iterations, teardown."""

    def __init__(
        self,
        settings: LoadSettings,
        base_url: str,
        *,
        files: Mapping[str, Path],
        expand: Callable[[str], str],
        tally: RunTally,
    ) -> None:
        self.s = settings
        self.expand = expand
        self.tally = tally
        self.engine = Engine(
            settings.journeys_settings(), base_url, files=files, expand=expand, progress=lambda _: None
        )
        # the setup and teardown as journeys of their own (their steps are counted apart)
        self.once = settings.once_journeys()
        once_settings = settings.once_settings()
        self.once_engine = (
            Engine(once_settings, base_url, files=files, expand=expand, progress=lambda _: None)
            if once_settings is not None
            else None
        )
        # one TLS context for every user's client (loading the CA bundle takes ~30 ms a client)
        self.tls = ssl.create_default_context()
        self.users: list[User] = []
        self.setting_up = self.set_up_count = 0  # users in their setup now; users set up so far

    def new(self) -> User:
        """A virtual user with a client of one connection, as the journeys kind makes them."""
        client = httpx.AsyncClient(
            http1=True,
            http2=False,
            verify=self.tls,
            follow_redirects=False,
            trust_env=False,
            timeout=httpx.Timeout(self.s.request_timeout),
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            cookies=CookieJar(policy=_NoSharedCookies()),
            headers={"User-Agent": USER_AGENT},
        )
        user = User(len(self.users), client)
        self.users.append(user)
        return user

    async def close(self) -> None:
        await asyncio.gather(*(user.client.aclose() for user in self.users), return_exceptions=True)

    def _state(self, journey: Journey, name: str, number: int, user: User) -> IterationState:
        """An iteration's start as `Engine.start_iteration`, from the user's setup variables and cookies."""
        variables: dict[str, Any] = {
            **(user.variables or {}),
            "iteration": number,
            "uuid": str(uuid.uuid4()),
            "journey": name,
        }
        for key, value in journey.variables.items():
            variables[key] = render_value(value, variables, self.expand)
        # the setup fills the user's jar; an iteration (or the teardown) starts from a copy of it
        cookies = user.cookies if user.variables is None else httpx.Cookies(user.cookies)
        return IterationState(name, number, variables, cookies=cookies)

    async def _once(self, name: str, user: User) -> Failure | None:
        """Run the setup or the teardown for one user; its failure, if it failed."""
        assert self.once_engine is not None
        journey = self.once[name]
        state = self._state(journey, name, user.index + 1, user)  # numbered by user in failure reports
        for spec in journey.steps:
            step = self.tally.once_steps[f"{name}.{spec.name}"]
            step.warmup.requests += 1
            result, failure = await self.once_engine.run_step(user.client, state, spec)
            self.tally.outcome(step, result, failure, True, time.perf_counter(), 0.0, 0.0)
            if failure is not None:
                self.tally.once_failed(name, failure)
                return failure
        if name == "setup":
            self.set_up_count += 1
            user.variables = {
                k: v for k, v in state.variables.items() if k not in ("iteration", "uuid", "journey")
            }
        return None

    async def ready(self, user: User) -> bool:
        """Set the user up if it is not yet; False if its setup failed."""
        if user.variables is not None:
            return True
        if self.s.setup is None:
            user.variables = {}
            return True
        self.setting_up += 1
        try:
            return await self._once("setup", user) is None
        finally:
            self.setting_up -= 1

    async def tear_down(self) -> None:
        """Each user that was set up runs the teardown, at once, bounded by the request timeout."""
        if self.s.teardown is None:
            return
        users = [user for user in self.users if user.variables is not None]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.s.request_timeout):
                await asyncio.gather(*(self._once("teardown", user) for user in users))

    async def iterate(
        self, journey: JourneyRecord, intended: float, started: float, warm: bool, user: User
    ) -> None:
        """One iteration of `journey` on `user`, to its end or its first failed step; its first
        request's latency counts from `intended`, the others' from their sending."""
        journey.number += 1
        state = self._state(journey.journey, journey.name, journey.number, user)
        failure: Failure | None = None
        for index, (step, spec) in enumerate(zip(journey.steps, journey.journey.steps, strict=True)):
            sent = time.perf_counter()
            since = intended if index == 0 else sent
            token = self.tally.sent(step, warm, sent, since)
            try:
                result, failure = await self.engine.run_step(user.client, state, spec)
            finally:
                self.tally.answered(token)
            done = time.perf_counter()
            self.tally.outcome(step, result, failure, warm, done, done - sent, done - since)
            if failure is not None:
                break
        end = time.perf_counter()
        self.tally.iteration_ended(journey, failure, warm, end - intended, end - started)
