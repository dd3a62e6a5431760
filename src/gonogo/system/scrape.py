"""Reading a service's Prometheus text endpoint: the gauges whose trend tells of a leak.

Counters always grow, and labelled series come and go, so only unlabelled gauges are kept
(`process_resident_memory_bytes`, `process_open_fds`, `go_goroutines`, a queue's depth...).
The exposition format is parsed by prometheus_client's own parser.
"""

from __future__ import annotations

__all__ = ["MAX_GAUGES", "ScrapeFailed", "scrape_gauges"]

import math
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from gonogo.errors import GonogoError

MAX_GAUGES = 64  # a service exporting thousands of gauges must not flood the evidence
_MAX_BYTES = 8 * 1024 * 1024


class ScrapeFailed(GonogoError):
    pass


def scrape_gauges(url: str, *, timeout: float) -> dict[str, float]:
    """The unlabelled gauges of the endpoint at `url`, by name. Raises ScrapeFailed."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read(_MAX_BYTES + 1)
    except (OSError, urllib.error.URLError, ValueError) as error:
        raise ScrapeFailed(f"{url}: {error}") from None
    if len(body) > _MAX_BYTES:
        raise ScrapeFailed(f"{url}: more than {_MAX_BYTES} bytes")
    gauges: dict[str, float] = {}
    try:
        for family in text_string_to_metric_families(body.decode("utf-8", "replace")):
            if family.type != "gauge":
                continue
            for sample in family.samples:
                if not sample.labels and math.isfinite(sample.value) and len(gauges) < MAX_GAUGES:
                    gauges[sample.name] = float(sample.value)
    except ValueError as error:
        raise ScrapeFailed(f"{url}: not the Prometheus text format ({error})") from None
    return gauges
