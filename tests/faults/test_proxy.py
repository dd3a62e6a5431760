"""The fault proxy against real sockets on 127.0.0.1: plain proxying, every toxic, enable/disable, reset."""

from __future__ import annotations

import contextlib
import os
import socket
import time

import pytest

from gonogo.faults import FaultProxy

from .helpers import Api, roundtrip


def _toxic(api: Api, **body: object) -> dict[str, object]:
    status, created = api("POST", "/proxies/echo/toxics", body)
    assert status == 200, created
    assert isinstance(created, dict)
    return created


def _stats(api: Api) -> dict[str, object]:
    status, stats = api("GET", "/proxies/echo/stats")
    assert status == 200
    assert isinstance(stats, dict)
    return stats


def test_proxies_bytes_exactly_and_counts_them(api: Api, proxy_port: int, faults: FaultProxy) -> None:
    payload = os.urandom(2 * 1024 * 1024)
    received, _, _ = roundtrip(proxy_port, payload)
    assert received == payload
    stats = faults.stats("echo")
    assert stats["connections_total"] == 1
    assert stats["bytes_upstream"] == len(payload)
    assert stats["bytes_downstream"] == len(payload)


def test_latency_delays_data(api: Api, proxy_port: int) -> None:
    _, baseline, _ = roundtrip(proxy_port, b"ping")
    assert _toxic(api, type="latency", attributes={"latency": 400, "jitter": 50}) == {
        "name": "latency_downstream",
        "type": "latency",
        "stream": "downstream",
        "toxicity": 1.0,
        "attributes": {"latency": 400, "jitter": 50},
    }
    received, elapsed, _ = roundtrip(proxy_port, b"ping")
    assert received == b"ping"
    assert elapsed >= 0.33
    assert elapsed > baseline
    counters = _stats(api)["toxics"]
    assert counters == {"latency_downstream": {"type": "latency", "connections": 1, "applied": 1}}


def test_upstream_latency_and_updating_a_toxic(api: Api, proxy_port: int) -> None:
    _toxic(api, type="latency", stream="upstream", name="slow", attributes={"latency": 300})
    _, elapsed, _ = roundtrip(proxy_port, b"x")
    assert elapsed >= 0.25
    status, updated = api("POST", "/proxies/echo/toxics/slow", {"attributes": {"latency": 0}})
    assert status == 200
    assert updated["attributes"] == {"latency": 0, "jitter": 0}
    assert updated["stream"] == "upstream"
    _, elapsed, _ = roundtrip(proxy_port, b"x")
    assert elapsed < 0.25


def test_bandwidth_bounds_throughput(api: Api, proxy_port: int) -> None:
    _toxic(api, type="bandwidth", attributes={"rate": 100})  # 100 KB/s
    payload = os.urandom(100_000)
    received, elapsed, _ = roundtrip(proxy_port, payload)
    assert received == payload
    assert elapsed >= 0.8  # 1 s at exactly 100 KB/s
    assert elapsed < 10


def test_timeout_holds_data_then_closes(api: Api, proxy_port: int) -> None:
    _toxic(api, type="timeout", attributes={"timeout": 500})
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(b"hello")
        try:
            data = sock.recv(100)
        except ConnectionResetError:
            data = b""
        elapsed = time.monotonic() - started
    assert data == b""
    assert 0.4 <= elapsed < 5
    assert _stats(api)["toxics"]["timeout_downstream"]["applied"] >= 1  # type: ignore[index]


def test_timeout_zero_holds_until_removed(api: Api, proxy_port: int) -> None:
    _toxic(api, type="timeout", attributes={"timeout": 0})
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=0.8) as sock:
        sock.sendall(b"dropped")
        with pytest.raises(TimeoutError):
            sock.recv(100)
        status, _ = api("DELETE", "/proxies/echo/toxics/timeout_downstream")
        assert status == 204
        sock.settimeout(5)
        sock.sendall(b"through")
        assert sock.recv(100) == b"through"


