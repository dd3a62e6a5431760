"""gonogo's fault proxy as a process of its own for the proxy benchmark: one proxy in front of an upstream.

    python bench/fault_proxy_server.py --upstream 127.0.0.1:8080 --ready ready.json [--toxic-never]

Writes {"listen_port", "api_url", "pid"} to the ready file once the proxy accepts connections, then
runs until SIGTERM/SIGINT, when it writes the proxy's counters (``--stats``) and stops everything.
``--toxic-never`` adds a latency toxic with toxicity 0: it never acts, but a proxy with a toxic
relays through the asyncio path, so the two paths can be compared on the same build.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
import urllib.request
from pathlib import Path
from typing import Any

from gonogo.faults import FaultProxy


def _call(api_url: str, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(api_url + path, data=json.dumps(body).encode(), method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--ready", type=Path, required=True)
    parser.add_argument("--stats", type=Path)
    parser.add_argument("--toxic-never", action="store_true")
    args = parser.parse_args()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with FaultProxy.start() as faults:
        proxy = _call(faults.api_url, "POST", "/proxies", {"name": "bench", "upstream": args.upstream})
        if args.toxic_never:
            _call(
                faults.api_url,
                "POST",
                "/proxies/bench/toxics",
                {"type": "latency", "toxicity": 0, "attributes": {"latency": 1000}},
            )
        port = int(proxy["listen"].rsplit(":", 1)[1])
        ready = {"listen_port": port, "api_url": faults.api_url, "pid": os.getpid()}
        args.ready.write_text(json.dumps(ready) + "\n")
        while not stop.wait(0.2):
            pass
        if args.stats is not None:
            args.stats.write_text(json.dumps(faults.stats("bench"), indent=2) + "\n")


if __name__ == "__main__":
    main()
