"""The journeys check against a real HTTP service (journeys_server.py)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import httpx
import yaml
from journeys_support import Run

from gonogo.checks.journeys import JourneysSettings
from gonogo.journey.engine import Engine

FULL_JOURNEY = """
journeys:
  docs:
    iterations: 4
    concurrency: 2
    variables:
      email: "user-{iteration}-{uuid}@example.test"
      password: "s3cret-{uuid}"
    steps:
      - name: register
        request: {method: post, path: /register, json: {email: "{email}", password: "{password}"}}
        expect: {status: 201, json: {"$.email": "{email}"}}
        extract: {user_id: "json:$.id", user_url: "header:Location"}
      - name: profile
        request: {path: "{user_url}"}
        expect: {json: {"$.id": "{user_id}", "$.email": {matches: "^user-[0-9]+-"}}}
      - name: login
        request: {method: POST, path: /login, json: {email: "{email}", password: "{password}"}}
        expect: {status: [200, 201], json: {"$.token_type": bearer, "$.access_token": {exists: true}}}
        extract: {token: "json:$.access_token"}
      - name: me
        request: {path: /me}
        expect: {json: {"$.email": "{email}", "$.id": "{user_id}"}}
      - name: upload
        request:
          method: POST
          path: /documents
          headers: {Authorization: "Bearer {token}"}
          multipart:
            file: {path: sample.txt, content_type: text/plain}
            title: "report {iteration}"
            delay: 0.3
        expect: {status: 201, json: {"$.title": "report {iteration}", "$.filename": sample.txt}}
        extract: {doc_id: "json:$.id"}
      - name: wait_processed
        request: {path: "/documents/{doc_id}", headers: {Authorization: "Bearer {token}"}}
        poll: {until: {"$.status": processed}, interval: 50ms, timeout: 10s}
        expect: {json: {"$.id": "{doc_id}"}}
      - name: download
        request: {path: "/documents/{doc_id}/content", headers: {Authorization: "Bearer {token}"}}
        expect: {status: 200, body_sha256_of: upload, headers: {content-type: application/octet-stream}}
