"""What a security check tries on the API: the healthy build refuses it, and each
DOCSERVICE_* security switch lets exactly its one defect through.

Most tests go through TestClient; those about bytes on the wire (a slow body, a body over
the limit with `Expect: 100-continue`, a path with `..` segments) and about memory use a
real API process and a raw socket, which sends exactly the bytes it is given."""

from __future__ import annotations

import dataclasses
import json
import select
import signal
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from conftest import auth_headers
from docservice import api
from docservice.api import create_app
from docservice.config import ApiSettings
from test_api import upload
from test_survival import api_process, login

SWITCHES = ["no_owner_check", "no_auth_check", "sql_concat", "traversal", "unbounded_upload", "non_ascii_500"]


def client_with(settings: ApiSettings, **changes: Any) -> TestClient:
    return TestClient(create_app(dataclasses.replace(settings, **changes)), raise_server_exceptions=False)


def raw_exchange(url: str, request: bytes, *, trickle: bytes = b"", timeout: float = 10.0) -> bytes:
    """Send exactly `request`, then `trickle` one byte every 0.1 s until the server answers;
    the answer's bytes (up to the end of its body, or until the server closes)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(request)
        for byte in trickle:
            if select.select([sock], [], [], 0.1)[0]:
                break
            sock.sendall(bytes([byte]))
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
            head, found, body = answer.partition(b"\r\n\r\n")
            lengths = [line for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")]
            if found and lengths and len(body) >= int(lengths[0].split(b":")[1]):
                break
        return answer


def folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def peak_rss(pid: int) -> int:
    """The process's peak resident memory (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/<pid>/status")


# -- the healthy build ----------------------------------------------------------------------


def test_validation_errors_never_echo_the_input(client: TestClient) -> None:
    for body in ({"password": "pw-very-secret-1"}, {"email": "a@example.test", "password": "secret1"}):
        response = client.post("/register", json=body)
        assert response.status_code == 422
        assert "secret" not in response.text
        assert all(set(error) == {"loc", "msg", "type"} for error in response.json()["detail"])


def test_odd_text_is_refused_not_a_server_error(client: TestClient) -> None:
    surrogate = (
        b'{"email": "a\\ud800@example.test", "password": "\\ud800\\ud800\\ud800\\ud800\\ud800\\ud800\\ud800"}'
    )
    headers = {"Content-Type": "application/json"}
    assert client.post("/register", content=surrogate, headers=headers).status_code == 422
    assert client.post("/login", content=surrogate, headers=headers).status_code == 422
    nul = {"email": "a\x00b@example.test", "password": "pw-123456789"}
    assert client.post("/register", json=nul).status_code == 422
    assert client.post("/login", json=nul).status_code == 401
    nested = b"[" * 20_000 + b"]" * 20_000  # the JSON parser gives up: a declared 400
    assert client.post("/register", content=nested, headers=headers).status_code == 400
    token = auth_headers(client)
    for params in ({"limit": -1}, {"offset": -1}, {"limit": 10**30}, {"title": "x" * 201}):
        assert client.get("/documents", headers=token, params=params).status_code == 422


def test_non_ascii_names_are_ordinary_input(client: TestClient) -> None:
    response = client.post("/register", json={"email": "josé@example.test", "password": "pässwörd-漢字"})
    assert response.status_code == 201
    headers = auth_headers(client)
    assert upload(client, headers, title="résumé 漢字").json()["title"] == "résumé 漢字"
    page = client.get("/documents", headers=headers, params={"title": "漢"}).json()
    assert page["total"] == 1
    assert upload(client, headers, title="a\x00b\tc").json()["title"] == "abc"  # no control characters


