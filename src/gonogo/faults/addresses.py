"""Parsing ``host:port`` addresses and refusing anything that is not on this machine."""

from __future__ import annotations

import ipaddress

from gonogo.errors import GonogoError

__all__ = ["AddressError", "format_address", "parse_loopback_address"]


class AddressError(GonogoError, ValueError):
    """An address that is malformed or not loopback; the message goes back to the client with a 400."""


def parse_loopback_address(value: object, what: str) -> tuple[str, int]:
    """``"127.0.0.1:8080"``, ``"localhost:80"`` or ``"[::1]:80"`` as (host, port); anything else refused."""
    if not isinstance(value, str) or ":" not in value:
        raise AddressError(f"{what} must be a string host:port, got {value!r}")
    host, _, port_text = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        raise AddressError(f"{what} has an invalid port: {value!r}") from None
    if not 0 <= port <= 65535:
        raise AddressError(f"{what} has an invalid port: {value!r}")
    if host != "localhost":
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise AddressError(
                f"{what} {value!r} is not a loopback address: the gonogo fault proxy only listens on and "
                "forwards to this machine (127.0.0.0/8, ::1 or localhost)"
            )
    return host, port


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
