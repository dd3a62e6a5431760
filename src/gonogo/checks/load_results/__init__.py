"""The `load_results` check kind: k6 and Locust results as evidence, under the same metric
names as gonogo's own `load` check.

The parsers (`parse_results`, `parse_k6`, `parse_locust_json`, `parse_locust_csv`) are pure
functions of a file returning a `LoadSummary`, usable without a check context.
"""

from gonogo.checks.load_results.check import LoadResultsCheck
from gonogo.checks.load_results.formats import FormatChoice, detect_format, parse_results, parse_results_data
from gonogo.checks.load_results.k6 import parse_k6, parse_k6_data
from gonogo.checks.load_results.locust import (
    bucket_percentile,
    parse_locust_csv,
    parse_locust_csv_data,
    parse_locust_json,
    parse_locust_json_data,
)
from gonogo.checks.load_results.settings import LoadResultsSettings
from gonogo.checks.load_results.summary import (
    Endpoint,
    Format,
    Latency,
    LoadSummary,
    SecondCounts,
    Stats,
    ThresholdResult,
)
from gonogo.inputs import MAX_FILE_BYTES, metric_key

__all__ = [
    "MAX_FILE_BYTES",
    "Endpoint",
    "Format",
    "FormatChoice",
    "Latency",
    "LoadResultsCheck",
    "LoadResultsSettings",
    "LoadSummary",
    "SecondCounts",
    "Stats",
    "ThresholdResult",
    "bucket_percentile",
    "detect_format",
    "metric_key",
    "parse_k6",
    "parse_k6_data",
    "parse_locust_csv",
    "parse_locust_csv_data",
    "parse_locust_json",
    "parse_locust_json_data",
    "parse_results",
    "parse_results_data",
]
