"""The example's security variants: each seeded defect is found, at high or critical, by the
example's own plan (its `sec` check as written: nothing but `openapi:` and the journeys).

All six switches are on in one run (one system start instead of six); each defect has its own
category and operation, so each is asserted on its own. The healthy build's run is
`test_the_example_is_go` (no finding at medium or above).
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path

import pytest
from cli_support import gonogo
from test_example import example_plan, report_of

pytestmark = pytest.mark.usefixtures("no_leftovers")

SERIOUS = ("critical", "high")
# switch → (categories it may be found under, operation glob, the lowest severity allowed)
DEFECTS = {
    "DOCSERVICE_NO_OWNER_CHECK": (("authz",), "* /documents/{doc_id}*", "critical"),
    "DOCSERVICE_NO_AUTH_CHECK": (("authn",), "GET /documents/{doc_id}/content", "critical"),
    "DOCSERVICE_SQL_CONCAT": (("injection",), "GET /documents", "critical"),
    "DOCSERVICE_TRAVERSAL": (("traversal",), "GET *", "critical"),
    "DOCSERVICE_UNBOUNDED_UPLOAD": (("dos",), "POST /documents", "high"),
    "DOCSERVICE_NON_ASCII_500": (("fuzz", "input"), "*", "high"),
}


def test_every_seeded_security_defect_is_found_at_high_or_critical(tmp_path: Path) -> None:
    # one journey is enough for the security check: it signs up, logs in, uploads and reads back
    plan = example_plan(tmp_path, unit=False, load="none", chaos=(), journeys=("upload_and_fetch",))
    result = gonogo("run", cwd=tmp_path, timeout=600, **{switch: "1" for switch in DEFECTS})
    assert result.code == 1, result.text
    report = report_of(plan)
    findings = report["findings"]
    missing = []
    for switch, (categories, operation, lowest) in DEFECTS.items():
        allowed = SERIOUS[: SERIOUS.index(lowest) + 1]
        found = [f for f in findings if f["category"] in categories and f["severity"] in allowed]
        if not any(fnmatchcase(f["operation"], operation) for f in found):
            missing.append(switch)
    assert missing == [], [(f["severity"], f["category"], f["operation"], f["title"]) for f in findings]
    # every finding carries its evidence, a reproduction and a fix hint, and no secret of the run
    for finding in findings:
        if finding["severity"] in SERIOUS:
            assert finding["request"] and finding["reproduction"] and finding["fix"], finding
            assert "pw-" not in finding["request"] + finding["response"] + finding["reproduction"], finding
    failed = {g["metric"] for g in report["gates"] if g["status"] == "fail"}
    assert {"sec.findings.critical", "sec.findings.high"} <= failed
    summary = (Path(plan).parent / ".gonogo" / "runs").glob("*/summary.md")
    assert "## Findings" in next(iter(summary)).read_text()
