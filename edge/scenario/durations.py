"""Durations and offsets as scenario files write them: "90s", "15m", "2h", "3d", "1h30m", "-365d".

A bare number means seconds. Offsets are durations with an optional sign, relative to the
scenario's start.
"""

from __future__ import annotations

import datetime as dt
import re
from fractions import Fraction

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS = {"ms": Fraction(1, 1000), "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(value: object, *, signed: bool = False) -> dt.timedelta:
    """A timedelta from "1h30m" or seconds; ValueError says what was expected."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f'expected a duration like "90s", "15m", "2h" or "3d", got {value!r}')
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = value.strip().replace(" ", "")
        sign = 1
        if signed and text[:1] in ("+", "-"):
            sign, text = (-1 if text[0] == "-" else 1), text[1:]
        parts = _PART.findall(text)
        if not text or "".join(n + u for n, u in parts) != text:
            kind = "an offset like \"-30d\" or \"+2h\"" if signed else 'a duration like "90s"'
            raise ValueError(f"expected {kind} (units ms, s, m, h, d, w), got {value!r}")
        seconds = sign * sum(Fraction(n) * _UNITS[u] for n, u in parts)
    if seconds < 0 and not signed:
        raise ValueError(f"expected a duration that is not negative, got {value!r}")
    try:
        return dt.timedelta(microseconds=round(Fraction(seconds) * 1_000_000))
    except (OverflowError, ValueError):
        raise ValueError(f"expected a duration of at most 999999999 days, got {value!r}") from None


def format_duration(delta: dt.timedelta) -> str:
    """The shortest exact rendering: "2h", "1h30m", "45s", "1.5s", "-3d" (integer arithmetic, so
    parse_duration(format_duration(d)) == d for every timedelta)."""
    sign = "-" if delta < dt.timedelta(0) else ""
    micros = abs(delta) // dt.timedelta(microseconds=1)
    days, micros = divmod(micros, 86_400_000_000)
    hours, micros = divmod(micros, 3_600_000_000)
    minutes, micros = divmod(micros, 60_000_000)
    seconds, micros = divmod(micros, 1_000_000)
    fraction = f".{micros:06d}".rstrip("0") if micros else ""
    parts = [
        f"{days}d" if days else "",
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
        f"{seconds}{fraction}s" if seconds or micros else "",
    ]
    return sign + ("".join(parts) or "0s")
