"""report.html opened in Debian's headless Chromium through Playwright (never a browser
Playwright downloads): what the tests of the page share."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("GONOGO_CHROMIUM", "/usr/bin/chromium")


def browser_missing() -> str | None:
    """Why the page cannot be opened here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        return f"Chromium is not installed ({CHROMIUM}; `make system-packages` installs Debian's)"
    return None


def require_browser() -> None:
    """Skip without a browser, except under CI, which must run the browser tests."""
    missing = browser_missing()
    if missing is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser tests: {missing}")
        pytest.skip(missing)


@contextmanager
def report_page(path: Path) -> Iterator[tuple[Any, list[str]]]:
    """The page, once its charts are drawn, and every console message, page error and network
    request it made (a report makes none)."""
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}"))
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("request", lambda r: r.url.startswith("file:") or problems.append(f"request {r.url}"))
            page.goto(path.as_uri())
            page.wait_for_selector("body[data-charts-drawn]", timeout=10_000)
            yield page, problems
        finally:
            browser.close()


def drawn_charts(page: Any) -> list[tuple[str, int, int]]:
    """(title, canvas width, canvas height) of every chart on the page."""
    found: list[tuple[str, int, int]] = page.eval_on_selector_all(
        ".chart",
        """holders => holders.map(h => {
            const canvas = h.querySelector("canvas");
            const title = h.previousElementSibling.innerText;
            return [title, canvas ? canvas.width : 0, canvas ? canvas.height : 0];
        })""",
    )
    return found