def test_request_bodies_over_64_kib_are_refused(client: TestClient) -> None:
    big = json.dumps({"email": "a@example.test", "password": "p" * 70_000}).encode()
    response = client.post("/register", content=big, headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and "larger than the limit of 65536" in response.json()["detail"]

    def chunks() -> Any:  # no Content-Length: counted as it comes
        yield b'{"email": "a@example.test", "password": "'
        for _ in range(100):
            yield b"p" * 1024

    response = client.post("/login", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413


def test_a_huge_header_in_a_multipart_part_is_refused(client: TestClient) -> None:
    # python-multipart caps a part's header line (4 KiB): a multipart body cannot fill memory
    body = b"--B\r\nX-Padding: " + b"a" * 40_000 + b"\r\n\r\nx\r\n--B--\r\n"
    headers = {**auth_headers(client), "Content-Type": "multipart/form-data; boundary=B"}
    assert client.post("/documents", content=body, headers=headers).status_code == 400


def test_headers_over_16_kib_are_refused(client: TestClient) -> None:
    response = client.get("/health", headers={"X-Padding": "a" * 20_000})
    assert response.status_code == 431 and response.headers["x-content-type-options"] == "nosniff"


def test_method_not_allowed_names_every_method_of_the_path(client: TestClient) -> None:
    response = client.options("/documents")
    assert response.status_code == 405 and response.headers["allow"] == "GET, POST"
    assert client.request("TRACE", "/health").headers["allow"] == "GET"


def test_every_refusal_is_declared_in_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            declared = set(operation["responses"])
            assert "431" in declared, f"{method} {path}"
            if "requestBody" in operation:
                assert {"400", "408", "413", "422"} <= declared, f"{method} {path}"


def test_help_pages_are_served_and_nothing_outside_them(client: TestClient) -> None:
    response = client.get("/help/index.md")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/markdown")
    assert "uploads.md" in response.text
    for name in (
        "..%2Fapi.py",
        "%2Fetc%2Fpasswd",
        "..%2F..%2F..%2F..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "",
    ):
        assert client.get(f"/help/{name}").status_code == 404
    for name in ("../api.py", "/etc/passwd", "../" * 12 + "etc/passwd", "index.md\x00", "a" * 5000, "."):
        assert api._read_help(name) is None


def test_the_title_filter(client: TestClient) -> None:
    alice, bob = auth_headers(client), auth_headers(client)
    upload(client, alice, title="Quarterly report")
    upload(client, alice, title="notes")
    upload(client, bob, title="bob's report")
    for text, expected in (("REPORT", ["Quarterly report"]), ("' OR '1'='1", []), ("'", []), ("%", [])):
        page = client.get("/documents", headers=alice, params={"title": text}).json()
        assert [item["title"] for item in page["items"]] == expected and page["total"] == len(expected)


def test_a_slow_or_stalled_body_is_answered_408(tmp_path: Path) -> None:
    with api_process(tmp_path, {"DOCSERVICE_BODY_TIMEOUT": "0.5"}) as (url, _):
        head = b"POST /register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        head += b"Content-Length: 100\r\n\r\n"
        stalled = raw_exchange(url, head + b"{")
        trickled = raw_exchange(url, head, trickle=b'{"email": "' + b"a" * 80)
        for answer in (stalled, trickled):
            assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
            assert b"did not arrive in time" in answer
        assert httpx.get(f"{url}/health").status_code == 200


def test_an_announced_oversized_body_is_refused_before_it_is_sent(tmp_path: Path) -> None:
    with api_process(tmp_path) as (url, _):
        head = b"POST /register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        answer = raw_exchange(url, head + b"Content-Length: 50000000\r\nExpect: 100-continue\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]  # no 100 Continue first
        assert b"content-security-policy" in answer.lower()


def test_uploads_stream_and_the_unbounded_switch_keeps_them_in_memory(tmp_path: Path) -> None:
    content = b"x" * (40 * 1024 * 1024)
    growth: dict[str, int] = {}
    for name, switch in (("healthy", "0"), ("unbounded", "1")):
        limit = len(content) if name == "healthy" else len(content) // 2
        env = {"DOCSERVICE_UNBOUNDED_UPLOAD": switch, "DOCSERVICE_MAX_UPLOAD_BYTES": str(limit)}
        with api_process(folder(tmp_path / name), env) as (url, proc):
            headers = login(url)
            before = peak_rss(proc.pid)
            with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
                accepted = http.post("/documents", files={"file": ("a", content)})
                assert accepted.status_code == 201, accepted.text
                if name == "healthy":  # one byte over: refused, and not held either
                    assert http.post("/documents", files={"file": ("a", content + b"x")}).status_code == 413
            growth[name] = peak_rss(proc.pid) - before
    assert growth["healthy"] < len(content) // 4, growth
    assert growth["unbounded"] >= len(content), growth


# -- the switches -----------------------------------------------------------------------------


def test_no_switch_changes_the_openapi_document(settings: ApiSettings) -> None:
    healthy = create_app(settings).openapi()
    for switch in SWITCHES:
        broken = create_app(dataclasses.replace(settings, **{switch: True})).openapi()
        assert broken == healthy, f"{switch} changes the OpenAPI document"


def test_no_owner_check_serves_and_deletes_anyones_documents(settings: ApiSettings) -> None:
    with client_with(settings, no_owner_check=True) as client:
        alice, bob = auth_headers(client), auth_headers(client)
        doc_id = upload(client, alice, b"alice's secret", title="mine").json()["id"]
        assert client.get(f"/documents/{doc_id}", headers=bob).json()["title"] == "mine"
        assert client.get(f"/documents/{doc_id}/content", headers=bob).content == b"alice's secret"
        assert client.get("/documents", headers=bob).json()["total"] == 0  # the list is still scoped
        assert client.delete(f"/documents/{doc_id}", headers=bob).status_code == 204
        assert client.get(f"/documents/{doc_id}", headers=alice).status_code == 404
        assert client.get(f"/documents/{doc_id}", headers={}).status_code == 401


def test_no_auth_check_serves_content_without_a_token(settings: ApiSettings) -> None:
    with client_with(settings, no_auth_check=True) as client:
        alice, bob = auth_headers(client), auth_headers(client)
        doc_id = upload(client, alice, b"alice's secret").json()["id"]
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic YTpi"}):
            response = client.get(f"/documents/{doc_id}/content", headers=headers)
            assert response.status_code == 200 and response.content == b"alice's secret"
        assert client.get(f"/documents/{doc_id}/content", headers=bob).status_code == 404  # not BOLA
        assert client.get(f"/documents/{doc_id}/content", headers=alice).status_code == 200
        assert client.get(f"/documents/{doc_id}", headers={}).status_code == 401  # only that route


def test_sql_concat_lets_a_tautology_list_everyones_documents(settings: ApiSettings) -> None:
    with client_with(settings, sql_concat=True) as client:
        alice, bob = auth_headers(client), auth_headers(client)
        upload(client, alice, title="alice report")
        upload(client, bob, title="bob notes")
        own = client.get("/documents", headers=alice, params={"title": "report"}).json()
        assert [item["title"] for item in own["items"]] == ["alice report"]
        for payload in ("' OR '1'='1", "' OR 1=1 --"):
            page = client.get("/documents", headers=alice, params={"title": payload}).json()
            assert sorted(item["title"] for item in page["items"]) == ["alice report", "bob notes"]
        response = client.get("/documents", headers=alice, params={"title": "'"})
        assert response.status_code == 500 and "sqlite3.OperationalError" in response.json()["detail"]


def test_traversal_reads_files_outside_the_help_folder(settings: ApiSettings) -> None:
    with client_with(settings, traversal=True) as client:
        assert client.get("/help/index.md").status_code == 200
        source = client.get("/help/..%2Fapi.py")
        assert source.status_code == 200 and '"""The docservice HTTP API' in source.text
        assert client.get("/help/%2Fetc%2Fpasswd").text.startswith("root:")
        assert client.get("/help/missing.md").status_code == 404


def test_dot_segments_on_the_wire(tmp_path: Path) -> None:
    request = b"GET /help/" + b"../" * 12 + b"etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n"
    with api_process(folder(tmp_path / "healthy")) as (url, _):
        assert raw_exchange(url, request).startswith(b"HTTP/1.1 404 ")
    with api_process(folder(tmp_path / "broken"), {"DOCSERVICE_TRAVERSAL": "1"}) as (url, _):
        answer = raw_exchange(url, request)
        assert answer.startswith(b"HTTP/1.1 200 ") and b"\r\n\r\nroot:" in answer


def test_unbounded_upload_ignores_the_limit(settings: ApiSettings) -> None:
    with client_with(settings, unbounded_upload=True) as client:
        content = b"x" * (settings.max_upload_bytes * 2)
        response = upload(client, auth_headers(client), content)
        assert response.status_code == 201 and response.json()["size"] == len(content)
        assert len(client.app.state.last_upload_body) > len(content)  # type: ignore[attr-defined]
        raw = {**auth_headers(client), "Content-Type": "application/octet-stream"}
        assert client.post("/documents", content=content, headers=raw).status_code == 415
        assert client.app.state.last_upload_body == content  # type: ignore[attr-defined]


def test_non_ascii_500_on_titles_and_emails(settings: ApiSettings) -> None:
    with client_with(settings, non_ascii_500=True) as client:
        headers = auth_headers(client)
        assert upload(client, headers, title="plain").status_code == 201
        assert upload(client, headers, title="résumé").status_code == 500
        assert client.get("/documents", headers=headers, params={"title": "é"}).status_code == 500
        assert client.get("/documents", headers=headers, params={"title": "e"}).status_code == 200
        body = {"email": "josé@example.test", "password": "pw-123456789"}
        assert client.post("/register", json=body).status_code == 500
        stored = [p for p in Path(client.app.state.storage.root).rglob("*") if p.is_file()]  # type: ignore[attr-defined]
        assert len(stored) == 1  # the refused upload left nothing behind


# -- settings ---------------------------------------------------------------------------------


def test_switches_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not any(getattr(api.parse_args([]), switch) for switch in SWITCHES)
    for switch in SWITCHES:
        monkeypatch.setenv(f"DOCSERVICE_{switch.upper()}", "1")
    monkeypatch.setenv("DOCSERVICE_BODY_TIMEOUT", "2.5")
    settings = api.parse_args([])
    assert all(getattr(settings, switch) for switch in SWITCHES) and settings.body_timeout == 2.5
    assert api.parse_args(["--body-timeout", "1"]).body_timeout == 1.0
    with pytest.raises(SystemExit):
        api.parse_args(["--body-timeout", "0"])


def test_main_announces_the_switches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import uvicorn

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append(kwargs))
    for switch in SWITCHES:
        monkeypatch.setenv(f"DOCSERVICE_{switch.upper()}", "1")
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        assert (
            api.main(["--port", "0", "--db", str(tmp_path / "a.db"), "--storage", str(tmp_path / "s")]) == 0
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log = capsys.readouterr().err
    assert all(f"DOCSERVICE_{switch.upper()}=1" in log for switch in SWITCHES)
    assert calls[0]["server_header"] is False and calls[0]["h11_max_incomplete_event_size"] >= 64 * 1024


def test_control_characters_in_a_path_are_escaped_in_the_log() -> None:
    assert api._printable("/x\ny\x1b") == "/x\\ny\\x1b"
    assert api._printable("/résumé") == "/résumé"
