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
    if report.verdict is None:
        case = ET.SubElement(suite, "testcase", classname="gonogo", name="verdict")
        ET.SubElement(case, "error", message="no verdict was reached").text = report.run.message
    root = ET.Element("testsuites", name="gonogo")
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
