"""Locust FastHttpUser against the bench's nginx: one GET of the 100-byte file per task.

BENCH_URL: the server (http://127.0.0.1:PORT); BENCH_USER_RATE: requests per second per
user (constant_throughput), 0 or unset for no wait at all.
"""

from __future__ import annotations

import os

from locust import FastHttpUser, constant, constant_throughput, task

_RATE = float(os.environ.get("BENCH_USER_RATE", "0") or 0)


class StaticFile(FastHttpUser):
    host = os.environ.get("BENCH_URL", "http://127.0.0.1:8080")
    wait_time = constant_throughput(_RATE) if _RATE > 0 else constant(0)

    @task
    def index(self) -> None:
        self.client.get("/index.html")
