"""A small synchronous client of the Toxiproxy HTTP API, as gonogo's own checks use it.

gonogo drives its fault proxy through the same API any Toxiproxy client uses, so what a
chaos experiment does can be reproduced by hand with `curl` or `toxiproxy-cli`.
"""

from __future__ import annotations

__all__ = ["ToxiproxyClient", "ToxiproxyError"]

from typing import Any

import httpx

from gonogo.errors import GonogoError


class ToxiproxyError(GonogoError):
    """The API refused a request; the message is the API's own."""


class ToxiproxyClient:
    def __init__(self, api_url: str, *, timeout: float = 10.0) -> None:
        self.api_url = api_url.rstrip("/")
        self._http = httpx.Client(base_url=self.api_url, timeout=timeout, trust_env=False)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = self._http.request(method, path, json=body)
        except httpx.HTTPError as error:
            raise ToxiproxyError(f"the fault proxy API at {self.api_url} did not answer: {error}") from None
        if response.status_code >= 400:
            try:
                message = response.json().get("error", response.text)
            except ValueError:
                message = response.text
            raise ToxiproxyError(f"{method} {path}: {response.status_code} {message}")
        return response.json() if response.content else None

    def create_proxy(self, name: str, listen: str, upstream: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "POST", "/proxies", {"name": name, "listen": listen, "upstream": upstream, "enabled": True}
        )
        return result

    def proxy(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/proxies/{name}")
        return result

    def set_enabled(self, name: str, enabled: bool) -> None:
        self._call("POST", f"/proxies/{name}", {"enabled": enabled})

    def add_toxic(
        self,
        proxy: str,
        *,
        name: str,
        toxic_type: str,
        attributes: dict[str, int],
        stream: str = "downstream",
        toxicity: float = 1.0,
    ) -> dict[str, Any]:
        body = {
            "name": name,
            "type": toxic_type,
            "stream": stream,
            "toxicity": toxicity,
            "attributes": attributes,
        }
        result: dict[str, Any] = self._call("POST", f"/proxies/{proxy}/toxics", body)
        return result

    def remove_toxic(self, proxy: str, name: str) -> None:
        self._call("DELETE", f"/proxies/{proxy}/toxics/{name}")

    def toxics(self, proxy: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", f"/proxies/{proxy}/toxics")
        return result

    def stats(self, proxy: str) -> dict[str, Any]:
        """gonogo's extension: connections, bytes and per-toxic counters."""
        result: dict[str, Any] = self._call("GET", f"/proxies/{proxy}/stats")
        return result

    def close(self) -> None:
        self._http.close()
