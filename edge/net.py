"""Where connections come from: an in-memory network for simulation, real TCP for serving.

Both give an edge node `Accepted(stream, conn_id)` values, so the node's code path is the same.
The in-memory network hands the client the same connection id as the server, which is how a
simulated client and the collector agree on which connection is which.
"""

from __future__ import annotations

import errno
import itertools
import socket
from collections.abc import Callable

import attrs
import trio


@attrs.frozen
class Accepted:
    stream: trio.abc.Stream
    conn_id: str


class _Direction:
    """Bytes in flight one way, with the one task that may be parked waiting for them."""

    __slots__ = ("buffer", "eof", "waiter")

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.eof = False
        self.waiter: trio.lowlevel.Task | None = None

    def wake(self) -> None:
        if self.waiter is not None:
            trio.lowlevel.reschedule(self.waiter)
            self.waiter = None

    async def wait(self) -> None:
        """Park until the other end sends or closes (a checkpoint: it can be cancelled).

        Parks the task itself rather than waiting on a `trio.Event`: one object fewer per wait,
        and a connection waits at every flight.
        """
        self.waiter = trio.lowlevel.current_task()
        await trio.lowlevel.wait_task_rescheduled(self._abort)

    def _abort(self, _raise_cancel) -> trio.lowlevel.Abort:
        self.waiter = None
        return trio.lowlevel.Abort.SUCCEEDED


class PipeStream(trio.abc.Stream):
    """One end of an in-memory connection: what one end sends, the other receives.

    Leaner than trio.testing's memory streams (no pump tasks, no conflict detectors), since a
    simulation makes thousands of connections; same contract: every call is a checkpoint,
    `receive_some` returns b"" once the peer closed and the buffer is drained, `send_all` to a
    closed peer raises BrokenResourceError.

    Sending never blocks (the buffer is unbounded), so `send_nowait` offers it without the
    checkpoint, for a caller that waits on a receive next anyway (`TlsChannel`): a sender
    then goes straight on to its wait instead of taking one more scheduler pass first.
    """

    def __init__(self, inbound: _Direction, outbound: _Direction) -> None:
        self._in, self._out = inbound, outbound
        self._closed = False

    def send_nowait(self, data) -> None:
        """`send_all` without the checkpoint: neither a cancel point nor a schedule point."""
        if self._closed:
            raise trio.ClosedResourceError("this end is closed")
        if self._out.eof:
            raise trio.BrokenResourceError("the peer closed the connection")
        self._out.buffer += data
        self._out.wake()

    async def send_all(self, data) -> None:
        if self._closed:
            raise trio.ClosedResourceError("this end is closed")
        await trio.lowlevel.checkpoint()
        self.send_nowait(data)

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    def receive_nowait(self, max_bytes: int | None = None) -> bytes | None:
        """`receive_some` without the checkpoint, for bytes already here (b"" at the end);
        None when there are none yet."""
        if self._closed:
            raise trio.ClosedResourceError("this end is closed")
        if not (self._in.buffer or self._in.eof):
            return None
        return self._take(max_bytes)

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._closed:
            raise trio.ClosedResourceError("this end is closed")
        if self._in.buffer or self._in.eof:
            await trio.lowlevel.checkpoint()
        else:
            await self._in.wait()  # woken only once bytes or the end arrived
        return self._take(max_bytes)

    def _take(self, max_bytes: int | None) -> bytes:
        size = len(self._in.buffer) if max_bytes is None else max_bytes
        data = bytes(self._in.buffer[:size])
        del self._in.buffer[:size]
        return data

    def close_nowait(self) -> None:
        """`aclose` without the checkpoint: closing a pipe never waits."""
        if not self._closed:
            self._closed = True
            self._out.eof = True  # the peer reads what is left, then b""
            self._in.eof = True
            self._out.wake()
            self._in.wake()

    async def aclose(self) -> None:
        self.close_nowait()
        await trio.lowlevel.checkpoint()


def pipe() -> tuple[PipeStream, PipeStream]:
    """Two connected ends."""
    one_way, other_way = _Direction(), _Direction()
    return PipeStream(one_way, other_way), PipeStream(other_way, one_way)


class ConnectionRefused(OSError):
    """Nothing listens at that address (or the listener was closed)."""


class MemoryListener:
    """Where a node takes in-memory connections. While a node `hand_over`s, each connection goes
    straight to its nursery from the connecting client's own call: no accept loop waking per
    connection (a simulation makes thousands). Before that, they wait here."""

    def __init__(self, network: MemoryNetwork, address: str) -> None:
        self.address = address
        self._network = network
        self._pending: list[Accepted] = []
        self._spawn: Callable[[Accepted], None] | None = None

    async def hand_over(self, spawn: Callable[[Accepted], None]) -> None:
        """Give every connection to `spawn` (a nursery's `start_soon`, so never blocking) until
        cancelled; then they wait here again, for `aclose` to close."""
        pending, self._pending = self._pending, []
        for accepted in pending:
            spawn(accepted)
        self._spawn = spawn
        try:
            await trio.sleep_forever()
        finally:
            self._spawn = None

    def _offer(self, accepted: Accepted) -> None:
        if self._spawn is not None:
            self._spawn(accepted)
        else:
            self._pending.append(accepted)

    async def aclose(self) -> None:
        """Stop listening; connections offered but not handed over are closed."""
        self._network._forget(self)
        pending, self._pending = self._pending, []
        for accepted in pending:
            await accepted.stream.aclose()


