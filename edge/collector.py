"""The Collector task: every event, counted and written, none dropped.

Nodes send events over a bounded memory channel, so a slow collector slows the nodes down
(backpressure) instead of losing events. The collector keeps running totals by dimension and
writes JSON Lines when given a file.
"""

from __future__ import annotations

import collections
import json
from typing import IO

import trio

from edge.events import ConnectionEvent, Event

DEFAULT_BUFFER = 1024


class Totals:
    """Counters of connections and requests, keyed by the dimensions reports group by."""

    def __init__(self) -> None:
        self.connections: collections.Counter[tuple] = collections.Counter()
        self.requests: collections.Counter[tuple] = collections.Counter()
        self.outcomes_by_conn: dict[str, str] = {}
        self.duplicates: list[str] = []

    def add(self, event: Event) -> None:
        if isinstance(event, ConnectionEvent):
            if event.conn_id in self.outcomes_by_conn:
                self.duplicates.append(event.conn_id)
            self.outcomes_by_conn[event.conn_id] = event.outcome.value
            reason = event.verdict.reason.value if event.verdict else ""
            self.connections[(event.node, event.sni, event.outcome.value, reason)] += 1
        else:
            key = (event.node, event.host, event.decision.value, event.status, event.reason)
            self.requests[key] += 1

    def count(self, counter: str, **where) -> int:
        """Sum of a counter over the keys matching `where` (node, sni/host, outcome, ...)."""
        names = _DIMENSIONS[counter]
        table = getattr(self, counter)
        return sum(
            n for key, n in table.items()
            if all(key[names.index(name)] == value for name, value in where.items())
        )


_DIMENSIONS = {
    "connections": ("node", "sni", "outcome", "reason"),
    "requests": ("node", "host", "decision", "status", "reason"),
}


class Collector:
    """Run with `nursery.start_soon(collector.run)`.

    Producers each get a `sender()`; the collector runs until cancelled. Its owner knows when
    every event is in (a runner counts what its clients attempted) and only then cancels.
    """

    def __init__(self, *, buffer: int = DEFAULT_BUFFER, jsonl: IO[str] | None = None) -> None:
        self.totals = Totals()
        self._jsonl = jsonl
        self._send, self._receive = trio.open_memory_channel[Event](buffer)

    def sender(self) -> trio.MemorySendChannel[Event]:
        return self._send.clone()

    async def run(self) -> None:
        """Record events until cancelled; what is already queued then is still recorded, so a
        stopped `edge serve` writes every event its nodes sent."""
        async with self._receive:
            try:
                async for event in self._receive:
                    await self.record(event)
                    # and whatever else is queued: `receive` takes a scheduler pass per event,
                    # which under load let the queue grow to hundreds (measured, issue 6)
                    await self._record_queued()
            finally:
                with trio.CancelScope(shield=True):
                    await self._record_queued()

    async def _record_queued(self) -> None:
        while True:
            try:
                event = self._receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                return
            await self.record(event)

    async def record(self, event: Event) -> None:
        """Count and write one event; subclasses add their own tallies (and tests slow it down)."""
        self.totals.add(event)
        self.write(event)

    def write(self, event: Event, **extra: str) -> None:
        """One JSON line: the event and `extra` keys. Serialised only when there is a file to
        write to: most simulations only count, and rendering an event costs more than that."""
        if self._jsonl is not None:
            self._jsonl.write(json.dumps({**event.to_json(), **extra}, sort_keys=True) + "\n")
