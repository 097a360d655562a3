"""Durations and offsets as scenario files write them, and as edge prints them.

`format_duration` renders days, hours, minutes and fractional seconds (`"1d2h3m4.5s"`, never
`ms` or `w`) with integer arithmetic, and `parse_duration` reads numbers as exact fractions, so
the round trip is exact down to the microsecond, whatever the size.
"""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.scenario.durations import format_duration, parse_duration

DURATION = 'expected a duration like "90s" (units ms, s, m, h, d, w), got '
OFFSET = 'expected an offset like "-30d" or "+2h" (units ms, s, m, h, d, w), got '
NOT_A_DURATION = 'expected a duration like "90s", "15m", "2h" or "3d", got '


def seconds(n: float) -> dt.timedelta:
    return dt.timedelta(seconds=n)


# --- parse_duration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", seconds(90)),
        ("15m", dt.timedelta(minutes=15)),
        ("2h", dt.timedelta(hours=2)),
        ("3d", dt.timedelta(days=3)),
        ("1w", dt.timedelta(weeks=1)),
        ("250ms", dt.timedelta(milliseconds=250)),
        ("5ms", dt.timedelta(milliseconds=5)),  # ms, not minutes then seconds
        ("1h30m", dt.timedelta(minutes=90)),
        ("1.5h", dt.timedelta(minutes=90)),
        ("0.5s", dt.timedelta(milliseconds=500)),
        ("1d2h3m4s5ms", dt.timedelta(days=1, hours=2, minutes=3, seconds=4, milliseconds=5)),
        (" 1h 30m ", dt.timedelta(minutes=90)),  # spaces are ignored
        ("30m1h", dt.timedelta(minutes=90)),  # parts in any order...
        ("1s1s", seconds(2)),  # ...and repeated: they add up
        ("0s", dt.timedelta(0)),
        (90, seconds(90)),  # a number is seconds
        (0.25, dt.timedelta(milliseconds=250)),
        (0, dt.timedelta(0)),
    ],
)
def test_parse(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-30d", dt.timedelta(days=-30)),
        ("+2h", dt.timedelta(hours=2)),
        ("2h", dt.timedelta(hours=2)),
        ("-1h30m", -dt.timedelta(minutes=90)),  # the sign applies to the whole offset
        ("-0s", dt.timedelta(0)),
        (-86400, dt.timedelta(days=-1)),
        (-0.5, dt.timedelta(milliseconds=-500)),
    ],
)
def test_parse_signed(text, expected):
    assert parse_duration(text, signed=True) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", DURATION + "''"),
        ("   ", DURATION + "'   '"),
        ("3 hours", DURATION + "'3 hours'"),
        ("1H", DURATION + "'1H'"),  # units are lower case
        ("10", DURATION + "'10'"),  # a quoted bare number is not seconds
        ("0", DURATION + "'0'"),
        ("5", DURATION + "'5'"),
        (".5s", DURATION + "'.5s'"),
        ("5.s", DURATION + "'5.s'"),
        ("1e3s", DURATION + "'1e3s'"),
        ("5x", DURATION + "'5x'"),
        ("1mo", DURATION + "'1mo'"),
        ("h", DURATION + "'h'"),
        ("-5m", DURATION + "'-5m'"),  # no sign without signed=True
        ("+5m", DURATION + "'+5m'"),
        (-5, "expected a duration that is not negative, got -5"),
        (-0.001, "expected a duration that is not negative, got -0.001"),
        (None, NOT_A_DURATION + "None"),
        (True, NOT_A_DURATION + "True"),  # a bool is not a number of seconds
        ([1], NOT_A_DURATION + "[1]"),
        (dt.timedelta(1), NOT_A_DURATION + "datetime.timedelta(days=1)"),
    ],
)
def test_parse_errors(value, message):
    with pytest.raises(ValueError) as caught:
        parse_duration(value)
    assert str(caught.value) == message


@pytest.mark.parametrize("value", ["+", "-", "--5s", "+-5s", "5s-", "abc"])
def test_parse_signed_errors(value):
    with pytest.raises(ValueError) as caught:
        parse_duration(value, signed=True)
    assert str(caught.value) == OFFSET + repr(value)


def test_parse_signed_empty_is_a_value_error():
    with pytest.raises(ValueError, match="expected an offset"):
        parse_duration("", signed=True)


