"""An unmodified Toxiproxy client from PyPI (toxiproxy-python) drives gonogo's fault proxy."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from gonogo.faults import FaultProxy

from .helpers import roundtrip

toxiproxy = pytest.importorskip("toxiproxy", reason="toxiproxy-python is in the dev extras")


def test_toxiproxy_python_client(faults: FaultProxy, echo_port: int) -> None:
    url = urlsplit(faults.api_url)
    server = toxiproxy.Toxiproxy()
    server.update_api_consumer(url.hostname, url.port)
    assert server.running()
    assert b"2." in server.version()

    proxy = server.create(upstream=f"127.0.0.1:{echo_port}", name="echo")
    port = int(proxy.listen.rsplit(":", 1)[1])
    assert set(server.proxies()) == {"echo"}
    assert roundtrip(port, b"plain")[0] == b"plain"

    proxy.add_toxic(type="latency", attributes={"latency": 400})
    assert set(proxy.toxics()) == {"latency_downstream"}
    assert proxy.get_toxic("latency_downstream").attributes == {"latency": 400, "jitter": 0}
    received, elapsed, _ = roundtrip(port, b"slow")
    assert received == b"slow"
    assert elapsed >= 0.35
    assert faults.stats("echo")["toxics"]["latency_downstream"]["applied"] >= 1

    proxy.destroy_toxic("latency_downstream")
    assert proxy.toxics() == {}
    _, elapsed, _ = roundtrip(port, b"fast")
    assert elapsed < 0.35

    with proxy.down():
        assert server.get_proxy("echo").enabled is False
    assert server.get_proxy("echo").enabled is True

    with pytest.raises(toxiproxy.exceptions.ProxyExists):
        server.create(upstream=f"127.0.0.1:{echo_port}", name="echo")
    with pytest.raises(toxiproxy.exceptions.NotFound):
        toxiproxy.api.APIConsumer.get("/proxies/missing")

    assert server.reset()
    server.destroy_all()
    assert server.proxies() == {}
