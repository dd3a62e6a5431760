"""Locust FastHttpUser running the 3-step journey of bench/run.sh journey3 against the bench's
nginx (bench/nginx_journey.conf), one journey per task: POST /login (extract token and id from
the JSON body) -> GET /items/{id} with "Authorization: Bearer {token}" -> GET /static.

BENCH_URL: the server (http://127.0.0.1:PORT); BENCH_USER_RATE: journeys per second per user
(constant_throughput), 0 or unset for no wait at all. Each step is its own entry in Locust's
stats (name = step); a journey stops at its first failed step (a 401 is a failure).
"""

from __future__ import annotations

import os

from locust import FastHttpUser, constant, constant_throughput, task

_RATE = float(os.environ.get("BENCH_USER_RATE", "0") or 0)
_CREDENTIALS = {"user": "demo", "password": "secret"}


class Journey3(FastHttpUser):
    host = os.environ.get("BENCH_URL", "http://127.0.0.1:8080")
    wait_time = constant_throughput(_RATE) if _RATE > 0 else constant(0)

    @task
    def journey(self) -> None:
        with self.client.post("/login", json=_CREDENTIALS, name="login", catch_response=True) as reply:
            if reply.status_code != 200:
                reply.failure(f"status {reply.status_code}")
                return
            try:
                body = reply.json()
                token, item = body["token"], body["id"]
            except (ValueError, KeyError, TypeError):
                reply.failure("no token and id in the response")
                return
        headers = {"Authorization": f"Bearer {token}"}
        with self.client.get(f"/items/{item}", headers=headers, name="item", catch_response=True) as reply:
            if reply.status_code != 200:
                reply.failure(f"status {reply.status_code}")
                return
        with self.client.get("/static", name="static", catch_response=True) as reply:
            if reply.status_code != 200:
                reply.failure(f"status {reply.status_code}")