@pytest.mark.parametrize("value", [float("inf"), 1e300])
def test_parse_huge_number_is_a_value_error(value):
    with pytest.raises(ValueError):
        parse_duration(value)


def test_parse_nan_is_a_value_error():
    with pytest.raises(ValueError):
        parse_duration(float("nan"))


@given(
    days=st.integers(0, 10_000),
    hours=st.integers(0, 100),
    minutes=st.integers(0, 100),
    secs=st.integers(0, 100),
    millis=st.integers(0, 999),
)
def test_parse_adds_up_the_parts(days, hours, minutes, secs, millis):
    text = f"{days}d{hours}h{minutes}m{secs}s{millis}ms"
    expected = dt.timedelta(days=days, hours=hours, minutes=minutes, seconds=secs,
                            milliseconds=millis)
    assert parse_duration(text) == expected
    assert parse_duration("-" + text, signed=True) == -expected


@given(st.integers(0, 10**10))
def test_a_whole_number_is_seconds(n):
    assert parse_duration(n) == seconds(n)
    assert parse_duration(-n, signed=True) == seconds(-n)


# --- format_duration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (dt.timedelta(0), "0s"),
        (seconds(45), "45s"),
        (dt.timedelta(hours=2), "2h"),
        (dt.timedelta(minutes=90), "1h30m"),
        (dt.timedelta(days=-3), "-3d"),
        (-dt.timedelta(minutes=90), "-1h30m"),
        (dt.timedelta(days=14), "14d"),  # never weeks
        (dt.timedelta(days=1, seconds=1), "1d1s"),
        (dt.timedelta(milliseconds=1500), "1.5s"),
        (dt.timedelta(milliseconds=1), "0.001s"),  # never ms
        (dt.timedelta(seconds=59, milliseconds=999), "59.999s"),
        (dt.timedelta(microseconds=100), "0.0001s"),
        (dt.timedelta(days=1, hours=2, minutes=3, seconds=4), "1d2h3m4s"),
        (dt.timedelta.max - dt.timedelta(microseconds=999999), "999999999d23h59m59s"),
        (dt.timedelta.min, "-999999999d"),
    ],
)
def test_format(delta, text):
    assert format_duration(delta) == text


# Whole seconds: the float total is exact over timedelta's whole range.
whole_seconds = st.integers(
    dt.timedelta.min.days * 86400, dt.timedelta.max.days * 86400 + dt.timedelta.max.seconds
).map(seconds)

# Whole milliseconds: exact while the float total resolves a millisecond in its sixth
# significant digit after the seconds' divmod, i.e. below about 2**33 s; 2**32 s (136 years)
# leaves a margin.
MAX_MS = 2**32 * 1000
whole_millis = st.integers(-MAX_MS, MAX_MS).map(lambda n: dt.timedelta(milliseconds=n))


@given(whole_seconds)
def test_round_trip_whole_seconds(delta):
    text = format_duration(delta)
    assert parse_duration(text, signed=True) == delta
    if delta >= dt.timedelta(0):
        assert parse_duration(text) == delta


@given(whole_millis)
def test_round_trip_whole_milliseconds(delta):
    assert parse_duration(format_duration(delta), signed=True) == delta


@given(st.integers(-10**6, 10**6).map(lambda n: dt.timedelta(milliseconds=n)))
def test_round_trip_small_milliseconds(delta):
    # the worst case for :g is a tiny fractional part: keep some examples right there
    assert parse_duration(format_duration(delta), signed=True) == delta


@given(whole_millis)
def test_format_uses_days_hours_minutes_seconds_only(delta):
    text = format_duration(delta).lstrip("-")
    assert "ms" not in text and "w" not in text and "e" not in text


@pytest.mark.parametrize("micros", [1, 10, 50])
def test_round_trip_tiny_fractions(micros):
    delta = dt.timedelta(microseconds=micros)
    assert parse_duration(format_duration(delta)) == delta


def test_round_trip_milliseconds_on_a_huge_duration():
    delta = dt.timedelta(days=100_000, milliseconds=1)
    assert parse_duration(format_duration(delta)) == delta


def test_fractions_of_a_second_are_written_exactly():
    assert format_duration(dt.timedelta(seconds=12, microseconds=345678)) == "12.345678s"
