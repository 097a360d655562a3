"""Where connections come from: an in-memory network for simulation, real TCP for serving.

Both give an edge node `Accepted(stream, conn_id)` values, so the node's code path is the same.
The in-memory network hands the client the same connection id as the server, which is how a
simulated client and the collector agree on which connection is which.
"""

from __future__ import annotations

import itertools
import math

import attrs
import trio
import trio.testing


@attrs.frozen
class Accepted:
    stream: trio.abc.Stream
    conn_id: str


class ConnectionRefused(OSError):
    """Nothing listens at that address (or the listener was closed)."""


class MemoryListener:
    def __init__(self, network: MemoryNetwork, address: str) -> None:
        self.address = address
        self._network = network
        self._send, self._receive = trio.open_memory_channel[Accepted](math.inf)

    async def accept(self) -> Accepted:
        return await self._receive.receive()

    def _offer(self, accepted: Accepted) -> None:
        self._send.send_nowait(accepted)

    async def aclose(self) -> None:
        """Stop listening; connections offered but not yet accepted are closed."""
        self._network._forget(self)
        self._send.close()
        async with self._receive:
            async for pending in self._receive:
                await pending.stream.aclose()


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
        client_end, server_end = trio.testing.memory_stream_pair()
        conn_id = f"{address}#{next(self._ids)}"
        listener._offer(Accepted(server_end, conn_id))
        return Accepted(client_end, conn_id)


class TcpListener:
    """A Trio socket listener that names each connection by its peer address."""

    def __init__(self, listener: trio.SocketListener) -> None:
        self._listener = listener

    async def accept(self) -> Accepted:
        stream = await self._listener.accept()
        host, port = stream.socket.getpeername()[:2]
        return Accepted(stream, f"tcp:{host}:{port}")

    async def aclose(self) -> None:
        await self._listener.aclose()
