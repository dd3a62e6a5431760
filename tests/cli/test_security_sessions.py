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
    fuzz: {{max_examples: 5, seed: 1, operations: ["GET /me"]}}
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
    # the journeys as three users (first, second, live), then probes and fuzzing on the live one
    assert answered.count("200") > 3, answered
