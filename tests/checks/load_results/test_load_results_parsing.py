"""Reading k6 and Locust results: every fixture to the exact figure, worked out by hand.

tests/fixtures/load_results/ holds one file per format, written from the formats' docs and
the tools' sources:

- k6-summary-export.json: `k6 run --summary-export` (flat metrics, threshold booleans that
  mean "failed", no duration; p(99) not in the default trend stats);
- k6-handle-summary.json: the data handleSummary receives (`type`/`contains`/`values`,
  `{"ok": ...}` thresholds, `state.testRunDurationMs`), with per-endpoint submetrics;
- locust.json: `locust --json`, three endpoints whose response times (ms) were:
    POST /api/login      44.9 45.0 45.3 | 51.6 52.0 52.2 52.4 | 59.8 60.4 | 308.0  (1 failure)
    GET /api/items       7.81 8.2 | 8.6 9.0 9.4 | 11.6 12.0 12.1 12.3 | 15.2 | 39.7 40.1 40.2 |
                         117.3 118.0 121.0 122.5 124.2 | 251.0 | 1387.2                (2 failures)
    GET /api/items/[id]  19.6 19.8 20.0 20.1 20.3 | 21.7 22.0 22.1 22.2 22.4           (0 failures)
  which Locust keeps only as rounded buckets: {45: 3, 52: 4, 60: 2, 310: 1},
  {8: 2, 9: 3, 12: 4, 15: 1, 40: 3, 120: 5, 250: 1, 1400: 1}, {20: 5, 22: 5};
- locust_stats.csv: `locust --csv` of the same run (Locust's run started at 1700000000.0).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gonogo.checks.load_results import (
    LoadSummary,
    bucket_percentile,
    detect_format,
    metric_key,
    parse_k6,
    parse_locust_csv,
    parse_locust_json,
    parse_results,
)
from gonogo.checks.load_results.k6 import split_metric_name
from gonogo.errors import InputFileError
from gonogo.inputs import unique_keys

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "load_results"
K6_EXPORT = FIXTURES / "k6-summary-export.json"
K6_DATA = FIXTURES / "k6-handle-summary.json"
LOCUST_JSON = FIXTURES / "locust.json"
LOCUST_CSV = FIXTURES / "locust_stats.csv"

approx = pytest.approx


def latency(summary: LoadSummary, endpoint: str | None = None) -> dict[str, float]:
    stats = summary.total if endpoint is None else endpoint_of(summary, endpoint).stats
    return dict(stats.latency.items())


def endpoint_of(summary: LoadSummary, key: str) -> Any:
    found = [endpoint for endpoint in summary.endpoints if endpoint.key == key]
    assert len(found) == 1, [endpoint.key for endpoint in summary.endpoints]
    return found[0]


# -- k6 ---------------------------------------------------------------------------------------


def test_k6_summary_export() -> None:
    summary = parse_k6(K6_EXPORT)
    assert summary.format == "k6"
    total = summary.total
    assert (total.requests, total.errors) == (1200, 20)
    assert total.error_rate == approx(20 / 1200)
    assert total.rps == approx(19.99590084032773)
    # milliseconds in the file, seconds here; no p(99) or p(99.9): not among k6's defaults
    assert latency(summary) == approx(
        {
            "mean": 0.0842131,
            "min": 0.0120541,
            "p50": 0.0613,
            "p90": 0.1602,
            "p95": 0.2439105,
            "max": 1.5027703,
        }
    )
    assert any("p(99), p(99.9)" in note and "summaryTrendStats" in note for note in summary.notes)
    assert summary.duration is None  # the export form drops `state`
    assert summary.checks_pass_rate == approx(1180 / 1200)
    # the export's booleans mean "failed"
    assert [(t.metric, t.key, t.expression, t.ok, t.reliability) for t in summary.thresholds] == [
        ("http_req_duration", "http_req_duration", "p(95)<500", True, False),
        ("http_req_duration{name:login}", "http_req_duration_name_login", "p(95)<200", False, False),
        ("http_req_failed", "http_req_failed", "rate<0.01", False, True),
        ("http_reqs{name:login}", "http_reqs_name_login", "count>100", True, False),
    ]
    # `{expected_response:true}` is not an endpoint; `{name:login}` is
    (login,) = summary.endpoints
    assert (login.name, login.key, login.method) == ("login", "login", None)
    assert (login.stats.requests, login.stats.rps) == (300, approx(4.998975210081933))
    assert (login.stats.errors, login.stats.error_rate) == (None, None)  # no http_req_failed{name:login}
    assert latency(summary, "login") == approx(
        {
            "mean": 0.1904402,
            "min": 0.0481207,
            "p50": 0.1710019,
            "p90": 0.2513304,
            "p95": 0.3128836,
            "max": 1.5027703,
        }
    )


def test_k6_summary_data_form() -> None:
    summary = parse_k6(K6_DATA)
    total = summary.total
    assert (total.requests, total.errors, total.error_rate) == (2400, 12, approx(0.005))
    assert total.rps == approx(79.95788884520819)
    assert summary.duration == approx(30.0158)
    assert latency(summary) == approx(
        {
            "mean": 0.0418123,
            "min": 0.0030511,
            "p50": 0.0284002,
            "p90": 0.0881204,
            "p95": 0.1317739,
            "p99": 0.4025518,
            "p99_9": 1.2033391,
            "max": 1.8110038,
        }
    )
    assert summary.notes == ()
    assert summary.checks_pass_rate == approx(2388 / 2400)
    # a `name` tag is the endpoint's name; a `url` tag's key leaves out the origin
    assert [(e.name, e.key) for e in summary.endpoints] == [
        ("GET /api/items", "GET_api_items"),
        ("http://127.0.0.1:8080/api/orders", "api_orders"),
    ]
    items = endpoint_of(summary, "GET_api_items").stats
    assert (items.requests, items.errors, items.error_rate) == (1800, 9, approx(9 / 1800))
    assert items.rps == approx(59.968416633906145)
    assert latency(summary, "GET_api_items")["p99_9"] == approx(0.6015543)
    orders = endpoint_of(summary, "api_orders").stats
    assert (orders.requests, orders.errors, orders.error_rate) == (600, 3, approx(3 / 600))
    assert latency(summary, "api_orders") == approx(
        {
            "mean": 0.0769182,
            "min": 0.0142208,
            "p50": 0.0600071,
            "p90": 0.1400034,
            "p95": 0.2013395,
            "p99": 0.9017725,
            "p99_9": 1.7000009,
            "max": 1.8110038,
        }
    )
    failed = [(t.metric, t.expression) for t in summary.thresholds if not t.ok]
    assert failed == [
        ("http_req_duration", "p(99.9)<1000"),
        ("http_req_duration{url:http://127.0.0.1:8080/api/orders}", "p(99)<800"),
    ]
    assert len(summary.thresholds) == 11
    assert {t.key for t in summary.thresholds if t.reliability} == {
        "checks",
        "http_req_failed",
        "http_req_failed_name_GET_api_items",
        "http_req_failed_url_http_127_0_0_1_8080_api_orders",
    }


def write_json(tmp_path: Path, document: Any, name: str = "summary.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return path


def test_k6_with_no_request_records_no_zero_latency(tmp_path: Path) -> None:
    """k6 exports a trend and a rate with no sample as zeros: those are not figures."""
    zeros = {"avg": 0, "min": 0, "med": 0, "max": 0, "p(90)": 0, "p(95)": 0}
    path = write_json(
        tmp_path,
        {
            "metrics": {
                "http_req_duration": {"type": "trend", "contains": "time", "values": zeros},
                "http_reqs": {"type": "counter", "contains": "default", "values": {"count": 0, "rate": 0}},
                "http_req_failed": {"type": "rate", "values": {"rate": 0, "passes": 0, "fails": 0}},
                "checks": {"type": "rate", "values": {"rate": 0, "passes": 0, "fails": 0}},
            }
        },
    )
    summary = parse_k6(path)
    assert (summary.total.requests, summary.total.errors, summary.total.rps) == (0, 0, 0)
    assert summary.total.error_rate is None
    assert latency(summary) == {}
    assert summary.checks_pass_rate is None
    assert any("no request was made" in note for note in summary.notes)
    assert any("no k6 check ran" in note for note in summary.notes)


def test_k6_null_figures_are_not_measured(tmp_path: Path) -> None:
    """JSON.stringify writes NaN as null."""
    path = write_json(
        tmp_path,
        {
            "metrics": {
                "http_req_duration": {
                    "avg": None,
                    "med": 12.5,
                    "max": 30,
                    "p(95)": None,
                    "p(99)": None,
                    "p(99.9)": None,
                }
            }
        },
    )
    summary = parse_k6(path)
    assert latency(summary) == approx({"p50": 0.0125, "max": 0.03})
    assert summary.total.requests is None
    # p(99) and p(99.9) are there, as null: k6 was told to keep them, they are just not numbers
    assert summary.notes == (
        "latency avg, p(95), p(99), p(99.9) not recorded: k6 exported them as null (not a number)",
    )


def test_k6_without_http_metrics_says_so(tmp_path: Path) -> None:
    path = write_json(tmp_path, {"metrics": {"iterations": {"count": 3, "rate": 1.0}}})
    summary = parse_k6(path)
    assert summary.total.requests is None and latency(summary) == {}
    assert any("made no HTTP request" in note for note in summary.notes)


def test_k6_endpoint_tags_with_method_and_odd_values(tmp_path: Path) -> None:
    path = write_json(
        tmp_path,
        {
            "metrics": {
                'http_reqs{method:POST,url:"https://shop.test:8443/api/cart?a=1,b=2"}': {
                    "count": 5,
                    "rate": 1,
                },
                "http_reqs{name:/}": {"count": 2, "rate": 0.5},
                "http_reqs{group:::checkout}": {"count": 9, "rate": 2},
                "http_reqs{name:x,status:200}": {"count": 1, "rate": 0.1},
            }
        },
    )
    summary = parse_k6(path)
    assert [(e.name, e.key, e.method, e.stats.requests) for e in summary.endpoints] == [
        ("POST https://shop.test:8443/api/cart?a=1,b=2", "POST_api_cart_a_1_b_2", "POST", 5),
        ("/", "_", None, 2),
    ]


def test_split_metric_name() -> None:
    assert split_metric_name("http_reqs") == ("http_reqs", ())
    assert split_metric_name("http_req_duration{url:http://h:80/a}") == (
        "http_req_duration",
        (("url", "http://h:80/a"),),
    )
    assert split_metric_name("m{ name : 'a,b' , method:GET}") == ("m", (("method", "GET"), ("name", "a,b")))


# -- Locust JSON ---------------------------------------------------------------------------------


def test_locust_json_totals_from_the_buckets() -> None:
    summary = parse_locust_json(LOCUST_JSON)
    assert summary.format == "locust-json"
    total = summary.total
    assert (total.requests, total.errors, total.error_rate) == (40, 3, approx(3 / 40))
    # first entry start 1700000000.1, last request 1700000009.95
    assert summary.duration == approx(9.85)
    assert total.rps == approx(40 / 9.85)
    assert summary.window == (
        datetime(2023, 11, 14, 22, 13, 20, 100000, tzinfo=UTC),
        datetime(2023, 11, 14, 22, 13, 29, 950000, tzinfo=UTC),
    )
    # 40 buckets merged: 8:2 9:3 12:4 15:1 20:5 22:5 40:3 45:3 52:4 60:2 120:5 250:1 310:1 1400:1.
    # p50: the 21st fastest (⌊0.5·40⌋+1) is in 40; p90: 37th → 120; p95: 39th → 310;
    # p99 and p99.9: 40th → the 1400 bucket, held to the exact max 1387.2.
    assert latency(summary) == approx(
        {
            "mean": (2467.41 + 771.6 + 210.2) / 40 / 1000,
            "min": 0.00781,
            "p50": 0.040,
            "p90": 0.120,
            "p95": 0.310,
            "p99": 1.3872,
            "p99_9": 1.3872,
            "max": 1.3872,
        }
    )
    assert "rounded" in summary.latency_note and "buckets" in summary.latency_note
    assert summary.notes == ()


def test_locust_json_endpoints() -> None:
    summary = parse_locust_json(LOCUST_JSON)
    assert [(e.name, e.key, e.method) for e in summary.endpoints] == [
        ("POST /api/login", "POST_api_login", "POST"),
        ("GET /api/items", "GET_api_items", "GET"),
        ("GET /api/items/[id]", "GET_api_items_id", "GET"),
    ]
    # Locust's convention: an endpoint's rps is over the whole run's window
    login = endpoint_of(summary, "POST_api_login").stats
    assert (login.requests, login.errors, login.error_rate, login.rps) == (10, 1, 0.1, approx(10 / 9.85))
    # 10 requests: p50 is the 6th (52), p90 the 10th: the 310 bucket, held to the max 308.0
    assert latency(summary, "POST_api_login") == approx(
        {"mean": 0.07716, "min": 0.0449, "p50": 0.052, "p90": 0.308, "p95": 0.308, "p99": 0.308,
         "p99_9": 0.308, "max": 0.308}
    )  # fmt: skip
    # 20 requests: p50 the 11th (40), p90 the 19th (250), p95 the 20th (1400 → 1387.2)
    assert latency(summary, "GET_api_items") == approx(
        {"mean": 0.1233705, "min": 0.00781, "p50": 0.040, "p90": 0.250, "p95": 1.3872, "p99": 1.3872,
         "p99_9": 1.3872, "max": 1.3872}
    )  # fmt: skip
    assert latency(summary, "GET_api_items_id") == approx(
        {"mean": 0.02102, "min": 0.0196, "p50": 0.022, "p90": 0.022, "p95": 0.022, "p99": 0.022,
         "p99_9": 0.022, "max": 0.0224}
    )  # fmt: skip
    assert endpoint_of(summary, "GET_api_items_id").stats.error_rate == 0.0  # measured: no failure


def test_locust_json_per_second_counts() -> None:
    summary = parse_locust_json(LOCUST_JSON)
    seconds = [(s.second.timestamp(), s.requests, s.failures) for s in summary.per_second]
    assert seconds == [
        (1700000000, 3, 0),
        (1700000001, 4, 0),
        (1700000002, 4, 0),
        (1700000003, 4, 1),
        (1700000004, 4, 0),
        (1700000005, 5, 1),
        (1700000006, 5, 0),
        (1700000007, 4, 1),
        (1700000008, 4, 0),
        (1700000009, 3, 0),
    ]
    assert sum(s.requests for s in summary.per_second) == 40


def test_locust_json_without_requests(tmp_path: Path) -> None:
    summary = parse_locust_json(write_json(tmp_path, []))
    assert (summary.total.requests, summary.total.errors) == (0, 0)
    assert (summary.total.error_rate, summary.total.rps, summary.duration) == (None, None, None)
    assert latency(summary) == {}
    assert any("no request" in note for note in summary.notes)


def test_locust_json_name_clash_gets_a_suffix(tmp_path: Path) -> None:
    def entry(name: str) -> dict[str, Any]:
        return {
            "name": name,
            "method": "GET",
            "num_requests": 1,
            "num_failures": 0,
            "response_times": {"5": 1},
        }

    summary = parse_locust_json(write_json(tmp_path, [entry("/a/b"), entry("/a.b")]))
    assert [e.key for e in summary.endpoints] == ["GET_a_b", "GET_a_b_2"]
    assert any("'GET /a.b'" in note and "GET_a_b_2" in note for note in summary.notes)
    # no times, no total_response_time, min or max: only the bucket figures
    assert latency(summary) == approx(
        {"p50": 0.005, "p90": 0.005, "p95": 0.005, "p99": 0.005, "p99_9": 0.005}
    )
    assert summary.total.rps is None
    assert any("duration and rps not recorded" in note for note in summary.notes)


def test_bucket_percentile_follows_locusts_rule() -> None:
    buckets = {120.0: 5, 8: 2, 1400.0: 1, 9: 3, 40: 3, 12: 4, 250.0: 1, 15: 1}  # order does not matter
    assert bucket_percentile(buckets, 50, 100) == 40  # the 11th of 20
    assert bucket_percentile(buckets, 45, 100) == 15  # the 10th: ⌊9⌋+1
    assert bucket_percentile(buckets, 90, 100) == 250
    assert bucket_percentile(buckets, 1, 1) == 1400  # P = 1: the slowest
    assert bucket_percentile({}, 50, 100) is None
    # exact fractions: p99.9 of 1000 requests is the 1000th, which floats would miss
    assert bucket_percentile({1: 999, 2: 1}, 999, 1000) == 2
    assert bucket_percentile({1: 999, 2: 1}, 99, 100) == 1


# -- Locust CSV ----------------------------------------------------------------------------------


def test_locust_csv() -> None:
    summary = parse_locust_csv(LOCUST_CSV)
    assert summary.format == "locust-csv"
    total = summary.total
    assert (total.requests, total.errors, total.error_rate) == (40, 3, approx(0.075))
    assert total.rps == approx(4.020100483246901)  # Locust's own: 40 over its 9.95 s
    assert summary.duration is None
    assert any("duration not recorded" in note for note in summary.notes)
    # the 50% column (40), not "Median Response Time" (22, by another rule); 99%+ held to the max
    assert latency(summary) == approx(
        {"mean": 0.08623025, "min": 0.00781, "p50": 0.040, "p90": 0.120, "p95": 0.310, "p99": 1.3872,
         "p99_9": 1.3872, "max": 1.3872}
    )  # fmt: skip
    assert [(e.name, e.key, e.method, e.stats.requests, e.stats.errors) for e in summary.endpoints] == [
        ("GET /api/items", "GET_api_items", "GET", 20, 2),
        ("GET /api/items/[id]", "GET_api_items_id", "GET", 10, 0),
        ("POST /api/login", "POST_api_login", "POST", 10, 1),
    ]
    assert endpoint_of(summary, "POST_api_login").stats.rps == approx(1.0050251208117253)


def test_locust_csv_and_json_of_one_run_agree_on_latency() -> None:
    from_csv, from_json = parse_locust_csv(LOCUST_CSV), parse_locust_json(LOCUST_JSON)
    assert latency(from_csv) == approx(latency(from_json))
    for endpoint in from_json.endpoints:
        assert latency(from_csv, endpoint.key) == approx(latency(from_json, endpoint.key))


def test_locust_csv_rows_without_requests(tmp_path: Path) -> None:
    header = LOCUST_CSV.read_text().splitlines()[0]
    na = ",".join(["N/A"] * 11)
    path = tmp_path / "run_stats.csv"
    path.write_text(
        f"{header}\nGET,/idle,0,0,0,0.0,0,0,0,0.0,0.0,{na}\n,Aggregated,0,0,0,0.0,0,0,0,0.0,0.0,{na}\n"
    )
    summary = parse_locust_csv(path)
    assert (summary.total.requests, summary.total.errors) == (0, 0)
    assert summary.total.rps == 0.0  # Locust's figure: 0 requests over its run
    assert summary.total.error_rate is None
    assert latency(summary) == {} and latency(summary, "GET_idle") == {}


# -- detection -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "name", "expected"),
    [
        (K6_EXPORT, "out.txt", "k6"),
        (K6_DATA, "summary.json", "k6"),
        (LOCUST_JSON, "stats", "locust-json"),
        (LOCUST_CSV, "whatever.dat", "locust-csv"),
        (LOCUST_CSV, "run_stats.csv", "locust-csv"),
    ],
)
def test_detect_format_from_content(source: Path, name: str, expected: str) -> None:
    assert detect_format(name, source.read_bytes()) == expected


def test_parse_results_detects_and_reads_every_fixture() -> None:
    assert [parse_results(path).format for path in (K6_EXPORT, K6_DATA, LOCUST_JSON, LOCUST_CSV)] == [
        "k6",
        "k6",
        "locust-json",
        "locust-csv",
    ]


def test_a_bom_and_leading_blank_lines_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    path.write_bytes(b"\xef\xbb\xbf\n  " + K6_DATA.read_bytes())
    assert parse_results(path).total.requests == 2400
    csv_path = tmp_path / "x_stats.csv"
    csv_path.write_bytes(b"\xef\xbb\xbf\r\n" + LOCUST_CSV.read_bytes())
    assert parse_results(csv_path).total.requests == 40


def test_metric_keys() -> None:
    assert metric_key("GET /api/items/[id]") == "GET_api_items_id"
    assert metric_key("POST /v1/users/{user-id}/avatar.png") == "POST_v1_users_user-id_avatar_png"
    assert metric_key("/") == "_"
    assert metric_key("héllo wörld") == "h_llo_w_rld"
    assert unique_keys(["a b", "a.b", "a_b"]) == (
        ["a_b", "a_b_2", "a_b_3"],
        ["'a.b' and 'a b' both make the name 'a_b'; 'a.b' is 'a_b_2'",
         "'a_b' and 'a b' both make the name 'a_b'; 'a_b' is 'a_b_3'"],
    )  # fmt: skip


# -- bad input -----------------------------------------------------------------------------------


def bad(path: Path, format: Any = "auto", **kwargs: Any) -> str:
    with pytest.raises(InputFileError) as caught:
        parse_results(path, format, **kwargs)
    message = str(caught.value)
    assert str(path) in message, message
    return message


def test_missing_and_empty_files(tmp_path: Path) -> None:
    assert "no such file" in bad(tmp_path / "nope.json")
    assert "expected a k6 end-of-test summary" in bad(tmp_path / "nope.json", "k6")
    (tmp_path / "empty.json").write_bytes(b"")
    assert "empty" in bad(tmp_path / "empty.json")
    (tmp_path / "blank.csv").write_bytes(b"\n  \n")
    assert "empty" in bad(tmp_path / "blank.csv", "locust-csv")
    (tmp_path / "dir.json").mkdir()
    assert "not a regular file" in bad(tmp_path / "dir.json")


def test_truncated_files(tmp_path: Path) -> None:
    for source in (K6_DATA, LOCUST_JSON):
        cut = tmp_path / source.name
        data = source.read_bytes()
        cut.write_bytes(data[: len(data) * 2 // 3])
        assert "truncated" in bad(cut)
    lines = LOCUST_CSV.read_bytes().splitlines(keepends=True)
    without_total = tmp_path / "a_stats.csv"
    without_total.write_bytes(b"".join(lines[:-1]))
    assert "no Aggregated row" in bad(without_total)
    mid_row = tmp_path / "b_stats.csv"
    mid_row.write_bytes(b"".join(lines[:-1]) + lines[-1][:30])
    message = bad(mid_row)
    assert ":5:" in message and "truncated" in message


def test_huge_files_are_refused_before_reading(tmp_path: Path) -> None:
    huge = tmp_path / "huge.json"
    with huge.open("wb") as handle:  # sparse: no disk space, no reading
        handle.truncate(257 * 2**20)
    message = bad(huge)
    assert "refused" in message and "257 MiB" in message and "256 MiB" in message
    small = tmp_path / "small.json"
    small.write_bytes(K6_DATA.read_bytes())
    assert "over the limit of 0 MiB" in bad(small, max_bytes=1000)


@pytest.mark.parametrize(
    ("content", "format", "expected"),
    [
        ('{"root_group": {}}', "auto", 'an object without a "metrics" object; expected a k6'),
        ("[]", "k6", "a JSON list; expected a k6"),
        ('{"metrics": []}', "k6", 'without a "metrics" object'),
        ('{"metrics": {"http_reqs": 5}}', "k6", "metric 'http_reqs' is a number, not an object"),
        ('{"metrics": {"http_reqs": {"count": "5"}}}', "k6", "'count' is a string, not a number"),
        ('{"metrics": {"http_reqs": {"count": true}}}', "k6", "not a number"),
        ('{"metrics": {"x": {"value": 1, "thresholds": {"value<2": "no"}}}}', "k6", "is not true or false"),
        ('{"metrics": {"x": {"values": {}, "thresholds": {"value<2": true}}}}', "k6", "has no boolean `ok`"),
        ('{"metrics": {}}', "locust-json", "a JSON object; expected Locust's --json output"),
        ("[1]", "auto", "entry 1 is not an object"),
        ('[{"method": "GET"}]', "auto", "entry 1 has no name"),
        ('[{"name": "/a", "num_requests": 1, "response_times": {}}]', "auto", "`num_failures` is missing"),
        ('[{"name": "/a", "num_requests": -1, "num_failures": 0, "response_times": {}}]', "auto",
         "expected a count"),
        ('[{"name": "/a", "num_requests": 1, "num_failures": 0}]', "auto", "no `response_times`"),
        ('[{"name": "/a", "num_requests": 1, "num_failures": 0, "response_times": {"fast": 1}}]', "auto",
         "the key 'fast', which is not a number"),
        ('[{"name": "/a", "num_requests": 1, "num_failures": 0, "response_times": {"5": 1.5}}]', "auto",
         "expected a count"),
        ('[{"name": "/a", "num_requests": 1, "num_failures": 0, "response_times": {}, "start_time": 1e300}]',
         "auto", "expected a Unix time"),
        ('{"metrics": {"http_reqs": {"count": 5,}}}', "auto", ":1:39: not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, "auto", "nested too deeply"),
        ('[{"name": "/a", "num_requests": 1', "auto", "truncated"),
        ("Timestamp,User Count,Type,Name\n1,2,,Aggregated\n", "auto", "stats history"),
        ("Method,Name,Error,Occurrences\nGET,/a,boom,1\n", "auto", "failures list"),
        ("metric_name,timestamp,metric_value\nhttp_reqs,1,1\n", "locust-csv",
         "not that of Locust's request statistics"),
        ("Type,Name,Request Count\n,Aggregated,1\n", "locust-csv", "no column Failure Count"),
    ],
)  # fmt: skip
def test_wrong_shapes(tmp_path: Path, content: str, format: Any, expected: str) -> None:
    path = tmp_path / ("results.json" if content.startswith(("{", "[")) else "results.csv")
    path.write_text(content)
    assert expected in bad(path, format)


def test_a_file_of_no_known_format(tmp_path: Path) -> None:
    path = tmp_path / "results.txt"
    path.write_text("hello, world\n")
    message = bad(path)
    assert "neither JSON nor a Locust CSV" in message and "set `format:`" in message


def test_bad_csv_cells(tmp_path: Path) -> None:
    lines = LOCUST_CSV.read_text().splitlines()
    path = tmp_path / "bad_stats.csv"
    path.write_text("\n".join([lines[0], lines[1].replace("123.37049999999999", "fast"), *lines[2:]]))
    message = bad(path)
    assert ":2: Average Response Time is 'fast', not a number" in message
    path.write_text("\n".join([lines[0], lines[1].replace(",20,2,", ",20.5,2,"), *lines[2:]]))
    assert ":2: Request Count is not a count" in bad(path)
    path.write_text("\n".join([*lines, lines[1]]))
    assert "a row after the Aggregated row" in bad(path)
    path.write_bytes(lines[0].encode() + b"\n\x00GET,/a\n")
    assert ":2: 2 fields where the header has 22" in bad(path)


def test_json_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    path.write_bytes(b'{"metrics": {"\xff": {}}}')
    assert "not UTF-8" in bad(path)
