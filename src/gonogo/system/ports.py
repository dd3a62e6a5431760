"""Free TCP ports on the loopback interface for `{port.NAME}` placeholders."""

from __future__ import annotations

__all__ = ["allocate_ports"]

import socket
from collections.abc import Sequence


def allocate_ports(names: Sequence[str]) -> dict[str, int]:
    """A distinct free port on 127.0.0.1 for each name (a repeated name gets one port).

    The kernel picks each port; every socket stays bound until all are picked, so the
    ports differ. They are free when this returns; a service should bind them soon.
    """
    ports: dict[str, int] = {}
    sockets: list[socket.socket] = []
    try:
        for name in names:
            if name in ports:
                continue
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind(("127.0.0.1", 0))
            ports[name] = sock.getsockname()[1]
    finally:
        for sock in sockets:
            sock.close()  # bound but never listened on: the port is reusable at once
    return ports
