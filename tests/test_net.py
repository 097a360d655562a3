"""The in-memory pipe keeps trio's stream contract; only `send_nowait` skips the checkpoint."""

from __future__ import annotations

import errno

import pytest
import trio
from trio.testing import assert_checkpoints, assert_no_checkpoints

from edge.net import TcpListener, pipe


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


class _FakeSocket:
    def __init__(self, peer):
        self.peer = peer

    def getpeername(self):
        if isinstance(self.peer, OSError):
            raise self.peer
        return self.peer


class _FakeStream:
    def __init__(self, peer):
        self.socket = _FakeSocket(peer)
        self.closed = False

    async def aclose(self):
        self.closed = True


class _FakeListener:
    """Hands out what `script` says: an exception to raise or a stream to return."""

    def __init__(self, script):
        self.script = list(script)

    async def accept(self):
        await trio.lowlevel.checkpoint()
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item


async def test_tcp_accept_survives_resets_and_running_out_of_descriptors(autojump_clock):
    """A client resetting before it is named, and EMFILE, never end the accept loop; another
    OSError still does (it is not the client's doing)."""
    reset = _FakeStream(OSError(errno.ENOTCONN, "Transport endpoint is not connected"))
    good = _FakeStream(("127.0.0.1", 40000))
    listener = TcpListener(_FakeListener([OSError(errno.EMFILE, "Too many open files"), reset,
                                          good, OSError(errno.EBADF, "Bad file descriptor")]))
    accepted = await listener.accept()
    assert accepted.conn_id == "tcp:127.0.0.1:40000" and reset.closed and not good.closed
    with pytest.raises(OSError):
        await listener.accept()
