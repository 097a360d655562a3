"""The in-memory pipe keeps trio's stream contract (only its `*_nowait` calls skip the checkpoint);
TCP streams skip it while the kernel completes calls at once, up to a limit; an in-memory
listener hands connections straight to the node that takes them."""

from __future__ import annotations

import errno
import socket
import ssl

import pytest
import trio
from trio.testing import assert_checkpoints, assert_no_checkpoints

from edge.net import EAGER_LIMIT, ConnectionRefused, MemoryNetwork, TcpListener, pipe
from edge.tls import TlsChannel


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


async def test_receive_nowait_takes_what_is_there_without_a_checkpoint():
    one, other = pipe()
    with assert_no_checkpoints():
        assert other.receive_nowait() is None
        one.send_nowait(b"flight")
        assert other.receive_nowait(3) == b"fli"
        assert other.receive_nowait() == b"ght"
    await one.aclose()
    assert other.receive_nowait() == b""


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


class _ScriptedSocket:
    """A listening socket that does what `script` says: raise, or hand out a connection."""

    def __init__(self, script):
        self.script = list(script)

    def setblocking(self, flag):
        pass

    def fileno(self):
        return -1

    def accept(self):
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item


async def test_tcp_accept_survives_dead_connections_and_running_out_of_descriptors(
    autojump_clock,
):
    """A connection that died in the backlog, and EMFILE, never end the accept loop; another
    OSError still does (it is not the client's doing)."""
    with socket.create_server(("127.0.0.1", 0)) as server, \
            socket.create_connection(server.getsockname()):
        a, _ = server.accept()
        listener = TcpListener(_ScriptedSocket([
            OSError(errno.EMFILE, "Too many open files"),
            ConnectionAbortedError(errno.ECONNABORTED, "Software caused connection abort"),
            (a, ("127.0.0.1", 40000)),
            OSError(errno.EBADF, "Bad file descriptor"),
        ]))
        accepted = await listener.accept()
        assert accepted.conn_id == "tcp:127.0.0.1:40000"
        with pytest.raises(OSError):
            await listener.accept()
        await accepted.stream.aclose()


async def _tcp_pair():
    """An accepted TcpStream and the client's end, over loopback."""
    listener = TcpListener(socket.create_server(("127.0.0.1", 0)))
    client = await trio.open_tcp_stream(*listener.socket.getsockname()[:2])
    return listener, (await listener.accept()).stream, client


async def test_tcp_stream_calls_that_complete_at_once_take_no_scheduler_pass_until_the_limit():
    listener, server, client = await _tcp_pair()
    async with server, client:
        await listener.aclose()
        await client.send_all(b"x" * EAGER_LIMIT)
        await trio.sleep(0.05)  # all of it in the kernel's buffer
        with assert_no_checkpoints():
            for _ in range(EAGER_LIMIT - 1):
                assert await server.receive_some(1) == b"x"
        with assert_checkpoints():  # the limit: a checkpoint, so nobody holds the loop
            assert await server.receive_some(1) == b"x"
        with assert_checkpoints():  # nothing there: a real wait
            with trio.move_on_after(0.05):
                await server.receive_some()


async def test_tcp_stream_ends_and_breaks_like_a_trio_stream():
    listener, server, client = await _tcp_pair()
    await listener.aclose()
    async with client:
        await server.send_all(b"bye")
        await server.aclose()
        assert await client.receive_some() == b"bye"
        assert await client.receive_some() == b""
        with pytest.raises(trio.ClosedResourceError):
            await server.receive_some()


async def test_closing_a_tls_channel_over_the_pipe_takes_no_pass_and_survives_cancellation():
    """The peer still sees the end, from a cancelled task too."""
    one, other = pipe()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    channel = TlsChannel.wrap(one, context, server_side=False, server_hostname="x.test")
    with trio.CancelScope() as scope:
        scope.cancel()
        with assert_no_checkpoints():
            await channel.aclose()
    assert await other.receive_some() == b""  # no handshake yet: nothing to notify, but closed
    with pytest.raises(trio.ClosedResourceError):
        one.send_nowait(b"x")


