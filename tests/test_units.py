from __future__ import annotations

import pytest

from gonogo.threshold import parse_threshold
from gonogo.units import format_value, parse_duration, parse_quantity


@pytest.mark.parametrize(
    ("text", "value", "unit"),
    [
        ("2s", 2.0, "seconds"),
        ("250ms", 0.25, "seconds"),
        ("1.5m", 90.0, "seconds"),
        ("99.9%", 0.999, "ratio"),
        ("50MB", 50e6, "bytes"),
        ("1KiB", 1024, "bytes"),
        ("0", 0.0, "number"),
        (3, 3.0, "number"),
        ("100/s", 100.0, "per_second"),
    ],
)
def test_quantities(text: str | int, value: float, unit: str) -> None:
    parsed = parse_quantity(text)
    assert parsed[0] == pytest.approx(value) and parsed[1] == unit


def test_bad_quantities_say_what_is_expected() -> None:
    with pytest.raises(ValueError, match="unknown unit 'parsecs'"):
        parse_quantity("3 parsecs")
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("5%")
    only_time = r"^.20 sec. is not a duration; expected e.g. 500ms, 2s, 1m, 1h or seconds$"  # no bytes, no %
    with pytest.raises(ValueError, match=only_time):
        parse_duration("20 sec")


def test_thresholds() -> None:
    assert parse_threshold("< 2s").holds(1.99) and not parse_threshold("< 2s").holds(2.0)
    assert parse_threshold(">= 99%").holds(0.99) and not parse_threshold(">= 99%").holds(0.9899)
    assert parse_threshold("== 0").holds(0) and not parse_threshold("== 0").holds(1)
    relative = parse_threshold("<= +10% baseline")
    assert relative.relative_to_baseline and relative.holds(1.1, baseline=1.0)
    assert not relative.holds(1.2, baseline=1.0)
    with pytest.raises(ValueError, match="not a threshold"):
        parse_threshold("about 3")
    assert parse_threshold(">= 99%").compatible_with("ratio")
    assert not parse_threshold("< 2s").compatible_with("ratio")


def test_formatting() -> None:
    assert format_value(0.995, "ratio") == "99.50%"
    assert format_value(1.0, "ratio") == "100%"
    assert format_value(0.0123, "seconds") == "12.3 ms"
    assert format_value(3 * 1024**2, "bytes") == "3.0 MiB"
    assert format_value(None, "count") == "—"


def test_timeframe_thresholds_find_the_longest_breach() -> None:
    threshold = parse_threshold("< 500ms for 10s")
    assert threshold.timeframe == 10 and threshold.value == 0.5
    series = [(float(t), 0.9 if 5 <= t < 17 else 0.1) for t in range(30)]
    breach = threshold.longest_breach(series)
    assert breach is not None and (breach.start, breach.seconds, breach.worst) == (5, 12, 0.9)
    # a gap in the series ends a breach; one breaching second is a one-second breach
    gapped = threshold.longest_breach([(0.0, 0.1), (1.0, 0.7), (2.0, 0.9), (4.0, 0.8)])
    assert gapped is not None and gapped.seconds == 2
    assert threshold.longest_breach([(0.0, 0.1), (1.0, 0.2)]) is None
    with pytest.raises(ValueError, match="timeframe after 'for' is not a duration"):
        parse_threshold("< 1s for ever")
    with pytest.raises(ValueError, match="cannot have a timeframe"):
        parse_threshold("<= +10% baseline for 10s")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("<= 10% baseline", "the share needs its sign (+ or -)"),
        ("<= +10% basline", "'basline' is not 'baseline'"),
        ("<= 10 % Baseline", "'Baseline' is not 'baseline'; the share needs its sign (+ or -)"),
        ("<= +10 baseline", "the share must be a signed percentage before 'baseline'"),
    ],
)
def test_a_mistyped_relative_threshold_is_told_the_relative_form(text: str, why: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_threshold(text)
    assert str(raised.value) == (
        f"{text!r} is not a relative threshold ({why}); expected OP +N% baseline or OP -N% baseline, "
        "the sign required, e.g. '<= +10% baseline'"
    )
    assert parse_threshold("<= +10 % baseline").value == pytest.approx(0.1)


def test_p_values_keep_three_digits_and_never_read_0() -> None:
    from gonogo.units import format_p_value

    assert [format_p_value(p) for p in (0.0, 3.4e-30, 0.04213, 1.0)] == ["< 1e-300", "3.4e-30", "0.0421", "1"]