"""


def test_a_full_journey_passes_with_variables_flowing_between_steps(run_check: Run, tmp_path: Path) -> None:
    (tmp_path / "sample.txt").write_text("hello, journeys\n" * 100)

    outcome, ctx = run_check(FULL_JOURNEY)

    assert outcome.status == "completed", outcome
    assert outcome.details == []
    assert "4/4 iterations passed" in outcome.message
    assert ctx.value("success_rate") == 1.0
    assert ctx.value("iterations") == 4
    assert ctx.value("failures") == 0
    assert ctx.value("docs.success_rate") == 1.0
    assert ctx.value("docs.iterations") == 4
    for step in ("register", "profile", "login", "me", "upload", "wait_processed", "download"):
        assert ctx.value(f"docs.{step}.success_rate") == 1.0
        assert ctx.value(f"docs.{step}.iterations") == 4
        p50, p95, p99, top = (ctx.value(f"docs.{step}.latency.{s}") for s in ("p50", "p95", "p99", "max"))
        assert 0 < p50 <= p95 <= p99 <= top < 10
        assert ctx.metrics[f"docs.{step}.latency.p95"].dimension == "performance"
        assert ctx.metrics[f"docs.{step}.latency.p95"].unit == "seconds"
    # the poll step waited until the document was processed (0.3 s after the upload)
    assert ctx.value("docs.wait_processed.latency.p50") >= 0.25
    assert ctx.value("docs.duration.p50") >= ctx.value("docs.wait_processed.latency.p50")
    assert ctx.metrics["docs.success_rate"].dimension == "tests"
    assert ctx.metrics["docs.success_rate"].unit == "ratio"

    failures = json.loads(ctx.artifact("journey-failures.json"))
    assert failures["failures"] == [] and failures["iterations"] == 4
    evidence = json.loads(ctx.artifact("journey-docs.json"))
    assert [r["iteration"] for r in evidence["results"]] == [1, 2, 3, 4]
    assert all(r["ok"] and len(r["steps"]) == 7 for r in evidence["results"])
    # each step's response shape, for `gonogo compare`: keys and types, never the values
    shapes = {step["step"]: step["shape"] for step in evidence["results"][0]["steps"]}
    assert shapes["register"] == '{"email":string,"id":number}'
    assert shapes["login"] == '{"access_token":string,"token_type":string}'
    assert shapes["download"] == "application/octet-stream"
    assert "@example.test" not in json.dumps(evidence)
    assert ctx.metrics["docs.success_rate"].artifact is not None
    assert ctx.metrics["docs.success_rate"].artifact.name == "journey-docs.json"
    assert ctx.metrics["success_rate"].artifact is not None
    assert ctx.metrics["success_rate"].artifact.name == "journey-failures.json"
    assert "docs: 4/4 iterations, 0 failed" in ctx.progress_messages


def test_a_server_error_fails_the_step_with_status_and_excerpt(run_check: Run) -> None:
    outcome, ctx = run_check(
        """
        journeys:
          broken:
            iterations: 3
            steps:
              - {name: health, request: {path: /health}}
              - {name: boom, request: {path: /error}, expect: {status: 200}}
              - {name: never, request: {path: /health}}
        """
    )

    assert outcome.status == "completed"
    assert ctx.value("success_rate") == 0.0
    assert ctx.value("broken.success_rate") == 0.0
    assert ctx.value("broken.failures") == 3
    assert ctx.value("broken.health.success_rate") == 1.0
    assert ctx.value("broken.boom.success_rate") == 0.0
    assert ctx.value("broken.never.iterations") == 0
    # nothing passed, so nothing to time: not measured, never zero
    assert "broken.never.success_rate" not in ctx.metrics
    assert "broken.boom.latency.p50" not in ctx.metrics
    assert "broken.duration.p50" not in ctx.metrics

    failures = json.loads(ctx.artifact("journey-failures.json"))["failures"]
    assert len(failures) == 3
    first = failures[0]
    assert first["journey"] == "broken" and first["step"] == "boom" and first["status"] == 500
    assert first["method"] == "GET" and first["url"].endswith("/error")
    assert first["message"] == "expected status 200, got 500"
    steps = json.loads(ctx.artifact("journey-broken.json"))["results"][0]["steps"]
    assert [step["shape"] for step in steps] == ['{"ok":boolean}', "text/plain"]
    assert "the database is on fire" in first["response_excerpt"]
    assert len(outcome.details) == 3
    assert "broken #1 step boom" in outcome.details[0] and "500" in outcome.details[0]


def test_polling_gives_up_at_its_timeout(run_check: Run) -> None:
    started = time.monotonic()
    outcome, ctx = run_check(
        """
        journeys:
          slow_processing:
            steps:
              - name: register
                request: {method: POST, path: /register, json: {email: "p-{uuid}", password: x}}
              - name: login
                request: {method: POST, path: /login, json: {email: "p-{uuid}", password: x}}
                extract: {token: "json:$.access_token"}
              - name: upload
                request:
                  method: POST
                  path: /documents
                  headers: {Authorization: "Bearer {token}"}
                  multipart: {file: {generate: 1KiB}, title: t, delay: 60}
                extract: {doc_id: "json:$.id"}
              - name: wait
                request: {path: "/documents/{doc_id}", headers: {Authorization: "Bearer {token}"}}
                poll: {until: {"$.status": processed}, interval: 100ms, timeout: 700ms}
        """
    )
    elapsed = time.monotonic() - started

    assert outcome.status == "completed"
    assert ctx.value("slow_processing.success_rate") == 0.0
    failure = json.loads(ctx.artifact("journey-failures.json"))["failures"][0]
    assert failure["step"] == "wait"
    assert failure["message"].startswith("the poll condition did not hold within 700.0 ms")
    assert '$.status is "processing", expected "processed"' in failure["message"]
    assert failure["status"] == 200 and '"processing"' in failure["response_excerpt"]
    assert failure["attempts"] >= 4
    assert 0.7 <= elapsed < 5


def test_a_corrupted_download_fails_the_checksum_comparison(run_check: Run) -> None:
    outcome, ctx = run_check(
        """
        journeys:
          corrupt:
            steps:
              - name: register
                request: {method: POST, path: /register, json: {email: "c-{uuid}", password: x}}
              - name: login
                request: {method: POST, path: /login, json: {email: "c-{uuid}", password: x}}
                extract: {token: "json:$.access_token"}
              - name: upload
                request:
                  method: POST
                  path: /documents
                  headers: {Authorization: "Bearer {token}"}
                  multipart: {file: {generate: 100KB}, title: t, delay: 0}
                extract: {doc_id: "json:$.id"}
              - name: intact
                request: {path: "/documents/{doc_id}/content", headers: {Authorization: "Bearer {token}"}}
                expect: {body_sha256_of: upload.file}
              - name: corrupted
                request: {path: "/documents/{doc_id}/corrupt", headers: {Authorization: "Bearer {token}"}}
                expect: {body_sha256_of: upload}
        """
    )

    assert ctx.value("corrupt.intact.success_rate") == 1.0
    assert ctx.value("corrupt.corrupted.success_rate") == 0.0
    failure = json.loads(ctx.artifact("journey-failures.json"))["failures"][0]
    assert failure["step"] == "corrupted" and failure["status"] == 200
    assert "differs from what step upload sent" in failure["message"]
    assert "100000 bytes" in failure["message"]
    assert failure["response_excerpt"].startswith("<100000 bytes of binary content")
    assert outcome.status == "completed"


def test_a_50_mb_generated_upload_streams_and_its_checksum_verifies(run_check: Run) -> None:
    outcome, ctx = run_check(
        """
        request_timeout: 60s
        journeys:
          big:
            steps:
              - name: register
                request: {method: POST, path: /register, json: {email: "b-{uuid}", password: x}}
              - name: login
                request: {method: POST, path: /login, json: {email: "b-{uuid}", password: x}}
                extract: {token: "json:$.access_token"}
              - name: upload
                request:
                  method: POST
                  path: /documents
                  headers: {Authorization: "Bearer {token}"}
                  multipart:
                    file: {generate: 50MB, filename: "big-{iteration}.bin"}
                    title: big
                    delay: 0
                expect: {status: 201, json: {"$.size": 50000000, "$.filename": big-1.bin}}
                extract: {doc_id: "json:$.id", server_sha256: "json:$.sha256"}
              - name: download
                request: {path: "/documents/{doc_id}/content", headers: {Authorization: "Bearer {token}"}}
                expect: {body_sha256_of: upload}
              - name: raw_put
                request: {method: PUT, path: "/blobs/{uuid}", body: {generate: 5MB}}
                expect: {status: 201, json: {"$.size": 5000000, "$.content_type": application/octet-stream}}
              - name: raw_get
                request: {path: "/blobs/{uuid}"}
                expect: {body_sha256_of: raw_put}
        """
    )

    assert outcome.status == "completed"
    assert outcome.details == [], outcome.details
    assert ctx.value("big.success_rate") == 1.0
    assert ctx.value("big.download.latency.max") < 30


def test_iterations_really_overlap_up_to_the_concurrency(run_check: Run, server: str) -> None:
    httpx.post(f"{server}/stats/reset")
    started = time.monotonic()
    outcome, ctx = run_check(
        """
        journeys:
          parallel:
            iterations: 8
            concurrency: 4
            steps:
              - {name: slow, request: {path: /slow, query: {ms: 400}}, expect: {json: {"$.slept": 400}}}
        """
    )
    elapsed = time.monotonic() - started
    stats = httpx.get(f"{server}/stats").json()

    assert ctx.value("parallel.success_rate") == 1.0
    assert stats["max_in_flight"] == 4
    assert elapsed < 8 * 0.4  # serially it would take 3.2 s; 4 at a time, about 0.8 s
    assert ctx.value("parallel.slow.latency.p50") >= 0.4
    assert outcome.status == "completed"


def test_query_form_headers_and_json_bodies_are_filled_in(run_check: Run) -> None:
    outcome, ctx = run_check(
        """
        headers: {X-Run: "{journey}"}
        journeys:
          echo:
            iterations: 2
            variables: {n: "{iteration}", label: "it-{iteration}"}
            steps:
              - name: query
                request: {path: "/echo?fixed=1", query: {q: "{label}", many: [a, "#{n}"], flag: true}}
                expect:
                  json: {"$.query.q": ["it-{iteration}"], "$.query.many[1]": "#{n}", "$.query.flag": ["true"],
                         "$.query.fixed": ["1"], "$.headers.x-run": echo}
              - name: form
                request: {method: POST, path: /echo, form: {a: "{label}", b: 3}}
                expect: {json: {"$.form.a": ["{label}"], "$.form.b": ["3"]}}
              - name: json
                request:
                  method: POST
                  path: /echo
                  json: {n: "{n}", text: "#{n}", literal: "{{n}}", braces: "{}"}
                expect:
                  json: {"$.json": {equals: {n: "{iteration}", text: "#{n}", literal: "{{n}}", braces: "{}"}}}
              - name: multipart_fields_only
                request: {method: POST, path: /echo, multipart: {a: "{label}"}, headers: {X-Extra: "{n}"}}
                expect: {json: {"$.form.a": ["{label}"], "$.headers.x-extra": {one_of: ["1", "2"]}}}
        """
    )

    failures = json.loads(ctx.artifact("journey-failures.json"))["failures"]
    assert failures == [], [f["message"] for f in failures]
    assert ctx.value("echo.success_rate") == 1.0
    assert outcome.status == "completed"


def test_an_unreachable_service_is_measured_not_an_error(run_check: Run) -> None:
    from journeys_support import free_port

    outcome, ctx = run_check(
        {
            "base_url": f"http://127.0.0.1:{free_port()}",
            "request_timeout": "2s",
            "journeys": {"j": {"iterations": 2, "steps": [{"name": "home", "request": {"path": "/"}}]}},
        }
    )

    assert outcome.status == "completed"
    assert ctx.value("success_rate") == 0.0
    failure = json.loads(ctx.artifact("journey-failures.json"))["failures"][0]
    assert failure["status"] is None and failure["message"].startswith("could not connect to")


def test_requests_never_leave_the_base_url(run_check: Run) -> None:
    outcome, ctx = run_check(
        """
        journeys:
          escape:
            steps:
              - name: get_url
                request: {path: /echo, query: {next: "http://example.org/steal"}}
                extract: {next: "json:$.query.next[0]"}
              - name: follow
                request: {path: "{next}"}
        """
    )

    failure = json.loads(ctx.artifact("journey-failures.json"))["failures"][0]
    assert failure["step"] == "follow"
    assert "http://example.org/steal is not under the base URL" in failure["message"]
    assert outcome.status == "completed"


def test_an_extraction_that_finds_nothing_fails_the_step(run_check: Run) -> None:
    _, ctx = run_check(
        """
        journeys:
          j:
            steps:
              - {name: health, request: {path: /health}, extract: {token: "json:$.token"}}
        """
    )

    failure = json.loads(ctx.artifact("journey-failures.json"))["failures"][0]
    assert failure["message"] == "cannot extract token (json:$.token): $.token is not in the response body"


def test_without_a_base_url_the_check_cannot_run(run_check: Run) -> None:
    outcome, ctx = run_check(
        {"journeys": {"j": {"steps": [{"name": "s", "request": {"path": "/"}}]}}},
        use_server=False,
    )

    assert outcome.status == "error"
    assert "no base URL" in outcome.message
    assert ctx.metrics == {}


def test_a_missing_file_to_upload_is_an_error_before_any_request(run_check: Run) -> None:
    outcome, ctx = run_check(
        """
        journeys:
          j:
            steps:
              - name: up
                request: {method: POST, path: /documents, multipart: {file: {path: "{plan_dir}/nope.bin"}}}
        """
    )

    assert outcome.status == "error"
    assert "nope.bin does not exist" in outcome.details[0]
    assert ctx.metrics == {}


def test_a_slow_response_times_out_at_the_step_request_timeout(run_check: Run) -> None:
    _, ctx = run_check(
        """
        journeys:
          j:
            steps:
              - {name: slow, request: {path: /slow, query: {ms: 3000}}, request_timeout: 300ms}
        """
    )

    failure = json.loads(ctx.artifact("journey-failures.json"))["failures"][0]
    assert failure["message"] == "no complete response within 300.0 ms"
    assert failure["status"] is None


def test_a_poll_whose_last_attempt_timed_out_is_a_timeout(run_check: Run) -> None:
    """Not an unmet condition: it got no response (as the C engine counts it under load)."""
    _, ctx = run_check(
        """
        journeys:
          j:
            steps:
              - name: slow
                request: {path: /slow, query: {ms: 3000}}
                poll: {until: {"$.ready": true}, interval: 50ms, timeout: 300ms}
        """
    )

    failure = json.loads(ctx.artifact("journey-failures.json"))["failures"][0]
    assert failure["kind"] == "timeout" and failure["status"] is None
    assert failure["message"] == (
        "the poll condition did not hold within 300.0 ms (1 attempt); "
        "last: no complete response within 1.00 s"  # an attempt has at least a second
    )


def test_a_variable_unknown_at_run_time_fails_the_step_clearly(run_check: Run) -> None:
    # Validation refuses such a plan; settings copied without validation reach the engine.
    valid = JourneysSettings.model_validate(
        yaml.safe_load(
            """
            journeys:
              j:
                steps:
                  - {name: login, request: {path: /health}, extract: {token: status}}
                  - {name: me, request: {path: /me, headers: {Authorization: "Bearer {token}"}}}
            """
        )
    )
    journey = valid.journeys["j"]
    login = journey.steps[0].model_copy(update={"extract": {}})
    broken = valid.model_copy(
        update={"journeys": {"j": journey.model_copy(update={"steps": [login, journey.steps[1]]})}}
    )
    outcome, ctx = run_check(broken)

    failure = json.loads(ctx.artifact("journey-failures.json"))["failures"][0]
    assert failure["step"] == "me" and failure["status"] is None
    assert failure["message"].startswith("{token} is not a variable at this point of the journey")
    assert outcome.status == "completed"


def test_auth_sends_basic_and_bearer_credentials_the_server_accepts(run_check: Run) -> None:
    outcome, ctx = run_check(
        """
        auth: {basic: [nobody, "{uuid}"]}    # the check's default: wrong, so a step that relies on it fails
        journeys:
          auth:
            iterations: 2
            variables: {email: "auth-{iteration}-{uuid}@example.test", password: "pä:ss {iteration}"}
            steps:
              - name: register
                request: {method: POST, path: /register, json: {email: "{email}", password: "{password}"}}
                expect: {status: 201}
                extract: {user_id: "json:$.id"}
              - name: basic
                request: {path: /whoami, auth: {basic: ["{email}", "{password}"]}}
                expect: {json: {"$.scheme": Basic, "$.email": "{email}", "$.id": "{user_id}"}}
              - name: login
                request: {method: POST, path: /login, json: {email: "{email}", password: "{password}"}}
                extract: {token: "json:$.access_token"}
              - name: bearer
                request: {path: /whoami, auth: {bearer: "{token}"}}
                expect: {json: {"$.scheme": Bearer, "$.id": "{user_id}"}}
              - name: header_wins_over_the_checks_auth
                request: {path: /whoami, headers: {authorization: "Bearer {token}"}}
                expect: {json: {"$.scheme": Bearer}}
              - name: the_checks_auth
                request: {path: /whoami}
                expect: {status: 401}
        """
    )

    failures = json.loads(ctx.artifact("journey-failures.json"))["failures"]
    assert failures == [], [f["message"] for f in failures]
    assert ctx.value("auth.success_rate") == 1.0
    assert outcome.status == "completed"


def test_a_wrong_password_through_auth_is_refused_by_the_server(run_check: Run) -> None:
    outcome, ctx = run_check(
        """
        journeys:
          wrong:
            variables: {email: "w-{uuid}@example.test"}
            steps:
              - name: register
                request: {method: POST, path: /register, json: {email: "{email}", password: right}}
                expect: {status: 201}
              - name: basic
                request: {path: /whoami, auth: {basic: ["{email}", wrong]}}
        """
    )

    failure = json.loads(ctx.artifact("journey-failures.json"))["failures"][0]
    assert failure["step"] == "basic" and failure["status"] == 401
    assert "wrong Basic credentials" in failure["response_excerpt"]
    assert outcome.status == "completed"  # a refused login is a measurement, not an error


UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def test_the_builtins_have_their_documented_format(server: str) -> None:
    settings = JourneysSettings.model_validate(
        yaml.safe_load(
            """
            journeys:
              seen:
                iterations: 3
                concurrency: 3
                steps:
                  - name: first
                    request:
                      method: POST
                      path: /echo
                      json:
                        {iteration: "{iteration}", text: "#{iteration}", uuid: "{uuid}", journey: "{journey}"}
                    extract: {first: "json:$.json"}
                  - name: second
                    request: {method: POST, path: /echo, json: {uuid: "{uuid}"}}
                    extract: {second_uuid: "json:$.json.uuid"}
            """
        )
    )
    engine = Engine(settings, server, files={}, expand=lambda text: text, progress=lambda _: None)
    (result,) = asyncio.run(engine.run(on_journey_done=lambda _: None))

    echoed = [iteration.variables for iteration in result.iterations]
    assert all(iteration.ok for iteration in result.iterations)
    # {iteration}: 1, 2, 3 in the journey; a number when alone in a JSON string, else its digits
    assert [seen["first"]["iteration"] for seen in echoed] == [1, 2, 3]
    assert [seen["first"]["text"] for seen in echoed] == ["#1", "#2", "#3"]
    # {uuid}: RFC 4122 version 4, 36 lowercase characters with dashes; one per iteration,
    # the same in all its steps
    uuids = [seen["first"]["uuid"] for seen in echoed]
    assert all(UUID4.match(value) for value in uuids), uuids
    assert len(set(uuids)) == 3
    assert [seen["second_uuid"] for seen in echoed] == uuids
    # {journey}: the journey's name
    assert {seen["first"]["journey"] for seen in echoed} == {"seen"}


def test_multipart_field_names_are_filled_in(run_check: Run) -> None:
    outcome, ctx = run_check(
        """
        journeys:
          named:
            steps:
              - name: send
                request: {method: POST, path: /echo, multipart: {"field-{iteration}": "{journey}"}}
                expect: {json: {'$.form["field-1"]': [named]}}
        """
    )
    failures = json.loads(ctx.artifact("journey-failures.json"))["failures"]
    assert failures == [], [f["message"] for f in failures]
    assert outcome.status == "completed"