class MemoryNetwork:
    """Named addresses within one process; no bytes ever leave it."""

    def __init__(self) -> None:
        self._listeners: dict[str, MemoryListener] = {}
        self._ids = itertools.count(1)

    def listen(self, address: str) -> MemoryListener:
        if address in self._listeners:
            raise OSError(f"address {address!r} is already in use")
        listener = self._listeners[address] = MemoryListener(self, address)
        return listener

    def _forget(self, listener: MemoryListener) -> None:
        if self._listeners.get(listener.address) is listener:
            del self._listeners[listener.address]

    def connect(self, address: str) -> Accepted:
        """The client's end of a new connection; the listener gets the other end."""
        listener = self._listeners.get(address)
        if listener is None:
            raise ConnectionRefused(f"nothing listens at {address!r}")
        client_end, server_end = pipe()
        conn_id = f"{address}#{next(self._ids)}"
        listener._offer(Accepted(server_end, conn_id))
        return Accepted(client_end, conn_id)


RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
# A connection that died in the backlog (as trio's SocketListener skips them too).
GONE_ERRORS = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.ECONNRESET})
ACCEPT_BACKOFF = 0.1  # seconds
EAGER_LIMIT = 8  # TcpStream calls in a row without a scheduler pass; also connections taken at once


class TcpListener:
    """Accepts on a listening socket (stdlib, shared with worker processes or not) and names
    each connection by its peer address."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.socket = sock

    @classmethod
    def adopting(cls, listener: trio.SocketListener) -> TcpListener:
        """Take over the socket of a listener trio opened (`trio.open_tcp_listeners`)."""
        return cls(socket.socket(fileno=listener.socket.detach()))

    def _take(self) -> Accepted | None:
        """A connection already waiting in the backlog, or None when there is none. One that
        died there is skipped; running out of descriptors or memory raises (`accept` waits)."""
        while True:
            try:
                sock, peer = self.socket.accept()
            except BlockingIOError:  # nothing waiting, or another worker took it
                return None
            except OSError as exc:
                if exc.errno in GONE_ERRORS:
                    continue
                raise
            return Accepted(TcpStream(sock), f"tcp:{peer[0]}:{peer[1]}")

    async def accept(self) -> Accepted:
        """The next connection. One that died before it was taken is skipped, and running out
        of file descriptors or memory waits and tries again (as trio's own `serve_listeners`
        does): no client can end the accept loop. Cancellation lands only before a connection
        is taken, never after (it would be left open and unaccounted for)."""
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            try:
                accepted = self._take()
            except OSError as exc:
                if exc.errno not in RESOURCE_ERRORS:
                    raise
                await trio.sleep(ACCEPT_BACKOFF)
                continue
            if accepted is None:
                await trio.lowlevel.wait_readable(self.socket)
                continue
            await trio.lowlevel.cancel_shielded_checkpoint()  # a flood still lets others run
            return accepted

    async def hand_over(self, spawn: Callable[[Accepted], None]) -> None:
        """Give every accepted connection to `spawn` (a nursery's `start_soon`) until
        cancelled; connections already waiting when one arrives go with it, up to
        `EAGER_LIMIT`, without a scheduler pass each."""
        while True:
            spawn(await self.accept())
            for _ in range(EAGER_LIMIT):
                try:
                    accepted = self._take()
                except OSError:
                    break  # `accept` deals with it
                if accepted is None:
                    break
                spawn(accepted)

    async def aclose(self) -> None:
        trio.lowlevel.notify_closing(self.socket)
        self.socket.close()
        await trio.lowlevel.checkpoint()


class TcpStream(trio.abc.Stream):
    """One TCP connection, leaner than `trio.SocketStream`: a send or receive the kernel
    completes at once returns at once. trio's takes a scheduler pass on every call, and with
    five calls per connection that was about a tenth of the edge's CPU per handshake (measured
    for issue 6). So that a client keeping the socket full cannot hold the event loop, and
    cancellation still reaches the task, every EAGER_LIMIT-th call in a row without a wait
    starts with a checkpoint: before any byte moves, so a cancelled call has sent or taken
    nothing.
    """

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # flights go out whole
        except OSError:
            pass  # a connection already reset: its first call says so
        self.socket = sock
        self._eager = 0

    async def _pace(self) -> None:
        self._eager += 1
        if self._eager >= EAGER_LIMIT:
            self._eager = 0
            await trio.lowlevel.checkpoint()

    async def _call(self, operation, wait, argument):
        """`operation(argument)` on the socket, waiting (`wait`) only while it would block."""
        while True:
            try:
                return operation(argument)
            except BlockingIOError:
                self._eager = 0
                await wait(self.socket)
            except OSError as exc:
                raise _broken(exc) from exc

    async def send_all(self, data) -> None:
        await self._pace()
        view = memoryview(data)
        while view:
            view = view[await self._call(self.socket.send, trio.lowlevel.wait_writable, view):]

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.wait_writable(self.socket)

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await self._pace()
        return await self._call(self.socket.recv, trio.lowlevel.wait_readable, max_bytes or 65536)

    def close_nowait(self) -> None:
        """`aclose` without the checkpoint: closing a socket never waits."""
        if self.socket.fileno() != -1:
            trio.lowlevel.notify_closing(self.socket)
            self.socket.close()

    async def aclose(self) -> None:
        self.close_nowait()
        await trio.lowlevel.checkpoint()


def _broken(exc: OSError) -> trio.ClosedResourceError | trio.BrokenResourceError:
    if exc.errno == errno.EBADF:
        return trio.ClosedResourceError("this end is closed")
    return trio.BrokenResourceError(str(exc))
