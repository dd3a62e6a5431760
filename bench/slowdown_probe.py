"""How much slower DOCSERVICE_SLOWDOWN=0.2 makes the example's API, as a client sees it.

    .venv/bin/python bench/slowdown_probe.py     # about 30 s

Two APIs on 127.0.0.1, one with the switch, and one client alternating its requests between
them (1000 each per route, sequential): whatever else the machine does falls on both alike,
which sequential runs cannot promise. Prints the median latency of each route on both and the
difference. No enricher (its URL points at a closed port: /health says degraded, still 200).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "docservice"
PORTS = (18781, 18782)  # unslowed, slowed


def start(port: int, extra: dict[str, str], data: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(EXAMPLE / "src"), DOCSERVICE_LOG_LEVEL="WARNING", **extra)
    command = [sys.executable, "-m", "docservice.api", "--port", str(port), "--db", str(data / "db"),
               "--storage", str(data / "files"), "--enricher-url", "http://127.0.0.1:9",
               "--scrypt-n", "1024"]  # fmt: skip
    return subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)


def prepare(port: int) -> tuple[dict[str, str], dict[str, str]]:
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(f"{base}/health", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    user = {"email": "probe@example.test", "password": "pw-123456789"}
    httpx.post(f"{base}/register", json=user).raise_for_status()
    token = httpx.post(f"{base}/login", json=user).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    upload = httpx.post(
        f"{base}/documents", headers=headers, files={"file": ("a.txt", b"word " * 800, "text/plain")}
    )
    doc = upload.json()["id"]
    routes = {"list": "/documents", "get": f"/documents/{doc}", "download": f"/documents/{doc}/content",
              "health": "/health"}  # fmt: skip
    return headers, routes


def main() -> None:
    with tempfile.TemporaryDirectory() as first, tempfile.TemporaryDirectory() as second:
        processes = [
            start(PORTS[0], {}, Path(first)),
            start(PORTS[1], {"DOCSERVICE_SLOWDOWN": "0.2"}, Path(second)),
        ]
        try:
            prepared = {port: prepare(port) for port in PORTS}
            for route in ("list", "get", "download", "health"):
                latencies: dict[int, list[float]] = {port: [] for port in PORTS}
                with httpx.Client() as client:
                    for index in range(1000):
                        for port in PORTS if index % 2 else PORTS[::-1]:
                            headers, routes = prepared[port]
                            started = time.perf_counter()
                            client.get(
                                f"http://127.0.0.1:{port}{routes[route]}", headers=headers
                            ).raise_for_status()
                            latencies[port].append(time.perf_counter() - started)
                plain, slowed = (statistics.median(latencies[port]) for port in PORTS)
                change = (slowed / plain - 1) * 100
                print(f"{route:9} {plain * 1e3:.3f} ms, slowed {slowed * 1e3:.3f} ms: {change:+.1f}%")
        finally:
            for process in processes:
                process.kill()
                process.wait()


if __name__ == "__main__":
    main()
