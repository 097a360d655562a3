"""Worker processes for `edge serve --workers`: the framing (pure) and a worker that dies."""

from __future__ import annotations

import datetime as dt
import os
import signal

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from edge.collector import Collector
from edge.control.plane import ControlPlane
from edge.control.store import Settings, new_store
from edge.node.identity import EdgeIdentity
from edge.node.origin import Origin
from edge.workers import Applied, Frames, WorkerExited, Workers, frame, reserve, reuse_port_socket


@given(st.lists(st.integers(min_value=0, max_value=2**40), max_size=20), st.data())
def test_frames_come_out_whole_however_the_stream_is_cut(versions, data):
    stream = b"".join(frame(Applied(v)) for v in versions)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    frames, out = Frames(), []
    for start, end in zip([0, *cuts], [*cuts, len(stream)]):
        out += frames.feed(stream[start:end])
    assert out == [Applied(v) for v in versions]


async def test_a_worker_that_dies_stops_serving_loudly():
    plane = ControlPlane(new_store(Settings(), now=dt.datetime.now(dt.timezone.utc)))
    collector = Collector()
    workers = Workers(2, plane=plane, identity=EdgeIdentity(), collector=collector,
                      origin=Origin())
    with pytest.raises(BaseExceptionGroup) as raised:
        async with trio.open_nursery() as nursery:
            await nursery.start(plane.run)
            host, port = await nursery.start(workers.run, ("127.0.0.1", 0))
            await workers.settle()
            assert port > 0 and min(workers.applied) == plane.store.version
            os.kill(workers.pids[0], signal.SIGKILL)
            await trio.sleep(30)  # the nursery ends long before: the worker's end is an error
    assert raised.group_contains(WorkerExited, match="local-1 ended on its own")


def test_a_port_another_edge_shares_by_so_reuseport_is_refused():
    """SO_REUSEPORT would let a second edge split the first one's traffic without a word."""
    with reuse_port_socket(("127.0.0.1", 0), listen=True) as first:
        with pytest.raises(OSError):
            reserve(first.getsockname()[:2])
    with reserve(("127.0.0.1", 0)) as reservation:  # port 0: a free port, nothing to probe
        assert reservation.getsockname()[1] > 0
