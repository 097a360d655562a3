"""What a rehearsal counts: every event tagged with its client fleet and timeline phase.

A collector that also knows, for each connection id, which fleet opened it and in which phase
(clients tag their connection before the first byte), so that reports and expectations can ask
"how many requests of fleet legacy would have been blocked before the enforce phase".
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from typing import IO

import attrs

from edge.collector import Collector
from edge.events import ConnectionEvent, Decision, Event, TlsOutcome

UNKNOWN = "(untagged)"


@attrs.frozen
class Tag:
    fleet: str
    phase: str


@attrs.frozen
class Key:
    fleet: str
    phase: str
    host: str
    node: str
    reason: str
    metric: str


class Tally(Collector):
    def __init__(self, *, jsonl: IO[str] | None = None, bucket_seconds: float = 60.0) -> None:
        super().__init__(jsonl=jsonl)
        self.tags: dict[str, Tag] = {}
        self.counts: collections.Counter[Key] = collections.Counter()
        self.bucket_seconds = bucket_seconds
        self.series: collections.Counter[tuple[int, str]] = collections.Counter()
        self.start = None  # set by the runner: simulated start, for the time series

    def tag(self, conn_id: str, fleet: str, phase: str) -> None:
        self.tags[conn_id] = Tag(fleet, phase)

    async def record(self, event: Event) -> None:
        self.totals.add(event)
        tag = self.tags.get(event.conn_id, Tag(UNKNOWN, UNKNOWN))
        for metric in _metrics(event):
            host = event.sni or "" if isinstance(event, ConnectionEvent) else event.host
            reason = _reason(event)
            self.counts[Key(tag.fleet, tag.phase, host, event.node, reason, metric)] += 1
        if self.start is not None and not isinstance(event, ConnectionEvent):
            bucket = int((event.at - self.start).total_seconds() // self.bucket_seconds)
            self.series[(bucket, event.decision.value)] += 1
        self.write(event, fleet=tag.fleet, phase=tag.phase)

    def sum(self, metric: str, *, phases: Iterable[str] | None = None, **where: str) -> int:
        """Total of a metric over keys matching `where` (fleet, host, node, reason)."""
        return sum(self.reasons(metric, phases=phases, **where).values())

    def reasons(
        self, metric: str, *, phases: Iterable[str] | None = None, **where: str
    ) -> collections.Counter[str]:
        """A metric's total per reason, over keys matching `where` and `phases`."""
        allowed = None if phases is None else set(phases)
        out: collections.Counter[str] = collections.Counter()
        for key, n in self.counts.items():
            if (
                key.metric == metric
                and (allowed is None or key.phase in allowed)
                and all(getattr(key, name) == value for name, value in where.items())
            ):
                out[key.reason] += n
        return out

    def values(self, dimension: str) -> list[str]:
        """The distinct values of a key dimension (fleet, host, ...), sorted."""
        return sorted({getattr(key, dimension) for key in self.counts})


def _reason(event: Event) -> str:
    if isinstance(event, ConnectionEvent):
        return event.verdict.reason.value if event.verdict else event.outcome.value
    return event.reason


def _metrics(event: Event) -> list[str]:
    if isinstance(event, ConnectionEvent):
        failed = event.outcome is not TlsOutcome.OK
        return ["connections"] + (["failed_handshakes"] if failed else [])
    metrics = ["requests"]
    if event.reason == "OK":
        metrics.append("verified")
    if event.decision is Decision.BLOCK:
        metrics.append("blocked")
    if event.decision is Decision.LOG:
        metrics.append("logged")
    if event.would_block:
        metrics.append("would_block")
    return metrics
