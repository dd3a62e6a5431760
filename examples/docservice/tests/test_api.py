"""The HTTP API through FastAPI's TestClient, against a real SQLite file and storage."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from conftest import auth_headers, free_port
from docservice import api
from docservice.api import create_app
from docservice.config import ApiSettings, WorkerSettings
from docservice.worker import Worker

HERE = Path(__file__).resolve().parent


def upload(
    client: TestClient,
    headers: dict[str, str],
    content: bytes = b"hello world\n",
    *,
    filename: str = "doc.txt",
    content_type: str = "text/plain",
    title: str | None = None,
) -> Any:
    data = {"title": title} if title is not None else None
    return client.post(
        "/documents", headers=headers, files={"file": (filename, content, content_type)}, data=data
    )


# -- health, metrics, headers -----------------------------------------------------------


def test_health_checks_the_database_and_the_enricher(
    settings: ApiSettings, enricher_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with TestClient(create_app(dataclasses.replace(settings, enricher_url=enricher_url))) as client:
        response = client.get("/health")
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "db": "ok", "enricher": "ok"}

        def broken() -> None:
            raise OSError("disk on fire")

        monkeypatch.setattr(client.app.state.db, "ping", broken)  # type: ignore[attr-defined]
        response = client.get("/health")
        assert response.status_code == 503 and response.json()["db"] == "error: disk on fire"
        assert response.json()["status"] == "error"
        assert 'docservice_dependency_up{dependency="database"} 0.0' in client.get("/metrics").text


def test_health_without_the_enricher_is_degraded_not_down(settings: ApiSettings) -> None:
    # the API still serves without its enricher (summaries fall back): 200, but it says so
    nobody = f"http://127.0.0.1:{free_port()}"
    with TestClient(create_app(dataclasses.replace(settings, enricher_url=nobody))) as client:
        response = client.get("/health")
        assert response.status_code == 200 and response.json()["status"] == "degraded"
        assert response.json()["db"] == "ok" and response.json()["enricher"].startswith("error: ConnectError")
        text = client.get("/metrics").text
    assert 'docservice_dependency_up{dependency="enricher"} 0.0' in text
    assert 'docservice_dependency_errors_total{dependency="enricher"} 1.0' in text


def test_health_without_its_database_file_is_503(settings: ApiSettings) -> None:
    with TestClient(create_app(settings)) as client:
        settings.db_path.rename(settings.db_path.with_name("moved-away.db"))
        response = client.get("/health")
        assert response.status_code == 503 and "unable to open database file" in response.json()["db"]
        assert client.get("/documents", headers={"Authorization": "Bearer x"}).status_code == 503
        assert client.get("/metrics").status_code == 200  # still answers, without the queue gauges
        assert not settings.db_path.exists()  # not recreated empty
        settings.db_path.with_name("moved-away.db").rename(settings.db_path)
        assert client.get("/health").json()["db"] == "ok"


def test_lying_health_switch_says_ok_without_a_database(settings: ApiSettings) -> None:
    with TestClient(create_app(dataclasses.replace(settings, lying_health=True))) as client:
        settings.db_path.unlink()
        response = client.get("/health")
    assert response.status_code == 200 and response.json()["status"] == "ok"


def test_never_ready_switch(settings: ApiSettings) -> None:
    with TestClient(create_app(dataclasses.replace(settings, never_ready=True))) as client:
        response = client.get("/health")
    assert response.status_code == 503 and response.json()["status"] == "unavailable"


def test_security_headers(client: TestClient) -> None:
    headers = client.get("/health").headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert "default-src 'none'" in headers["content-security-policy"]
    docs_policy = client.get("/docs").headers["content-security-policy"]  # Swagger UI needs its CDN
    assert "script-src 'unsafe-inline' https://cdn.jsdelivr.net" in docs_policy


def test_metrics(client: TestClient) -> None:
    headers = auth_headers(client)
    upload(client, headers)
    client.get("/nowhere")
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    values = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in families.values()
        for sample in family.samples
    }
    assert values[("docservice_documents", (("status", "pending"),))] == 1
    assert values[("docservice_jobs", (("status", "queued"),))] == 1
    assert "docservice_jobs_oldest_queued_seconds" in families
    upload_201 = (("method", "POST"), ("route", "/documents"), ("status", "201"))
    assert values[("docservice_http_requests_total", upload_201)] == 1
    assert (
        values[
            ("docservice_http_requests_total", (("method", "GET"), ("route", "unmatched"), ("status", "404")))
        ]
        == 1
    )
    assert values[("process_resident_memory_bytes", ())] > 10_000_000
    assert values[("process_open_fds", ())] > 0
    assert "docservice_http_request_duration_seconds" in families and "docservice_http_errors" in families


# -- users and tokens -------------------------------------------------------------------


def test_register_and_login(client: TestClient) -> None:
    response = client.post("/register", json={"email": "Ada@Example.test", "password": "pw-123456"})
    assert response.status_code == 201
    assert response.json()["email"] == "ada@example.test" and len(response.json()["id"]) == 32
    response = client.post("/login", json={"email": "ada@example.test", "password": "pw-123456"})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600 and body["access_token"]


def test_register_twice_conflicts(client: TestClient) -> None:
    credentials = {"email": "ada@example.test", "password": "pw-123456"}
    assert client.post("/register", json=credentials).status_code == 201
    again = {"email": "ADA@example.test", "password": "another-pw"}
    assert client.post("/register", json=again).status_code == 409


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-email", "password": "pw-123456"},
        {"email": "ada@example.test", "password": "short"},
        {"email": "ada@example.test"},
        {"email": "a" * 300 + "@example.test", "password": "pw-123456"},
    ],
)
def test_register_rejects_invalid_input(client: TestClient, body: dict[str, str]) -> None:
    assert client.post("/register", json=body).status_code == 422


def test_login_rejects_bad_credentials(client: TestClient) -> None:
    client.post("/register", json={"email": "ada@example.test", "password": "pw-123456"})
    for body in (
        {"email": "ada@example.test", "password": "wrong-password"},
        {"email": "nobody@example.test", "password": "pw-123456"},
    ):
        response = client.post("/login", json=body)
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("authorization", [None, "Bearer nope", "Basic YTpi", "Bearer "])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/documents"),
        ("POST", "/documents"),
        ("GET", "/documents/abc"),
        ("GET", "/documents/abc/content"),
        ("GET", "/documents/abc/stream"),
        ("DELETE", "/documents/abc"),
    ],
)
def test_document_routes_require_a_token(
    client: TestClient, method: str, path: str, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = client.request(method, path, headers=headers)
    assert response.status_code == 401


def test_expired_tokens_are_refused(settings: ApiSettings) -> None:
    with TestClient(create_app(dataclasses.replace(settings, token_ttl=-1))) as client:
        headers = auth_headers(client)
        assert client.get("/documents", headers=headers).status_code == 401


# -- documents ---------------------------------------------------------------------------


def test_upload_get_download_delete(client: TestClient) -> None:
    headers = auth_headers(client)
    content = os.urandom(300_000)
    response = upload(
        client, headers, content, filename="report.bin", content_type="application/pdf", title="Q3"
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "pending" and body["size"] == len(content)
    assert body["sha256"] == hashlib.sha256(content).hexdigest()
    assert (body["title"], body["filename"], body["content_type"]) == ("Q3", "report.bin", "application/pdf")

    doc = client.get(f"/documents/{body['id']}", headers=headers).json()
    assert doc["status"] == "pending" and doc["result"] is None and doc["attempts"] == 0
    assert doc["created_at"].endswith("Z") or doc["created_at"].endswith("+00:00")

    download = client.get(f"/documents/{body['id']}/content", headers=headers)
    assert download.status_code == 200 and download.content == content
    assert download.headers["content-type"] == "application/pdf"
    assert download.headers["content-length"] == str(len(content))
    assert download.headers["x-content-sha256"] == body["sha256"]
    assert 'filename="report.bin"' in download.headers["content-disposition"]

    assert client.delete(f"/documents/{body['id']}", headers=headers).status_code == 204
    assert client.get(f"/documents/{body['id']}", headers=headers).status_code == 404
    assert client.get(f"/documents/{body['id']}/content", headers=headers).status_code == 404
    assert client.delete(f"/documents/{body['id']}", headers=headers).status_code == 404
    stored = [p for p in Path(client.app.state.storage.root).rglob("*") if p.is_file()]  # type: ignore[attr-defined]
    assert stored == []


def test_a_document_streams_its_first_words_as_server_sent_events(client: TestClient) -> None:
    headers = auth_headers(client)
    words = [f"word{i}" for i in range(12)]
    doc_id = upload(client, headers, " ".join(words).encode()).json()["id"]
    response = client.get(f"/documents/{doc_id}/stream", headers=headers)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-store"
    events = response.text.split("\n\n")
    assert events[:-2] == [f'data: {{"token": "{word}"}}' for word in words[:8]]
    assert events[-2:] == ["event: done\ndata: {}", ""]


def test_users_only_see_their_own_documents(client: TestClient) -> None:
    alice, bob = auth_headers(client), auth_headers(client)
    doc_id = upload(client, alice).json()["id"]
    for method, path in (
        ("GET", f"/documents/{doc_id}"),
        ("GET", f"/documents/{doc_id}/content"),
        ("GET", f"/documents/{doc_id}/stream"),
        ("DELETE", f"/documents/{doc_id}"),
    ):
        assert client.request(method, path, headers=bob).status_code == 404
    assert client.get("/documents", headers=bob).json()["total"] == 0
    assert client.get(f"/documents/{doc_id}", headers=alice).status_code == 200


def test_listing_is_paginated(client: TestClient) -> None:
    headers = auth_headers(client)
    ids = [upload(client, headers, title=f"doc {i}").json()["id"] for i in range(5)]
    page = client.get("/documents", headers=headers, params={"limit": 2, "offset": 1}).json()
    assert (page["total"], page["limit"], page["offset"]) == (5, 2, 1)
    assert len(page["items"]) == 2 and {item["id"] for item in page["items"]} <= set(ids)
    everything = client.get("/documents", headers=headers).json()
    assert sorted(item["id"] for item in everything["items"]) == sorted(ids)
    for params in ({"limit": 0}, {"limit": 101}, {"offset": -1}, {"limit": "x"}):
        assert client.get("/documents", headers=headers, params=params).status_code == 422


def test_title_defaults_to_the_filename_and_names_are_sanitised(client: TestClient) -> None:
    headers = auth_headers(client)
    body = upload(client, headers, filename="../../etc/passwd", content_type="bogus type").json()
    assert body["filename"] == "passwd" and body["title"] == "passwd"
    assert body["content_type"] == "application/octet-stream"


def test_an_empty_file_is_a_document(client: TestClient) -> None:
    body = upload(client, auth_headers(client), b"").json()
    assert body["size"] == 0 and body["sha256"] == hashlib.sha256(b"").hexdigest()


def test_too_large_uploads_are_refused_and_leave_nothing(client: TestClient, settings: ApiSettings) -> None:
    headers = auth_headers(client)
    response = upload(client, headers, b"x" * (settings.max_upload_bytes + 1))
    assert response.status_code == 413
    assert list((settings.storage_dir / "tmp").iterdir()) == []
    assert upload(client, headers, b"x" * settings.max_upload_bytes).status_code == 201


def test_uploads_beyond_the_drain_limit_are_cut_short(
    client: TestClient, settings: ApiSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api, "DRAIN_LIMIT", 10)
    response = upload(client, auth_headers(client), b"x" * (3 * settings.max_upload_bytes))
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("application/json", b"{}", 415),
        ("multipart/form-data", b"", 415),  # no boundary
        ("multipart/form-data; boundary=XyZ", b"garbage without boundaries", 400),
        (
            "multipart/form-data; boundary=XyZ",
            b'--XyZ\r\nContent-Disposition: form-data; name="title"\r\n\r\nno file\r\n--XyZ--\r\n',
            422,
        ),
        (
            "multipart/form-data; boundary=XyZ",
            b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\ncut off',
            422,
        ),
    ],
)
def test_malformed_uploads(client: TestClient, content_type: str, body: bytes, expected: int) -> None:
    headers = {**auth_headers(client), "Content-Type": content_type}
    response = client.post("/documents", headers=headers, content=body)
    assert response.status_code == expected, response.text


def _multipart(*parts: tuple[str, str | None, bytes]) -> bytes:
    chunks = []
    for name, filename, value in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        chunks.append(f"--B\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n")
    return b"".join(chunks) + b"--B--\r\n"


def test_multipart_edge_cases(client: TestClient) -> None:
    headers = {**auth_headers(client), "Content-Type": "multipart/form-data; boundary=B"}
    two_files = _multipart(("file", "a", b"1"), ("file", "b", b"2"))
    assert client.post("/documents", headers=headers, content=two_files).status_code == 422
    long_title = _multipart(("title", None, b"t" * 1000), ("file", "a", b"1"))
    assert client.post("/documents", headers=headers, content=long_title).status_code == 422
    title_201 = _multipart(("title", None, "é".encode() * 201), ("file", "a", b"1"))
    assert client.post("/documents", headers=headers, content=title_201).status_code == 422
    extra_field = _multipart(("comment", None, b"ignored"), ("file", None, b"1"), ("title", None, b" T "))
    response = client.post("/documents", headers=headers, content=extra_field)
    assert response.status_code == 201
    assert (response.json()["title"], response.json()["filename"]) == ("T", None)
    download = client.get(f"/documents/{response.json()['id']}/content", headers=headers)
    assert download.headers["content-disposition"] == "attachment"


def test_unicode_filenames_are_encoded_for_download(client: TestClient) -> None:
    headers = auth_headers(client)
    doc_id = upload(client, headers, filename="résumé.txt").json()["id"]
    disposition = client.get(f"/documents/{doc_id}/content", headers=headers).headers["content-disposition"]
    assert "filename*=UTF-8''r%C3%A9sum%C3%A9.txt" in disposition


def test_fail_uploads_switch(settings: ApiSettings) -> None:
    with TestClient(create_app(dataclasses.replace(settings, fail_uploads=True))) as client:
        response = upload(client, auth_headers(client))
    assert response.status_code == 500
    assert "DOCSERVICE_FAIL_UPLOADS" in response.json()["detail"]


def test_slow_route_switch(settings: ApiSettings) -> None:
    slowed = dataclasses.replace(settings, slow_route="GET /health", slow_seconds=0.3)
    with TestClient(create_app(slowed)) as client:
        started = time.perf_counter()
        assert client.get("/health").status_code == 200
        slow = time.perf_counter() - started
        started = time.perf_counter()
        assert client.get("/documents", headers=auth_headers(client)).status_code == 200
        fast = time.perf_counter() - started
    assert slow >= 0.3 > fast


def test_a_failed_insert_removes_the_stored_file(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    headers = auth_headers(client)
    state = client.app.state  # type: ignore[attr-defined]

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database is locked")

    monkeypatch.setattr(state.db, "create_document", broken)
    with pytest.raises(RuntimeError):
        upload(client, headers)
    assert [p for p in Path(state.storage.root).rglob("*") if p.is_file()] == []


def test_a_file_vanishing_before_download_is_a_404(client: TestClient) -> None:
    headers = auth_headers(client)
    doc_id = upload(client, headers).json()["id"]
    state = client.app.state  # type: ignore[attr-defined]
    state.storage.delete(state.db.get_document(doc_id).storage_key)
    assert client.get(f"/documents/{doc_id}/content", headers=headers).status_code == 404


def test_processed_documents_show_their_result(client: TestClient, worker_settings: WorkerSettings) -> None:
    headers = auth_headers(client)
    doc_id = upload(client, headers, b"the cat and the dog\n").json()["id"]
    assert Worker(worker_settings).run_once()
    doc = client.get(f"/documents/{doc_id}", headers=headers).json()
    assert doc["status"] == "processed" and doc["attempts"] == 1 and doc["error"] is None
    assert doc["result"]["words"] == 5 and doc["result"]["enrichment"]["language"] == "en"


# -- command line and OpenAPI -----------------------------------------------------------


def test_parse_args_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCSERVICE_PORT", "9123")
    monkeypatch.setenv("DOCSERVICE_FAIL_UPLOADS", "1")
    monkeypatch.setenv("DOCSERVICE_NEVER_READY", "true")
    monkeypatch.setenv("DOCSERVICE_SLOW_ROUTE", "GET /documents")
    settings = api.parse_args(["--db", "x.db", "--max-upload-bytes", "10"])
    assert settings.slow_route == "GET /documents" and settings.slow_seconds == 0.5
    assert (settings.port, settings.db_path, settings.max_upload_bytes) == (9123, Path("x.db"), 10)
    assert settings.fail_uploads and settings.never_ready
    monkeypatch.setenv("DOCSERVICE_FAIL_UPLOADS", "0")
    monkeypatch.delenv("DOCSERVICE_NEVER_READY")
    settings = api.parse_args([])
    assert not settings.fail_uploads and not settings.never_ready and settings.port == 9123


def test_main_runs_uvicorn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import signal

    import uvicorn

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append(kwargs))
    monkeypatch.setenv("DOCSERVICE_FAIL_UPLOADS", "1")
    monkeypatch.setenv("DOCSERVICE_NEVER_READY", "1")
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        argv = ["--port", "0", "--db", str(tmp_path / "a.db"), "--storage", str(tmp_path / "s")]
        assert api.main(argv) == 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    assert calls and calls[0]["port"] == 0 and calls[0]["host"] == "127.0.0.1"


def test_committed_openapi_matches_the_routes(tmp_path: Path) -> None:
    from docservice import openapi_export

    committed = json.loads((HERE.parent / "openapi.json").read_text())
    current = openapi_export.openapi_document()
    routes = {path: sorted(ops) for path, ops in current["paths"].items()}
    assert {path: sorted(ops) for path, ops in committed["paths"].items()} == routes, (
        "openapi.json is stale: run `make openapi` in examples/docservice"
    )
    target = tmp_path / "openapi.json"
    assert openapi_export.main([str(target)]) == 0
    assert json.loads(target.read_text())["paths"].keys() == routes.keys()
