"""Locust HttpUser running the bench journey against docservice, one journey per task:
register -> login (extract the token) -> GET /documents (with it) -> GET /health.

BENCH_URL: the API (http://127.0.0.1:PORT). Each step is its own entry in Locust's stats
(name = step), so per-step latencies are in the report; a journey stops at a failed step.
"""

from __future__ import annotations

import os
import uuid

from locust import HttpUser, constant, task


class DocJourney(HttpUser):
    host = os.environ.get("BENCH_URL", "http://127.0.0.1:8000")
    wait_time = constant(0)

    @task
    def journey(self) -> None:
        ident = uuid.uuid4()
        credentials = {"email": f"locust-{ident}@example.test", "password": f"pw-{ident}"}
        with self.client.post("/register", json=credentials, name="register", catch_response=True) as reply:
            if reply.status_code != 201:
                reply.failure(f"status {reply.status_code}")
                return
        with self.client.post("/login", json=credentials, name="login", catch_response=True) as reply:
            if reply.status_code != 200:
                reply.failure(f"status {reply.status_code}")
                return
            try:
                token = reply.json()["access_token"]
            except (ValueError, KeyError, TypeError):
                reply.failure("no access_token in the response")
                return
        headers = {"Authorization": f"Bearer {token}"}
        with self.client.get("/documents", headers=headers, name="list", catch_response=True) as reply:
            if reply.status_code != 200:
                reply.failure(f"status {reply.status_code}")
                return
        with self.client.get("/health", name="health", catch_response=True) as reply:
            if reply.status_code != 200:
                reply.failure(f"status {reply.status_code}")
