"""Worker processes for `edge serve --workers`: the framing (pure) and a worker that dies."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import socket
from pathlib import Path

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from edge.collector import Collector
from edge.control import commands as c
from edge.control.plane import ControlPlane
from edge.control.store import Settings, new_store
from edge.node.identity import EdgeIdentity
from edge.node.origin import Origin
from edge.pki.issuer import Authority
from edge.workers import Applied, Frames, WorkerExited, Workers, frame


@given(st.lists(st.integers(min_value=0, max_value=2**40), max_size=20), st.data())
def test_frames_come_out_whole_however_the_stream_is_cut(versions, data):
    stream = b"".join(frame(Applied(v)) for v in versions)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    frames, out = Frames(), []
    for start, end in zip([0, *cuts], [*cuts, len(stream)]):
        out += frames.feed(stream[start:end])
    assert out == [Applied(v) for v in versions]


def _workers(plane: ControlPlane, count: int = 2) -> Workers:
    return Workers(count, plane=plane, identity=EdgeIdentity(), collector=Collector(),
                   origin=Origin())


@contextlib.asynccontextmanager
async def _running_plane():
    """A running control plane, stopped when the block ends (bounded: nothing here may hang)."""
    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            plane = ControlPlane(new_store(Settings(), now=dt.datetime.now(dt.timezone.utc)))
            await nursery.start(plane.run)
            yield plane
            nursery.cancel_scope.cancel()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


async def test_a_worker_that_dies_stops_serving_loudly():
    with pytest.raises(BaseExceptionGroup) as raised:
        async with _running_plane() as plane, trio.open_nursery() as serving:
            workers = _workers(plane)
            await serving.start(workers.run, ("127.0.0.1", 0))
            await workers.settle()
            assert min(workers.applied) == plane.store.version
            os.kill(workers.pids[0], signal.SIGKILL)
            await trio.sleep(30)  # the nursery ends long before: the worker's end is an error
            serving.cancel_scope.cancel()
    assert raised.group_contains(WorkerExited, match="local-1 ended on its own")


async def test_nobody_else_can_join_the_workers_port_and_stop_ends_them():
    """The workers share the parent's one socket: unlike SO_REUSEPORT listeners, it lets no
    other process (even one asking for SO_REUSEPORT) take a share of the connections. After
    stop(), run() returns once every worker process has ended."""
    async with _running_plane() as plane, trio.open_nursery() as serving:
        workers = _workers(plane)
        _, port = await serving.start(workers.run, ("127.0.0.1", 0))
        intruder = socket.socket()
        intruder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        intruder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        with intruder, pytest.raises(OSError):
            intruder.bind(("127.0.0.1", port))
        workers.stop()
    assert not any(_alive(pid) for pid in workers.pids)


async def test_a_worker_lost_during_a_stop_is_an_error_not_a_silent_loss():
    """A worker killed while stopping never hands over its last events: `run` says so."""
    with pytest.raises(BaseExceptionGroup) as raised:
        async with _running_plane() as plane, trio.open_nursery() as serving:
            workers = _workers(plane)
            await serving.start(workers.run, ("127.0.0.1", 0))
            await workers.settle()
            os.kill(workers.pids[0], signal.SIGSTOP)  # it cannot finish its stop first
            workers.stop()
            os.kill(workers.pids[0], signal.SIGKILL)
    assert raised.group_contains(WorkerExited, match="before handing over its last events")


async def test_a_stop_right_after_a_large_snapshot_still_ends():
    """A stop while a multi-megabyte snapshot is on its way: the frame goes out whole (a cut
    one would leave the worker waiting for bytes that never come), then the stop."""
    async with _running_plane() as plane:
        account = await plane.submit(c.CreateAccount("a"))
        zone = await plane.submit(c.CreateZone(account.id, "example.com"))
        ca = await plane.submit(c.UploadCaCertificate(
            account.id, Authority.root({"CN": "big"}).certificate_pem))
        workers = _workers(plane)
        async with trio.open_nursery() as serving:
            await serving.start(workers.run, ("127.0.0.1", 0))
            await plane.submit(c.PutHostnameAssociations(
                zone.id, [f"h{i}.example.com" for i in range(100_000)], ca.id))
            await trio.sleep(0.02)  # the snapshot is being written to the workers
            workers.stop()
    assert not any(_alive(pid) for pid in workers.pids)
