"""`gates.junit.xml`: one testcase per gate, so CI systems show the gates natively."""

from __future__ import annotations

__all__ = ["render_junit"]

from xml.etree import ElementTree as ET

from gonogo.report.document import RunReport
from gonogo.units import format_value


def render_junit(report: RunReport) -> str:
    gates = report.verdict.gates if report.verdict else []
    suite = ET.Element(
        "testsuite",
        name=f"gonogo gates: {report.run.name}",
        tests=str(len(gates)),
        failures=str(sum(1 for g in gates if g.status == "fail")),
        errors=str(sum(1 for g in gates if g.status == "not_measured" and g.severity == "must")),
        skipped=str(sum(1 for g in gates if g.status == "not_measured" and g.severity == "should")),
        timestamp=report.run.started_at.isoformat(),
    )
    # What `gonogo verify` needs to find the run and tell whether its evidence changed since.
    properties = ET.SubElement(suite, "properties")
    ET.SubElement(properties, "property", name="gonogo.run_id", value=report.run.id)
    ET.SubElement(properties, "property", name="gonogo.evidence_sha256", value=report.evidence_digest)
    for gate in gates:
        case = ET.SubElement(
            suite, "testcase", classname=f"gonogo.{gate.dimension}", name=f"{gate.metric} {gate.expr}"
        )
        value = format_value(gate.value, gate.unit or "number")
        detail = f"value {value}, threshold {gate.threshold}, severity {gate.severity}, source {gate.source}"
        if gate.status == "fail":
            ET.SubElement(case, "failure", message=f"{gate.metric} = {value} fails {gate.expr}").text = detail
        elif gate.status == "not_measured":
            tag = "error" if gate.severity == "must" else "skipped"
            ET.SubElement(case, tag, message=f"{gate.metric} was not measured").text = detail
        else:
            ET.SubElement(case, "system-out").text = detail
    _signoff_cases(suite, report)
    if report.verdict is None:
        case = ET.SubElement(suite, "testcase", classname="gonogo", name="verdict")
        ET.SubElement(case, "error", message="no verdict was reached").text = report.run.message
    root = ET.Element("testsuites", name="gonogo")
    root.append(suite)
    if report.findings:
        root.append(_findings_suite(report))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _findings_suite(report: RunReport) -> ET.Element:
    """One testcase per finding, failed at medium or above, so CI lists them beside the gates."""
    failing = [
        finding for finding in report.open_findings if finding.severity in ("critical", "high", "medium")
    ]
    suite = ET.Element(
        "testsuite",
        name=f"gonogo findings: {report.run.name}",
        tests=str(len(report.findings)),
        failures=str(len(failing)),
        errors="0",
        skipped=str(len(report.accepted_risks)),
        timestamp=report.run.started_at.isoformat(),
    )
    for finding in report.findings:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"gonogo.{finding.check}.{finding.category}",
            name=f"{finding.operation}: {finding.title}",
        )
        detail = "\n\n".join(
            f"{label}:\n{text}"
            for label, text in (
                ("rule", finding.rule),
                ("request", finding.request),
                ("response", finding.response),
                ("reproduce", finding.reproduction),
                ("fix", finding.fix),
            )
            if text
        )
        if finding.ignored_because:
            ET.SubElement(case, "skipped", message=f"accepted risk: {finding.ignored_because}").text = detail
        elif finding in failing:
            ET.SubElement(case, "failure", message=f"{finding.severity}: {finding.title}").text = detail
        else:
            ET.SubElement(case, "system-out").text = f"{finding.severity}\n\n{detail}"
    return suite


def _signoff_cases(suite: ET.Element, report: RunReport) -> None:
    """One testcase per required role: skipped while pending, so CI shows what is missing."""
    status = report.signoff
    if status is None:
        return
    for role in status.required:
        case = ET.SubElement(suite, "testcase", classname="gonogo.signoff", name=f"sign-off {role}")
        given = status.counted.get(role)
        if given is None:
            wanted = f"confidence at least {status.min_confidence}"
            ET.SubElement(
                case, "skipped", message=f"pending: no sign-off by {role} with {wanted} on this evidence"
            )
        else:
            when = given.signed_at.isoformat()
            ET.SubElement(
                case, "system-out"
            ).text = f"signed off by {given.user}, confidence {given.confidence}, at {when}"
    suite.set("tests", str(int(suite.get("tests", "0")) + len(status.required)))
    suite.set("skipped", str(int(suite.get("skipped", "0")) + len(status.pending)))
