"""report.html in a real headless Chromium (Debian's, through Playwright): a real run whose
evidence carries hostile text (test names, a failing step's response body) must show that
text as text, run none of it, and draw every chart."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
from browser_support import drawn_charts, report_page, require_browser
from cli_support import gonogo, write_plan

from gonogo.evidence import MetricRecord, Store, VerdictRecord

HOSTILE_TEST = "<script>window.__pwned=1</script>"
HOSTILE_BODY = '<img src=x onerror="window.__pwned=2"></style><script>window.__pwned=3</script>\'"&amp;'

SERVER = textwrap.dedent(
    """
    import sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    BODY = {body!r}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            status, body = (500, BODY) if self.path == "/evil" else (200, "ok")
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
    """
).format(body=HOSTILE_BODY)

# Failing tests with hostile names: the tests check lists them in its message.
JUNIT = textwrap.dedent(
    """
    from xml.sax.saxutils import quoteattr
    names = [{test!r}, "</style><b>bold</b>", "quote \\" and ' and &amp;"]
    cases = "".join(
        f'<testcase classname="hostile" name={{quoteattr(n)}} time="0.001"><failure message="no"/></testcase>'
        for n in names
    )
    count = len(names)
    open("report.xml", "w").write(
        f'<testsuite name="s" tests="{{count}}" failures="{{count}}" errors="0">{{cases}}</testsuite>'
    )
    """
).format(test=HOSTILE_TEST)


def _earlier_run(state_dir: Path) -> None:
    """A run of the same plan before this one, in the store the run uses: the trend has two runs."""
    state_dir.mkdir()
    with Store.open(f"sqlite:///{state_dir / 'gonogo.db'}", artifacts_dir=state_dir / "artifacts") as store:
        run_id = store.begin_run(
            name="hostile", plan_path=str(state_dir.parent / "gonogo.yaml"), plan_hash="ab" * 32,
            plan_text="name: hostile\n", git_commit=None, host="elsewhere", tool_versions={}, owner_pid=1,
        )  # fmt: skip
        check_id = store.begin_check(run_id, "burst", "load")
        now = datetime.now(UTC)
        for name, value, unit in (("latency.p95", 0.004, "seconds"), ("rps", 48.0, "per_second")):
            store.add_metric(run_id, MetricRecord("burst", name, value, unit, "performance", "earlier", now))
        store.end_check(check_id, "completed")
        store.save_verdict(run_id, VerdictRecord("GO", 95.0, 80, {}, [], [], now))
        store.finish_run(run_id, "completed")


@pytest.fixture
def browser_ready() -> None:
    require_browser()


def test_report_html_in_headless_chromium(tmp_path: Path, browser_ready: None, no_leftovers: None) -> None:
    (tmp_path / "server.py").write_text(SERVER)
    (tmp_path / "junit.py").write_text(JUNIT)
    write_plan(
        tmp_path,
        """
        name: hostile
        system:
          services:
            web:
              command: [python, server.py, "{port.web}"]
              ready: {http: "http://127.0.0.1:{port.web}/", timeout: 20s}
              grace: 2s
          base_url: "http://127.0.0.1:{port.web}"
        checks:
          unit:
            kind: tests
            command: [python, junit.py]
            junit: [report.xml]
          smoke:
            kind: journeys
            journeys:
              home:
                iterations: 2
                steps:
                  - name: page
                    request: {path: /page}
                    expect: {status: 200}
                  - name: evil
                    request: {path: /evil}
                    expect: {status: 200}
          burst:
            kind: load
            rate: 50/s
            duration: 2s
            requests: [{name: page, path: /page}, {name: other, path: /other}]
        gates:
          smoke.success_rate: ">= 100%"
          burst.error_rate: "< 1%"
          burst.latency.p95: {expr: "< 1s", severity: should}
        """,
    )
    _earlier_run(tmp_path / ".gonogo")
    result = gonogo("run", cwd=tmp_path, timeout=120)
    assert result.code == 1, result.text  # the evil step fails: NO-GO
    page_file = next((tmp_path / ".gonogo" / "runs").glob("*/report.html"))
    html = page_file.read_text(encoding="utf-8")
    assert HOSTILE_TEST not in html  # only ever escaped
    verified = gonogo("verify", str(page_file), cwd=tmp_path)
    assert verified.code == 0, verified.text
    again = tmp_path / "again.html"
    written = gonogo("report", "latest", "--format", "html", "-o", str(again), cwd=tmp_path)
    assert written.code == 0, written.text
    assert again.read_text(encoding="utf-8") == html
    again.write_text(html.replace(">NO-GO<", ">GO<", 1), encoding="utf-8")
    edited = gonogo("verify", str(again), cwd=tmp_path)
    assert edited.code == 1 and "again.html: the file was edited" in edited.text, edited.text

    with report_page(page_file) as (page, problems):
        assert page.inner_text("#decision") == "NO-GO"
        charts = drawn_charts(page)
        titles = [title for title, _, _ in charts]
        assert len(charts) >= 6, titles  # latency, rates, percentiles, resources, trend
        assert all(width > 0 and height > 0 for _, width, height in charts), charts
        assert any("latency by percentile" in title for title in titles), titles
        assert any("requests and errors per second" in title for title in titles), titles
        assert "score" in titles and "burst.latency.p95" in titles, titles  # the trend over 2 runs
        assert page.evaluate("typeof window.__pwned") == "undefined"
        text = page.inner_text("body")
        assert HOSTILE_TEST in text
        assert "</style><b>bold</b>" in text
        assert "quote \" and ' and &amp;" in text
        excerpts = page.eval_on_selector_all("pre.excerpt", "ps => ps.map(p => p.textContent)")
        assert any(HOSTILE_BODY in excerpt for excerpt in excerpts), excerpts
        assert page.locator("b", has_text="bold").count() == 0
        # a failing gate's evidence link opens the folded evidence at its metric's row
        page.click("#gates tr:has-text('smoke.success_rate') a")
        assert page.locator(":target").inner_text().startswith("smoke.success_rate")
        assert page.locator(":target").is_visible()
    assert not problems, problems
