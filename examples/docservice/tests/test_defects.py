"""The stability and durability switches (README, "Deliberate failure switches"): each one
breaks what it says, and only when it is on."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from conftest import auth_headers
from docservice.api import create_app, parse_args
from docservice.config import ApiSettings
from docservice.db import Database
from docservice.defects import Slowdown
from test_survival import api_process, login, wait_until


def process_gauges(client: TestClient) -> dict[str, float]:
    text = client.get("/metrics").text
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("process_")
    }


def test_leak_switches_keep_memory_and_a_file_descriptor_per_request(settings: ApiSettings) -> None:
    requests = 40
    growth = {}
    for name, leaking in (("healthy", False), ("leaking", True)):
        broken = dataclasses.replace(settings, leak_memory_kib=512 if leaking else 0, leak_fds=leaking)
        with TestClient(create_app(broken)) as client:
            before = process_gauges(client)
            for _ in range(requests):
                assert client.get("/help/index.md").status_code == 200
            after = process_gauges(client)
        growth[name] = {gauge: after[gauge] - before[gauge] for gauge in before}
    assert growth["leaking"]["process_open_fds"] >= requests
    assert growth["healthy"]["process_open_fds"] < 5
    # 40 requests of 512 KiB each: 20 MiB kept and touched
    assert growth["leaking"]["process_resident_memory_bytes"] >= 15 * 2**20, growth


def test_crash_after_switch_exits_1_once_it_answered_that_many_requests(tmp_path: Path) -> None:
    with api_process(tmp_path, {"DOCSERVICE_CRASH_AFTER": "12"}) as (url, proc):
        answered = 0
        with httpx.Client(timeout=5) as client:
            while proc.poll() is None and answered < 50:
                try:
                    client.get(f"{url}/help/index.md")
                    answered += 1
                except httpx.HTTPError:
                    break
        assert proc.wait(timeout=10) == 1
    assert answered < 12  # the readiness probe's requests count too
    assert (
        "DOCSERVICE_CRASH_AFTER=12: crashing on purpose after 12 requests"
        in (tmp_path / "api.log").read_text()
    )


def test_write_behind_commits_before_a_read_and_at_a_clean_stop(settings: ApiSettings) -> None:
    db = Database(settings.db_path)
    with TestClient(
        create_app(dataclasses.replace(settings, write_behind=True, flush_interval=60))
    ) as client:
        headers = auth_headers(client)
        first = client.post("/documents", headers=headers, files={"file": ("a", b"first")}).json()["id"]
        assert db.get_document(first) is None  # acknowledged (201), not committed
        assert client.get(f"/documents/{first}", headers=headers).status_code == 200
        assert db.get_document(first) is not None  # the read committed it first
        last = client.post("/documents", headers=headers, files={"file": ("b", b"last")}).json()["id"]
        assert db.get_document(last) is None
    assert db.get_document(last) is not None  # the clean stop flushed it


def test_write_behind_flushes_periodically(settings: ApiSettings) -> None:
    db = Database(settings.db_path)
    with TestClient(
        create_app(dataclasses.replace(settings, write_behind=True, flush_interval=0.2))
    ) as client:
        headers = auth_headers(client)
        doc = client.post("/documents", headers=headers, files={"file": ("a", b"first")}).json()["id"]
        wait_until(lambda: db.get_document(doc) is not None, timeout=5, what="the periodic flush")


def test_write_behind_loses_the_uploads_no_read_committed_when_killed(tmp_path: Path) -> None:
    switch = {"DOCSERVICE_WRITE_BEHIND": "1", "DOCSERVICE_FLUSH_INTERVAL": "60"}
    with api_process(tmp_path, switch) as (url, proc):
        headers = login(url)
        ids = []
        for content in (b"read back", b"never read"):
            response = httpx.post(
                f"{url}/documents", headers=headers, files={"file": ("f", content)}, timeout=10
            )
            assert response.status_code == 201
            ids.append(response.json()["id"])
            if content == b"read back":
                assert httpx.get(f"{url}/documents", headers=headers, timeout=10).json()["total"] == 1
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    with api_process(tmp_path) as (url, _):
        statuses = [
            httpx.get(f"{url}/documents/{doc}", headers=headers, timeout=10).status_code for doc in ids
        ]
    assert statuses == [200, 404]  # the second was acknowledged, then lost


def test_slowdown_makes_every_response_that_fraction_slower() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await asyncio.sleep(0.1)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        await send({"type": "http.response.body", "body": b" last"})

    client = TestClient(Slowdown(app, fraction=0.5))  # no lifespan: the app above has none
    started = time.perf_counter()
    response = client.get("/")
    elapsed = time.perf_counter() - started
    assert response.text == "first last"
    assert 0.15 <= elapsed < 0.3  # 100 ms, then half of it again before the last body part


def test_slowdown_switch_is_a_fraction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCSERVICE_SLOWDOWN", "0.2")
    assert parse_args([]).slowdown == 0.2
    monkeypatch.setenv("DOCSERVICE_SLOWDOWN", "20%")
    with pytest.raises(SystemExit):
        parse_args([])


def test_slowdown_delays_the_last_declared_byte_not_the_empty_end() -> None:
    sent_at: list[float] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await asyncio.sleep(0.1)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4")]})
        await send({"type": "http.response.body", "body": b"data", "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def run() -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        async def send(message: dict[str, Any]) -> None:
            sent_at.append(time.perf_counter())

        scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
        started = time.perf_counter()
        await Slowdown(app, fraction=0.5)(scope, receive, send)
        sent_at[:] = [at - started for at in sent_at]

    asyncio.run(run())
    # a client reading Content-Length is done with the 4th byte: that message is the late one
    assert sent_at[0] < 0.13 and 0.14 <= sent_at[1] < 0.3