def test_reset_peer_resets_the_connection(api: Api, proxy_port: int) -> None:
    _toxic(api, type="reset_peer", attributes={"timeout": 200})
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=10) as sock:
        sock.sendall(b"a")
        assert sock.recv(10) == b"a"  # data flows until the timeout
        with pytest.raises(ConnectionResetError):
            while sock.recv(10):
                pass
    assert _stats(api)["toxics"]["reset_peer_downstream"]["applied"] == 1  # type: ignore[index]


def test_slicer_delivers_in_pieces_but_intact(api: Api, proxy_port: int) -> None:
    _toxic(api, type="slicer", attributes={"average_size": 100, "size_variation": 20, "delay": 20_000})
    payload = os.urandom(1000)
    received, elapsed, reads = roundtrip(proxy_port, payload)
    assert received == payload
    assert reads >= 3
    assert elapsed >= 0.1  # about 9 gaps of 20 ms


def test_limit_data_closes_after_n_bytes(api: Api, proxy_port: int) -> None:
    _toxic(api, type="limit_data", attributes={"bytes": 100})
    payload = os.urandom(1000)
    received = bytearray()
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=10) as sock:
        sock.sendall(payload)
        while chunk := sock.recv(65536):
            received += chunk
    assert bytes(received) == payload[:100]
    assert _stats(api)["toxics"]["limit_data_downstream"]["applied"] == 1  # type: ignore[index]


def test_slow_close_delays_the_close(api: Api, proxy_port: int) -> None:
    _, baseline, _ = roundtrip(proxy_port, b"bye")
    _toxic(api, type="slow_close", attributes={"delay": 600})
    received, elapsed, _ = roundtrip(proxy_port, b"bye")
    assert received == b"bye"
    assert elapsed >= 0.5
    assert elapsed > baseline


def test_toxicity_zero_never_applies(api: Api, proxy_port: int) -> None:
    _toxic(api, type="latency", toxicity=0, attributes={"latency": 1000})
    for _ in range(5):
        received, elapsed, _ = roundtrip(proxy_port, b"fast")
        assert received == b"fast"
        assert elapsed < 0.9
    assert _stats(api)["toxics"] == {
        "latency_downstream": {"type": "latency", "connections": 0, "applied": 0}
    }


def test_disabling_refuses_connections_and_cuts_existing_ones(api: Api, proxy_port: int) -> None:
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=5) as sock:
        sock.sendall(b"1")
        assert sock.recv(10) == b"1"
        status, body = api("POST", "/proxies/echo", {"enabled": False})
        assert status == 200
        assert body["enabled"] is False
        with contextlib.suppress(ConnectionResetError):
            assert sock.recv(10) == b""
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy_port), timeout=5).close()
    status, body = api("POST", "/proxies/echo", {"enabled": True})
    assert status == 200
    assert body["listen"] == f"127.0.0.1:{proxy_port}"
    assert roundtrip(proxy_port, b"back")[0] == b"back"


def test_reset_enables_everything_and_removes_toxics(api: Api, proxy_port: int) -> None:
    _toxic(api, type="latency", attributes={"latency": 1000})
    api("POST", "/proxies/echo", {"enabled": False})
    status, body = api("POST", "/reset")
    assert (status, body) == (204, None)
    status, proxy = api("GET", "/proxies/echo")
    assert proxy["enabled"] is True
    assert proxy["toxics"] == []
    received, elapsed, _ = roundtrip(proxy_port, b"ok")
    assert received == b"ok"
    assert elapsed < 0.9
    # the evidence that the removed toxic existed survives
    assert "latency_downstream" in _stats(api)["toxics"]  # type: ignore[operator]


def test_moving_a_proxy_to_another_listen_port(api: Api, proxy_port: int) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        new_port = probe.getsockname()[1]
    status, body = api("POST", "/proxies/echo", {"listen": f"127.0.0.1:{new_port}"})
    assert status == 200, body
    assert body["listen"] == f"127.0.0.1:{new_port}"
    assert roundtrip(new_port, b"moved")[0] == b"moved"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy_port), timeout=5).close()


def test_deleting_a_proxy_closes_its_listener(api: Api, proxy_port: int) -> None:
    assert api("DELETE", "/proxies/echo") == (204, None)
    assert api("GET", "/proxies") == (200, {})
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy_port), timeout=5).close()
