"""Probes: crafted requests sent byte for byte by the raw client (`gonogo.journey.raw`),
aimed at what gonogo knows of the service (the journeys' requests, the OpenAPI document).

Four families, each a module, run in this order (cheap and harmless first, the ones that may
bring the service down last): `headers` (security headers, cookie flags, CORS, TRACE,
versions, stack traces), `traversal` (files from outside the served folder), `injection`
(SQL, shell command, template, non-ASCII), `oversized` (oversized body and header, slow
body, with the service's memory watched). `surface` says what they aim at; `_session` is
what they share (the budget, the first user's credentials, findings without secrets).

Every request is drawn from the check's shared budget; when it is spent the probes stop where
they are and say so in a note. The tally counts `requests`, `payloads` (crafted values tried)
and the operations probed.
"""

from __future__ import annotations

__all__ = ["run_probes"]

from collections.abc import Awaitable, Callable

from gonogo.checks.security.findings import PartResult
from gonogo.checks.security.probes._session import ProbeSession
from gonogo.checks.security.probes.headers import run_headers
from gonogo.checks.security.probes.injection import run_injection
from gonogo.checks.security.probes.oversized import SLOW_WINDOW, run_oversized
from gonogo.checks.security.probes.surface import endpoints
from gonogo.checks.security.probes.traversal import run_traversal
from gonogo.checks.security.settings import ProbeSettings
from gonogo.checks.security.target import Target


async def run_probes(
    settings: ProbeSettings, target: Target, *, slow_window: float = SLOW_WINDOW
) -> PartResult:
    """Every enabled family on the target; `slow_window` bounds the slow body (seconds)."""
    session = ProbeSession(settings, target)
    if not settings.enabled:
        session.result.not_measured = "probes are turned off (probes.enabled: false)"
        return session.finish()
    aims = endpoints(target)
    if not aims:
        session.result.notes.append(
            "no request to aim at: the journeys sent none and there is no OpenAPI document; "
            "only `/` was probed"
        )
    target.progress(f"probes: {len(aims)} operations to aim at")
    families: list[tuple[bool, str, Callable[[], Awaitable[None]]]] = [
        (settings.headers, "headers, cookies, CORS, TRACE", lambda: run_headers(session, aims)),
        (settings.traversal, "path traversal", lambda: run_traversal(session, aims)),
        (settings.injection, "injection", lambda: run_injection(session, aims)),
        (
            settings.oversized or settings.slow_body,
            "oversized and slow requests",
            lambda: run_oversized(session, aims, slow_window=slow_window),
        ),
    ]
    for enabled, name, family in families:
        if not enabled or session.stopped:
            continue
        target.progress(f"probes: {name}")
        try:
            await family()
        except Exception as error:  # a bug in one family must not lose what the others find
            session.result.notes.append(
                f"probes: {name} stopped by an error of gonogo's ({type(error).__name__}: {error}); "
                "the other families ran"
            )
    return session.finish()
