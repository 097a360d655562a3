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


async def make_tenant(plane: ControlPlane) -> str:
    account = await plane.submit(c.CreateAccount("acme"))
    zone = await plane.submit(c.CreateZone(account.id, "example.com"))
    return zone.id


async def test_slow_subscriber_gets_the_newest_never_a_backlog(autojump_clock):
    async with trio.open_nursery() as nursery:
        plane = await start_plane(nursery)
        snapshots = plane.subscribe()
        assert (await snapshots.receive()).version == 0
        zone_id = await make_tenant(plane)
        for index in range(20):
            await plane.submit(c.PutHostnameAssociations(zone_id, [f"h{index}.example.com"]))
        await trio.sleep(1)  # the subscriber was busy all along
        newest = await snapshots.receive()
        assert newest.version == plane.store.version == 22
        assert newest.host("h19.example.com") is not None
        assert newest.host("h18.example.com") is None
        with trio.move_on_after(5) as waited:
            await snapshots.receive()
        assert waited.cancelled_caught  # nothing stale left queued
        nursery.cancel_scope.cancel()


async def test_several_subscribers_each_see_versions_only_move_forward(autojump_clock):
    seen: dict[int, list[int]] = {0: [], 1: [], 2: []}

    async def watch(index: int, snapshots, pause: float) -> None:
        async for snapshot in snapshots:
            seen[index].append(snapshot.version)
            await trio.sleep(pause)

    async with trio.open_nursery() as nursery:
        plane = await start_plane(nursery)
        for index, pause in enumerate([0, 0.3, 2.0]):
            nursery.start_soon(watch, index, plane.subscribe(), pause)
        await trio.sleep(0.1)
        zone_id = await make_tenant(plane)
        for index in range(10):
            await plane.submit(c.PutHostnameAssociations(zone_id, [f"h{index}.example.com"]))
            await trio.sleep(0.25)
        await trio.sleep(10)
        nursery.cancel_scope.cancel()
    final = plane.store.version
    for versions in seen.values():
        assert versions == sorted(set(versions)), versions
        assert versions[0] == 0 and versions[-1] == final
    assert len(seen[0]) == final + 1  # a subscriber that keeps up sees every version
    assert len(seen[2]) < len(seen[0])  # a slow one skips to the newest


async def test_link_delay_holds_each_snapshot_back(autojump_clock):
    async with trio.open_nursery() as nursery:
        plane = await start_plane(nursery)
        snapshots = plane.subscribe(Link(delay=5.0))
        start = trio.current_time()
        assert (await snapshots.receive()).version == 0
        assert trio.current_time() - start == pytest.approx(5.0)
        published = trio.current_time()
        await plane.submit(c.CreateAccount("acme"))
        assert (await snapshots.receive()).version == 1
        assert trio.current_time() - published == pytest.approx(5.0)
        nursery.cancel_scope.cancel()


async def test_cut_link_holds_back_until_healed_then_newest_arrives(autojump_clock):
    async with trio.open_nursery() as nursery:
        plane = await start_plane(nursery)
        link = Link()
        snapshots = plane.subscribe(link)
        assert (await snapshots.receive()).version == 0
        link.cut()
        zone_id = await make_tenant(plane)
        await plane.submit(c.PutHostnameAssociations(zone_id, ["a.example.com"]))
        with trio.move_on_after(60) as waited:
            await snapshots.receive()
        assert waited.cancelled_caught
        link.heal()
        assert (await snapshots.receive()).version == plane.store.version
        nursery.cancel_scope.cancel()


async def test_closing_the_channel_unsubscribes_and_plane_goes_on(autojump_clock):
    async with trio.open_nursery() as nursery:
        plane = await start_plane(nursery)
        snapshots = plane.subscribe()
        await snapshots.receive()
        await snapshots.aclose()
        await plane.submit(c.CreateAccount("acme"))
        await trio.sleep(1)
        other = plane.subscribe()
        assert (await other.receive()).version == 1
        nursery.cancel_scope.cancel()


async def test_shutdown_by_nursery_cancellation_ends_every_task():
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            plane = await start_plane(nursery)
            for _ in range(3):
                plane.subscribe(Link(delay=100))
            nursery.cancel_scope.cancel()
    # reaching here means the plane, its pumps and links all honoured the cancellation


async def test_commands_from_many_tasks_are_applied_one_at_a_time(autojump_clock):
    async with trio.open_nursery() as nursery:
        plane = await start_plane(nursery)
        zone_id = await make_tenant(plane)
        async with trio.open_nursery() as clients:
            for index in range(50):
                clients.start_soon(
                    plane.submit, c.PutHostnameAssociations(zone_id, [f"h{index}.example.com"])
                )
        assert plane.store.version == 52
        assert len(plane.snapshot.zones["example.com"].hosts) == 1
        nursery.cancel_scope.cancel()


async def test_subscribe_before_run_is_a_clear_error():
    plane = ControlPlane(new_store(now=NOW))
    with pytest.raises(RuntimeError, match="running ControlPlane"):
        plane.subscribe()
