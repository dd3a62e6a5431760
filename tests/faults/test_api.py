"""The Toxiproxy-compatible HTTP API: shapes, errors, loopback-only addresses, and a real Toxiproxy client."""

from __future__ import annotations

import socket

import pytest

from gonogo.faults import AddressError, FaultProxy

from .helpers import Api, roundtrip


def test_version_and_empty_proxy_list(api: Api) -> None:
    status, body = api("GET", "/version")
    assert status == 200
    assert body["version"].startswith("2.")
    assert api("GET", "/proxies") == (200, {})


def test_proxy_json_shapes(api: Api, echo_port: int) -> None:
    status, created = api("POST", "/proxies", {"name": "db", "upstream": f"localhost:{echo_port}"})
    assert status == 201
    assert set(created) == {"name", "listen", "upstream", "enabled", "toxics"}
    assert created["name"] == "db"
    assert created["upstream"] == f"localhost:{echo_port}"
    assert created["enabled"] is True
    assert created["toxics"] == []
    assert created["listen"].startswith("127.0.0.1:")
    assert not created["listen"].endswith(":0")
    assert api("GET", "/proxies") == (200, {"db": created})
    assert api("GET", "/proxies/db") == (200, created)
    status, toxic = api("POST", "/proxies/db/toxics", {"type": "limit_data", "stream": "upstream"})
    assert (status, toxic) == (
        200,
        {
            "name": "limit_data_upstream",
            "type": "limit_data",
            "stream": "upstream",
            "toxicity": 1.0,
            "attributes": {"bytes": 0},
        },
    )
    assert api("GET", "/proxies/db/toxics") == (200, [toxic])
    assert api("GET", "/proxies/db/toxics/limit_data_upstream") == (200, toxic)
    assert api("GET", "/proxies/db")[1]["toxics"] == [toxic]
    assert api("DELETE", "/proxies/db/toxics/limit_data_upstream") == (204, None)
    assert api("GET", "/proxies/db/toxics") == (200, [])


def test_created_disabled_proxy_does_not_listen(api: Api, echo_port: int) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    body = {
        "name": "off",
        "listen": f"127.0.0.1:{port}",
        "upstream": f"127.0.0.1:{echo_port}",
        "enabled": False,
    }
    status, created = api("POST", "/proxies", body)
    assert status == 201
    assert created["enabled"] is False
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    api("POST", "/proxies/off", {"enabled": True})
    assert roundtrip(port, b"on")[0] == b"on"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "error"),
    [
        ("GET", "/proxies/nope", None, 404, "proxy not found"),
        ("POST", "/proxies/nope", {"enabled": False}, 404, "proxy not found"),
        ("DELETE", "/proxies/nope", None, 404, "proxy not found"),
        ("GET", "/proxies/nope/toxics", None, 404, "proxy not found"),
        ("POST", "/proxies/nope/toxics", {"type": "latency"}, 404, "proxy not found"),
        ("GET", "/proxies/echo/toxics/nope", None, 404, "toxic not found"),
        ("DELETE", "/proxies/echo/toxics/nope", None, 404, "toxic not found"),
        ("POST", "/proxies", {"name": "echo", "upstream": "127.0.0.1:1"}, 409, "proxy already exists"),
        ("POST", "/proxies", {"upstream": "127.0.0.1:1"}, 400, "missing required field: name"),
        ("POST", "/proxies", {"name": "x"}, 400, "missing required field: upstream"),
        ("POST", "/proxies", [1, 2], 400, "bad request body"),
        ("GET", "/nowhere", None, 404, "not found"),
        ("DELETE", "/version", None, 405, "method not allowed"),
    ],
)
def test_error_shapes(
    api: Api, proxy_port: int, method: str, path: str, body: object, status: int, error: str
) -> None:
    assert api(method, path, body) == (status, {"error": error, "status": status})


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"type": "frobnicate"}, "invalid toxic type"),
        ({"type": "latency", "stream": "sideways"}, "stream was invalid"),
        ({"type": "latency", "toxicity": 1.5}, "toxicity"),
        ({"type": "latency", "attributes": {"latency": -1}}, "must not be negative"),
        ({"type": "latency", "attributes": {"latancy": 10}}, "unknown attribute"),
    ],
)
def test_invalid_toxics_are_400(api: Api, proxy_port: int, body: object, fragment: str) -> None:
    status, answer = api("POST", "/proxies/echo/toxics", body)
    assert status == 400
    assert answer["status"] == 400
    assert fragment in answer["error"]


def test_duplicate_toxic_is_409(api: Api, proxy_port: int) -> None:
    assert api("POST", "/proxies/echo/toxics", {"type": "latency"})[0] == 200
    assert api("POST", "/proxies/echo/toxics", {"type": "latency"}) == (
        409,
        {"error": "toxic already exists", "status": 409},
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("upstream", "10.0.0.1:80"),
        ("upstream", "example.com:80"),
        ("upstream", "0.0.0.0:80"),
        ("listen", "0.0.0.0:0"),
        ("listen", ":0"),
        ("listen", "192.168.1.10:0"),
    ],
)
def test_non_loopback_addresses_are_refused(api: Api, echo_port: int, field: str, value: str) -> None:
    body = {"name": "out", "upstream": f"127.0.0.1:{echo_port}", field: value}
    status, answer = api("POST", "/proxies", body)
    assert status == 400
    assert "not a loopback address" in answer["error"]
    assert api("GET", "/proxies") == (200, {})


def test_updating_to_a_non_loopback_upstream_is_refused(api: Api, proxy_port: int, echo_port: int) -> None:
    status, answer = api("POST", "/proxies/echo", {"upstream": "8.8.8.8:53"})
    assert status == 400
    assert "not a loopback address" in answer["error"]
    assert api("GET", "/proxies/echo")[1]["upstream"] == f"127.0.0.1:{echo_port}"


def test_api_itself_only_on_loopback() -> None:
    with pytest.raises(AddressError):
        FaultProxy.start(api_host="0.0.0.0")


def test_context_manager_stops_everything(echo_port: int) -> None:
    with FaultProxy.start() as faults:
        port = faults.api_port
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
