"""A journey that logs out spends its token: the security check then makes one more session
without the logout for the probes and fuzzing (else they would all answer 401 and test nothing),
while the authorization matrix still tries the spent token (`authn.token-after-logout`)."""

from __future__ import annotations

import json
import re
import sys
import textwrap
from pathlib import Path

import pytest
from cli_support import REPO, gonogo

pytestmark = pytest.mark.usefixtures("no_leftovers")

SERVICE = REPO / "tests" / "checks" / "security" / "services" / "authz_target.py"

PLAN = f"""
name: sessions
system:
  services:
    api:
      command: [{sys.executable}, {SERVICE}, "{{port.api}}"]
      ready: {{http: "http://127.0.0.1:{{port.api}}/health", timeout: 30s}}
  base_url: "http://127.0.0.1:{{port.api}}"
checks:
  e2e:
    kind: journeys
    journeys:
      session:
        variables: {{email: "s-{{uuid}}@example.com", password: "pw-{{uuid}}"}}
        steps:
          - name: register
            request: {{method: POST, path: /register, json: {{email: "{{email}}", password: "{{password}}"}}}}
            expect: {{status: 201}}
          - name: login
            request: {{method: POST, path: /login, json: {{email: "{{email}}", password: "{{password}}"}}}}
            extract: {{token: "json:$.access_token"}}
          - name: me
            request: {{path: /me, headers: {{Authorization: "Bearer {{token}}"}}}}
            expect: {{status: 200}}
          - name: logout
            request: {{method: POST, path: /logout, headers: {{Authorization: "Bearer {{token}}"}}}}
            expect: {{status: 204}}
  sec:
    kind: security
    openapi: /openapi.json
    # the test service's echo and reset routes have defects of their own, found by other tests
    fuzz: {{max_examples: 5, seed: 1, exclude: ["POST /anything", "POST /forgot-password"]}}
    probes: {{traversal: false, injection: false, oversized: false, slow_body: false}}
"""


def test_probes_and_fuzzing_get_a_live_session_when_the_journey_logs_out(tmp_path: Path) -> None:
    (tmp_path / "gonogo.yaml").write_text(textwrap.dedent(PLAN).lstrip())
    result = gonogo("run", cwd=tmp_path, timeout=300)
    (run_dir,) = (tmp_path / ".gonogo" / "runs").iterdir()
    report = json.loads((run_dir / "report.json").read_text())
    serious = [f["title"] for f in report["findings"] if f["severity"] in ("critical", "high", "medium")]
    assert serious == [] and result.code == 0, result.text
    log = (run_dir / "logs" / "api.log").read_text()
    answered = re.findall(r'"GET /me HTTP/1.1" (\d{3})', log)
    # four journey runs (first user, second, and the live session's, each answering 200), then
    # probes and fuzzing on the live session: 200 too (on a spent token, 401); fuzzing leaves
    # POST /logout alone, which would spend the session for everything fuzzed after it
    assert answered.count("200") >= 6, answered
    written = gonogo(
        "artifacts", "latest", "security-fuzz.json", "--check", "sec", "-o", "fuzz.json", cwd=tmp_path
    )
    assert written.code == 0, written.text
    fuzz = json.loads((tmp_path / "fuzz.json").read_text())
    assert any("POST /logout: not fuzzed" in note for note in fuzz["notes"]), fuzz["notes"]
