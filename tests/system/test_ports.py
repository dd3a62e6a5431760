from __future__ import annotations

import socket

from gonogo.system import allocate_ports


def test_each_name_gets_a_distinct_free_loopback_port() -> None:
    ports = allocate_ports(["api", "db", "proxy", "api"])

    assert list(ports) == ["api", "db", "proxy"]
    assert len(set(ports.values())) == 3
    for port in ports.values():
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # free: binding it works


def test_no_names_no_ports() -> None:
    assert allocate_ports([]) == {}
