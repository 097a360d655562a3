"""The ControlPlane task: the one owner of the store, and the source of snapshots.

A thin Trio shell around the pure store. Commands arrive on a memory channel, each with its own
reply channel, and are applied one at a time; every accepted change becomes a new `EdgeConfig`.
Each subscriber gets snapshots over its own memory channel, behind a `Link` that can delay them
or cut them off (the seam the scenario runner uses for propagation and partitions). Delivery is
latest-wins: a slow subscriber is handed the newest snapshot that has reached it, never a backlog,
and versions only move forward.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import attrs
import trio

from edge.control.errors import INTERNAL_ERROR, ApiError
from edge.control.snapshot import EdgeConfig, build_snapshot
from edge.control.store import Store, apply

T = TypeVar("T")


def wall_clock() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Latest(Generic[T]):
    """A versioned value that tasks can wait on: the newest wins, nothing queues up."""

    def __init__(self) -> None:
        self.value: T | None = None
        self.version = -1
        self._changed = trio.Event()

    def set(self, version: int, value: T) -> None:
        self.version, self.value = version, value
        self._changed.set()
        self._changed = trio.Event()

    async def wait_newer(self, version: int) -> T:
        """The value once its version is above `version`."""
        while self.version <= version:
            await self._changed.wait()
        return self.value  # type: ignore[return-value]


@attrs.frozen
class Published:
    snapshot: EdgeConfig
    at: float  # trio time of publication


class Link:
    """The path from the control plane to one subscriber.

    `delay` (seconds, or a pure function of the snapshot, e.g. seeded by its version) is added to
    each snapshot's publication time;
    `cut()` holds everything back until `heal()`, after which the newest snapshot goes through.
    """

    def __init__(self, delay: float | Callable[[EdgeConfig], float] = 0.0) -> None:
        self._delay = delay
        self._healed = trio.Event()
        self._healed.set()

    def delay_for(self, snapshot: EdgeConfig) -> float:
        return self._delay(snapshot) if callable(self._delay) else self._delay

    @property
    def is_cut(self) -> bool:
        return not self._healed.is_set()

    def cut(self) -> None:
        if not self.is_cut:
            self._healed = trio.Event()

    def heal(self) -> None:
        self._healed.set()

    async def carry(self, published: Published) -> None:
        """Return once `published` has reached the far end of the link."""
        await trio.sleep_until(published.at + self.delay_for(published.snapshot))
        while self.is_cut:
            await self._healed.wait()


class ControlPlane:
    """Run with `await nursery.start(plane.run)`; cancel the nursery to stop it."""

    def __init__(self, store: Store, *, now: Callable[[], dt.datetime] = wall_clock) -> None:
        self._store = store
        self._now = now
        self._latest: Latest[Published] = Latest()
        self._commands_in, self._commands_out = trio.open_memory_channel[tuple](math.inf)
        self._nursery: trio.Nursery | None = None

    @property
    def store(self) -> Store:
        return self._store

    @property
    def snapshot(self) -> EdgeConfig | None:
        published = self._latest.value
        return None if published is None else published.snapshot

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._publish(build_snapshot(self._store))
            task_status.started()
            async for command, reply in self._commands_out:
                reply.send_nowait(self._handle(command))

    async def submit(self, command: Any) -> Any:
        """Apply a command in the plane's order; raise its ApiError if it was refused."""
        reply_in, reply_out = trio.open_memory_channel[Any](1)
        await self._commands_in.send((command, reply_in))
        async with reply_out:
            outcome = await reply_out.receive()
        if isinstance(outcome, ApiError):
            raise outcome
        return outcome

    def subscribe(self, link: Link | None = None) -> trio.MemoryReceiveChannel[EdgeConfig]:
        """A channel of snapshots: the current one at once, then each newer one that arrives.

        Close the channel to unsubscribe; the subscriber's tasks then end.
        """
        if self._nursery is None:
            raise RuntimeError("subscribe() needs a running ControlPlane (nursery.start(plane.run))")
        send, receive = trio.open_memory_channel[EdgeConfig](0)
        self._nursery.start_soon(self._serve_subscriber, link or Link(), send)
        return receive

    def _handle(self, command: Any) -> Any:
        try:
            applied = apply(self._store, command, self._now())
        except ApiError as err:
            return err
        except Exception as exc:  # noqa: BLE001 - a bug in one command must not stop the plane
            return ApiError(INTERNAL_ERROR, f"internal error: {type(exc).__name__}: {exc}")
        if applied.store is not self._store:
            self._store = applied.store
            self._publish(build_snapshot(self._store, self.snapshot))
        return applied.result

    def _publish(self, snapshot: EdgeConfig) -> None:
        self._latest.set(snapshot.version, Published(snapshot, trio.current_time()))

    async def _serve_subscriber(self, link: Link, send: trio.MemorySendChannel) -> None:
        arrived: Latest[EdgeConfig] = Latest()
        async with trio.open_nursery() as pair:
            pair.start_soon(self._carry, link, arrived)
            await self._deliver(arrived, send)
            pair.cancel_scope.cancel()

    async def _carry(self, link: Link, arrived: Latest[EdgeConfig]) -> None:
        """Move each published snapshot across the link, in version order."""
        while True:
            published = await self._latest.wait_newer(arrived.version)
            await link.carry(published)
            newest = self._latest.value
            if newest.at + link.delay_for(newest.snapshot) <= trio.current_time():
                published = newest  # after a partition heals, the newest goes straight through
            arrived.set(published.snapshot.version, published.snapshot)

    async def _deliver(self, arrived: Latest[EdgeConfig], send: trio.MemorySendChannel) -> None:
        """Hand the newest arrived snapshot to the subscriber until it closes its channel."""
        delivered = -1
        async with send:
            while True:
                snapshot = await arrived.wait_newer(delivered)
                outcome = await _send_unless_replaced(arrived, snapshot, send)
                if outcome is _Delivery.CLOSED:
                    return
                if outcome is _Delivery.SENT:
                    delivered = snapshot.version


class _Delivery(enum.Enum):
    SENT = "sent"
    REPLACED = "replaced"
    CLOSED = "closed"


async def _send_unless_replaced(
    arrived: Latest[EdgeConfig], snapshot: EdgeConfig, send: trio.MemorySendChannel
) -> _Delivery:
    """Send `snapshot`, unless a newer one arrives first: then send nothing and say so."""
    async with trio.open_nursery() as race:

        async def cancel_when_replaced() -> None:
            await arrived.wait_newer(snapshot.version)
            race.cancel_scope.cancel()

        race.start_soon(cancel_when_replaced)
        try:
            await send.send(snapshot)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            outcome = _Delivery.CLOSED
        else:
            outcome = _Delivery.SENT
        race.cancel_scope.cancel()
        return outcome
    return _Delivery.REPLACED
