"""What a check needs to run journeys once against the plan's system: its base URL, the
files the journeys upload, and a setup journey whose variables feed what follows."""

from __future__ import annotations

__all__ = ["resolve_base_url", "run_setup", "upload_files"]

import asyncio
import os
from pathlib import Path
from typing import Any

import httpx

from gonogo.checks.base import CheckContext
from gonogo.journey.engine import Engine
from gonogo.journey.settings import BodySource, Journey, JourneysSettings


def resolve_base_url(configured: str | None, ctx: CheckContext) -> tuple[str | None, str | None]:
    """(the base URL, None) or (None, why there is none): the check's own, else the plan's."""
    raw = configured or ctx.base_url
    if not raw:
        return None, ("no base URL: set base_url in this check or system.base_url in the plan")
    text = ctx.expand(raw).rstrip("/")
    if not text or "{base_url}" in text:
        return None, (
            f"no base URL: base_url is {raw!r} but the plan has no system.base_url; set one of them"
        )
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL as error:
        return None, f"the base URL {text!r} is not a valid URL: {error}"
    if url.scheme not in ("http", "https") or not url.host:
        return None, f"the base URL {text!r} is not an http:// or https:// URL with a host"
    if url.query or url.fragment:
        return None, f"the base URL {text!r} must not have a query or a fragment"
    return text, None


def upload_files(settings: JourneysSettings, ctx: CheckContext) -> tuple[dict[str, Path], list[str]]:
    """Every file the journeys upload (path as written → file), and the ones unreadable."""
    files: dict[str, Path] = {}
    missing: list[str] = []
    for journey_name, journey in settings.journeys.items():
        for step in journey.steps:
            for source in step.request.sources().values():
                if not isinstance(source, BodySource) or source.path is None:
                    continue
                if source.path in files:
                    continue
                path = Path(ctx.expand(source.path)).expanduser()
                if not path.is_absolute():
                    path = ctx.plan_dir / path
                files[source.path] = path
                if not path.is_file() or not os.access(path, os.R_OK):
                    missing.append(
                        f"journey {journey_name}, step {step.name}: {path} "
                        + ("is not readable" if path.is_file() else "does not exist")
                    )
    return files, missing


def run_setup(
    setup: Journey, request_timeout: float, base_url: str, ctx: CheckContext
) -> tuple[dict[str, Any], str | None]:
    """Run a setup journey once; its variables (a token, an id) feed the requests."""
    journeys = JourneysSettings.model_validate(
        {"journeys": {"setup": setup.model_dump(by_alias=True)}, "request_timeout": request_timeout}
    )
    files, missing = upload_files(journeys, ctx)
    if missing:
        return {}, "the setup journey cannot run: " + "; ".join(missing)
    engine = Engine(journeys, base_url, files=files, expand=ctx.expand, progress=ctx.progress)
    (result,) = asyncio.run(engine.run(on_journey_done=lambda _: None))
    iteration = result.iterations[0]
    if iteration.failure is not None:
        return {}, f"the setup journey failed, so no load was sent: {iteration.failure.summary()}"
    return iteration.variables, None
