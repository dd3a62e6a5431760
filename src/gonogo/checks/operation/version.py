"""The version a service says it runs, read from its version endpoint before and after each run."""

from __future__ import annotations

__all__ = ["VersionReader", "extract_version", "version_url"]

import json
import re
from collections.abc import Callable

import httpx

from gonogo.checks.operation.settings import VersionEndpoint


def extract_version(endpoint: VersionEndpoint, body: bytes) -> tuple[str | None, str]:
    """(the version, "") or (None, why none could be read) from a response body."""
    text = body.decode("utf-8", "replace")
    if endpoint.json_path is not None:
        try:
            document = json.loads(text)
        except ValueError:
            return None, "the answer is not JSON"
        found, value = endpoint.json_path.find(document)
        if not found:
            return None, f"no {endpoint.json_path} in the answer"
        return (value if isinstance(value, str) else json.dumps(value)), ""
    if endpoint.regex is not None:
        match = re.search(endpoint.regex, text)
        if match is None:
            return None, f"{endpoint.regex!r} does not match the answer"
        return (match.group(1) if match.re.groups else match.group(0)), ""
    version = text.strip()
    return (version, "") if version else (None, "the answer is empty")


class VersionReader:
    """Asks the version endpoint, on a fresh connection each time (as a new client would)."""

    def __init__(self, endpoint: VersionEndpoint, url: str) -> None:
        self._endpoint = endpoint
        self.url = url
        self._http = httpx.Client(
            trust_env=False, follow_redirects=False, limits=httpx.Limits(max_keepalive_connections=0)
        )

    def read(self) -> tuple[str | None, str]:
        try:
            response = self._http.get(self.url, timeout=self._endpoint.timeout)
        except httpx.HTTPError as error:
            return None, f"{type(error).__name__}: {error or 'no answer'}"
        if not 200 <= response.status_code <= 299:
            return None, f"answered {response.status_code}"
        return extract_version(self._endpoint, response.content)

    def close(self) -> None:
        self._http.close()


def version_url(endpoint: VersionEndpoint, base_url: str | None, expand: Callable[[str], str]) -> str | None:
    """The endpoint's URL: a path on the base URL, or a URL as written (placeholders filled)."""
    target = expand(endpoint.url)
    if target.startswith(("http://", "https://")):
        return target
    return base_url.rstrip("/") + target if base_url else None
