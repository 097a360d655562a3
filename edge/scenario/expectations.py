"""Checking a scenario's expectations against what the run counted. Pure."""

from __future__ import annotations

import operator

import attrs

from edge.scenario import model as m
from edge.scenario.tally import Tally

_OPS = {
    m.Op.EQ: operator.eq,
    m.Op.NE: operator.ne,
    m.Op.LT: operator.lt,
    m.Op.LE: operator.le,
    m.Op.GT: operator.gt,
    m.Op.GE: operator.ge,
}
_RATIOS = {
    m.Metric.BLOCKED_RATIO: "blocked",
    m.Metric.WOULD_BLOCK_RATIO: "would_block",
    m.Metric.VERIFIED_RATIO: "verified",
}


@attrs.frozen
class Checked:
    description: str
    passed: bool
    actual: float


def describe(expectation: m.Expectation) -> str:
    """`fleet "legacy" blocked == 0 before "enforce"`, unless the file gave a description."""
    if expectation.description:
        return expectation.description
    scope = [
        f'{key} "{getattr(expectation, key)}"'
        for key in ("fleet", "hostname", "node", "reason")
        if getattr(expectation, key) is not None
    ]
    window = [
        f'{key} "{getattr(expectation, key)}"'
        for key in ("phase", "before", "after")
        if getattr(expectation, key) is not None
    ]
    value = f"{expectation.value:g}"
    parts = [*scope, expectation.metric.value, expectation.op.value, value, *window]
    return " ".join(parts).replace('phase "', 'during "')


def window(expectation: m.Expectation, phases: list[tuple[str, object]]) -> list[str] | None:
    """The phases an expectation looks at; None means the whole run."""
    names = [name for name, _ in phases]
    if expectation.phase is not None:
        return [expectation.phase]
    if expectation.before is not None:
        return names[: names.index(expectation.before)] if expectation.before in names else names
    if expectation.after is not None:
        return names[names.index(expectation.after):] if expectation.after in names else []
    return None


def measure(expectation: m.Expectation, tally: Tally, phases) -> float:
    where = {
        key: getattr(expectation, key)
        for key in ("fleet", "node", "reason")
        if getattr(expectation, key) is not None
    }
    if expectation.hostname is not None:
        where["host"] = expectation.hostname
    selected = window(expectation, phases)
    ratio_of = _RATIOS.get(expectation.metric)
    if ratio_of is None:
        return float(tally.sum(expectation.metric.value, phases=selected, **where))
    requests = tally.sum("requests", phases=selected, **where)
    return tally.sum(ratio_of, phases=selected, **where) / requests if requests else 0.0


def check(expectations, tally: Tally, phases) -> list[Checked]:
    out = []
    for expectation in expectations:
        actual = measure(expectation, tally, phases)
        passed = _OPS[expectation.op](actual, expectation.value)
        out.append(Checked(describe(expectation), passed, actual))
    return out
