"""The in-memory pipe keeps trio's stream contract; only `send_nowait` skips the checkpoint."""

from __future__ import annotations

import pytest
import trio
from trio.testing import assert_checkpoints, assert_no_checkpoints

from edge.net import pipe


async def test_every_stream_call_is_a_checkpoint_even_with_bytes_waiting():
    one, other = pipe()
    with assert_checkpoints():
        await one.send_all(b"hello")
    with assert_checkpoints():
        assert await other.receive_some() == b"hello"
    one.send_nowait(b"again")
    with assert_checkpoints():  # already buffered: still a schedule point
        assert await other.receive_some(2) == b"ag"


async def test_send_nowait_is_no_checkpoint_and_wakes_a_parked_receiver():
    one, other = pipe()
    received = []

    async def receive() -> None:
        received.append(await other.receive_some())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receive)
        await trio.testing.wait_all_tasks_blocked()
        with assert_no_checkpoints():
            one.send_nowait(b"flight")
    assert received == [b"flight"]


async def test_a_parked_receive_can_be_cancelled_and_the_pipe_still_works(autojump_clock):
    one, other = pipe()
    with trio.move_on_after(1) as scope:
        await other.receive_some()
    assert scope.cancelled_caught
    one.send_nowait(b"later")
    assert await other.receive_some() == b"later"


async def test_closing_ends_the_peer_and_refuses_sends():
    one, other = pipe()
    one.send_nowait(b"last")
    await one.aclose()
    assert await other.receive_some() == b"last"
    assert await other.receive_some() == b""
    with pytest.raises(trio.BrokenResourceError):
        other.send_nowait(b"x")
    with pytest.raises(trio.ClosedResourceError):
        one.send_nowait(b"x")
