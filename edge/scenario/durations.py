"""Durations and offsets as scenario files write them: "90s", "15m", "2h", "3d", "1h30m", "-365d".

A bare number means seconds. Offsets are durations with an optional sign, relative to the
scenario's start.
"""

from __future__ import annotations

import datetime as dt
import re

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(value: object, *, signed: bool = False) -> dt.timedelta:
    """A timedelta from "1h30m" or seconds; ValueError says what was expected."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f'expected a duration like "90s", "15m", "2h" or "3d", got {value!r}')
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = value.strip().replace(" ", "")
        sign = 1
        if text[:1] in "+-" and signed:
            sign, text = (-1 if text[0] == "-" else 1), text[1:]
        parts = _PART.findall(text)
        if not text or "".join(n + u for n, u in parts) != text:
            kind = "an offset like \"-30d\" or \"+2h\"" if signed else 'a duration like "90s"'
            raise ValueError(f"expected {kind} (units ms, s, m, h, d, w), got {value!r}")
        seconds = sign * sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds < 0 and not signed:
        raise ValueError(f"expected a duration that is not negative, got {value!r}")
    return dt.timedelta(seconds=seconds)


def format_duration(delta: dt.timedelta) -> str:
    """The shortest exact rendering: "2h", "1h30m", "45s", "-3d"."""
    total = delta.total_seconds()
    sign, total = ("-" if total < 0 else ""), abs(total)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [
        f"{int(days)}d" if days else "",
        f"{int(hours)}h" if hours else "",
        f"{int(minutes)}m" if minutes else "",
        f"{seconds:g}s" if seconds else "",
    ]
    return sign + ("".join(parts) or "0s")