async def test_tcp_stream_sends_more_than_the_kernel_holds_at_once():
    listener, server, client = await _tcp_pair()
    await listener.aclose()
    data = bytes(range(256)) * (32 * 1024)  # 8 MiB: the sender must wait for the reader
    received = bytearray()
    async with server, client:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.send_all, data)
            while len(received) < len(data):
                received += await client.receive_some(65536)
    assert received == data


async def test_a_cancelled_tcp_call_moves_no_bytes():
    listener, server, client = await _tcp_pair()
    await listener.aclose()
    async with server, client:
        await client.send_all(b"x" * EAGER_LIMIT)
        await trio.sleep(0.05)
        for _ in range(EAGER_LIMIT - 1):
            assert await server.receive_some(1) == b"x"
        with trio.CancelScope() as scope:
            scope.cancel()
            await server.receive_some(1)  # the limit: its checkpoint comes first
        assert scope.cancelled_caught
        assert await server.receive_some() == b"x"  # still there


async def test_a_cancelled_accept_leaves_the_connection_for_the_next():
    listener = TcpListener(socket.create_server(("127.0.0.1", 0)))
    client = await trio.open_tcp_stream(*listener.socket.getsockname()[:2])
    async with client:
        await trio.sleep(0.05)  # in the backlog
        with trio.CancelScope() as scope:
            scope.cancel()
            await listener.accept()
        assert scope.cancelled_caught
        accepted = await listener.accept()
        await client.send_all(b"hi")
        assert await accepted.stream.receive_some() == b"hi"
        await accepted.stream.aclose()
    await listener.aclose()


async def test_memory_connections_go_straight_to_the_node_while_it_takes_them():
    network = MemoryNetwork()
    listener = network.listen("n1")
    early = network.connect("n1")  # before anyone takes connections: it waits
    taken: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(listener.hand_over, lambda accepted: taken.append(accepted.conn_id))
        await trio.testing.wait_all_tasks_blocked()
        assert taken == [early.conn_id]
        with assert_no_checkpoints():
            now = network.connect("n1")  # handed over from the connecting call itself
        assert taken == [early.conn_id, now.conn_id]
        nursery.cancel_scope.cancel()
    late = network.connect("n1")  # no one takes it any more: it waits, and closing ends it
    await listener.aclose()
    assert await late.stream.receive_some() == b""
    with pytest.raises(ConnectionRefused):
        network.connect("n1")
    assert taken == [early.conn_id, now.conn_id]


class _Steps(trio.abc.Instrument):
    def __init__(self) -> None:
        self.count = 0

    def before_task_step(self, task) -> None:
        self.count += 1


async def test_tcp_hand_over_takes_what_is_waiting_in_one_pass(autojump_clock):
    """Connections already in the backlog go with the one that woke the loop, in the same
    scheduler pass; running out of descriptors there is left to `accept`, which waits it out
    and goes on."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        clients = [socket.create_connection(server.getsockname()) for _ in range(3)]
        ends = [server.accept() for _ in clients]
        listener = TcpListener(_ScriptedSocket([
            ends[0], ends[1], OSError(errno.EMFILE, "Too many open files"),
            OSError(errno.EMFILE, "Too many open files"), ends[2],
            BlockingIOError(), BlockingIOError(),
        ]))
        listener.socket.fileno = server.fileno  # `wait_readable` needs a real descriptor
        steps, taken = _Steps(), []
        trio.lowlevel.add_instrument(steps)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(listener.hand_over,
                               lambda accepted: taken.append((accepted.conn_id, steps.count)))
            await trio.sleep(1)
            nursery.cancel_scope.cancel()
        trio.lowlevel.remove_instrument(steps)
        assert [conn_id for conn_id, _ in taken] == [f"tcp:{h}:{p}" for _, (h, p) in ends]
        assert taken[0][1] == taken[1][1] < taken[2][1]  # the first two in one pass
        for sock, _ in ends:
            sock.close()
        for client in clients:
            client.close()
