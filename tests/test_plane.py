"""The ControlPlane task: commands in order, snapshots out, latest-wins, links, shutdown."""

from __future__ import annotations

import datetime as dt

import pytest
import trio
import trio.testing

from edge.control import commands as c
from edge.control.errors import ApiError
from edge.control.plane import ControlPlane, Link
from edge.control.store import new_store

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


async def start_plane(nursery) -> ControlPlane:
    plane = ControlPlane(new_store(now=NOW), now=lambda: NOW)
    await nursery.start(plane.run)
    return plane


async def test_subscriber_gets_current_snapshot_at_once_then_each_change():
    async with trio.open_nursery() as nursery:
        plane = await start_plane(nursery)
        snapshots = plane.subscribe()
        first = await snapshots.receive()
        assert first.version == 0
        account = await plane.submit(c.CreateAccount("acme"))
        second = await snapshots.receive()
        assert second.version == plane.store.version == 1  # one accepted command, one version
        assert account.id in plane.store.accounts
        nursery.cancel_scope.cancel()


async def test_refused_command_raises_and_publishes_nothing(autojump_clock):
    async with trio.open_nursery() as nursery:
        plane = await start_plane(nursery)
        snapshots = plane.subscribe()
        before = await snapshots.receive()
        with pytest.raises(ApiError) as refused:
            await plane.submit(c.CreateZone("no-such-account", "example.com"))
        assert refused.value.code == 1451
        assert plane.store.version == before.version
        with trio.move_on_after(1) as waited:
            await snapshots.receive()
        assert waited.cancelled_caught
        nursery.cancel_scope.cancel()
