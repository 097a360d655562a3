"""Edge nodes in worker processes, for `edge serve --workers N`: one port, N processes.

A Python process does its handshakes on one core; N workers, each an EdgeNode in a process of
its own accepting on the same port (SO_REUSEPORT: the kernel spreads the connections), use N.
The control plane, the API and the collector stay in the serving process. A socket pair links
each worker to it: snapshots go out; back come a word per snapshot applied and the worker's
events, as length-prefixed pickles between processes this module started itself. Stopping is
part of that protocol rather than a signal: the parent ends its side, the worker stops serving,
sends its last events and closes, and the parent reads to the end, so no event is lost.
"""

from __future__ import annotations

import math
import multiprocessing
import pickle
import signal
import socket
import struct
from collections.abc import Awaitable, Callable

import attrs
import trio
import trustme

from edge.collector import DEFAULT_BUFFER, Collector
from edge.control.plane import ControlPlane, wall_clock
from edge.events import Event
from edge.net import TcpListener
from edge.node.identity import EdgeIdentity
from edge.node.node import EdgeNode, NodeSettings
from edge.node.origin import Origin

HEADER = struct.Struct("!I")
STOP_TIMEOUT = 15.0  # seconds a worker has to wind down (NodeSettings.stop_grace) and report
START_TIMEOUT = 60.0
BATCH = 256  # events per message at most
_spawn = multiprocessing.get_context("spawn")


# --- the protocol (pure) ----------------------------------------------------------------------


@attrs.frozen
class Listening:
    """The worker accepts connections on the shared port."""


@attrs.frozen
class Applied:
    """The worker serves from this snapshot version on."""

    version: int


@attrs.frozen
class Batch:
    events: tuple[Event, ...]


def frame(message: object) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(data)) + data


class Frames:
    """Messages out of a byte stream, however it was cut: feed bytes, take whole messages."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[object]:
        self._buffer += data
        messages = []
        while len(self._buffer) >= HEADER.size:
            (size,) = HEADER.unpack_from(self._buffer)
            end = HEADER.size + size
            if len(self._buffer) < end:
                break
            messages.append(pickle.loads(self._buffer[HEADER.size:end]))
            del self._buffer[:end]
        return messages


async def read_messages(stream: trio.abc.ReceiveStream, frames: Frames,
                        handle: Callable[[object], Awaitable[None]]) -> None:
    """Hand each message to `handle` until the other side ends its half of the stream."""
    while data := await stream.receive_some(65536):
        for message in frames.feed(data):
            await handle(message)


def reuse_port_socket(address: tuple[str, int], *, listen: bool) -> socket.socket:
    """A socket on `address` that other processes may bind as well (SO_REUSEPORT)."""
    sock = _socket_for(address, reuse_port=True)
    sock.bind(address)
    if listen:
        sock.listen(1024)
    return sock


def reserve(address: tuple[str, int]) -> socket.socket:
    """The port for the workers, bound but not listening: ours until they listen on it too,
    and no connection waits on a socket nobody accepts from. A port something already
    listens on is refused, even another edge's that would share it through SO_REUSEPORT."""
    if address[1]:
        with _socket_for(address, reuse_port=False) as probe:
            probe.bind(address)
    return reuse_port_socket(address, listen=False)


def _socket_for(address: tuple[str, int], *, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT, not listeners
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return sock


# --- the worker process -----------------------------------------------------------------------


@attrs.frozen
class WorkerSpec:
    """Everything a worker needs, picklable: the node's name, the port and the edge identity."""

    name: str
    address: tuple[str, int]
    ca_cert_pem: bytes = attrs.field(repr=False)
    ca_key_pem: bytes = attrs.field(repr=False)
    names: tuple[str, ...]
    origin: Origin
    settings: NodeSettings = NodeSettings()


def worker_main(spec: WorkerSpec, control: socket.socket) -> None:
    """A worker process's entry point."""
    for stop in (signal.SIGINT, signal.SIGTERM):  # the parent's to handle: it stops us in order
        signal.signal(stop, signal.SIG_IGN)
    trio.run(_work, spec, control)


async def _work(spec: WorkerSpec, control: socket.socket) -> None:
    stream = trio.SocketStream(trio.socket.from_stdlib_socket(control))
    events_in, events_out = trio.open_memory_channel[Event](DEFAULT_BUFFER)
    outbox_in, outbox_out = trio.open_memory_channel[object](math.inf)
    identity = EdgeIdentity(trustme.CA.from_pem(spec.ca_cert_pem, spec.ca_key_pem),
                            names=spec.names)
    node = EdgeNode(spec.name, identity=identity, events=events_in, clock=wall_clock,
                    origin=spec.origin, settings=spec.settings)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(_send_out, stream, outbox_out)
        nursery.start_soon(_batch_events, events_out, outbox_in.clone())
        async with outbox_in, events_in:  # closed once serving ends: the others then finish
            async with trio.open_nursery() as serving:

                async def apply(snapshot) -> None:
                    """Listen only once the first snapshot is in: no client sees a 503."""
                    first = node.snapshot is None
                    node.apply_snapshot(snapshot)
                    outbox_in.send_nowait(Applied(snapshot.version))
                    if first:
                        listener = trio.SocketListener(trio.socket.from_stdlib_socket(
                            reuse_port_socket(spec.address, listen=True)))
                        await serving.start(node.serve, TcpListener(listener))
                        outbox_in.send_nowait(Listening())

                await read_messages(stream, Frames(), apply)
                node.stop_accepting()  # the parent ended its side: wind down, then end


async def _batch_events(events: trio.MemoryReceiveChannel[Event],
                        outbox: trio.MemorySendChannel[object]) -> None:
    """The node's events, a batch per message, until the node's channel closes."""
    async with events, outbox:
        async for event in events:
            batch = [event]
            while len(batch) < BATCH:
                try:
                    batch.append(events.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            outbox.send_nowait(Batch(tuple(batch)))


async def _send_out(stream: trio.SocketStream, outbox: trio.MemoryReceiveChannel[object]) -> None:
    async with outbox:
        async for message in outbox:
            await stream.send_all(frame(message))
    await stream.aclose()  # the parent reads to here: every event is in


# --- the parent's side ------------------------------------------------------------------------


class WorkerExited(RuntimeError):
    """A worker process ended while the edge was serving."""


class Workers:
    """`count` worker processes serving one port, following `plane`, events to `collector`.

    Run with `await nursery.start(workers.run, address)`: it starts with the bound (host, port)
    once every worker accepts, and returns after `stop()` once every worker has ended; if
    cancelled instead, it still ends each worker's side in order before it returns.
    """

    def __init__(self, count: int, *, plane: ControlPlane, identity: EdgeIdentity,
                 collector: Collector, origin: Origin, name: str = "local",
                 settings: NodeSettings = NodeSettings()) -> None:
        self._plane = plane
        self._collector = collector
        self._specs = [
            WorkerSpec(f"{name}-{index + 1}", ("", 0), identity.ca.cert_pem.bytes(),
                       identity.ca.private_key_pem.bytes(), identity.names, origin, settings)
            for index in range(count)
        ]
        self.applied = [-1] * count
        self.pids: list[int | None] = [None] * count
        self._stopping = trio.Event()

    async def run(self, address: tuple[str, int], *, task_status=trio.TASK_STATUS_IGNORED):
        with reserve(address) as reservation:
            bound = reservation.getsockname()[:2]
            async with trio.open_nursery() as nursery:
                with trio.fail_after(START_TIMEOUT):
                    for index, spec in enumerate(self._specs):
                        await nursery.start(self._worker, index, attrs.evolve(spec, address=bound))
                reservation.close()
                task_status.started(bound)

    async def settle(self) -> None:
        """Wait until every worker serves the plane's newest snapshot."""
        while min(self.applied) < self._plane.store.version:
            await trio.sleep(0.001)

    def stop(self) -> None:
        """Begin a graceful stop: each worker stops accepting, lets its connections finish,
        sends its last events and ends; `run` returns once all have."""
        self._stopping.set()

    async def _worker(self, index: int, spec: WorkerSpec, *, task_status) -> None:
        parent, child = socket.socketpair()
        process = _spawn.Process(target=worker_main, args=(spec, child), daemon=True,
                                 name=f"edge worker {spec.name}")
        process.start()
        self.pids[index] = process.pid
        child.close()
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(parent))
        frames = Frames()

        async def handle(message: object) -> None:
            if isinstance(message, Listening):
                task_status.started()
            elif isinstance(message, Applied):
                self.applied[index] = message.version
            elif isinstance(message, Batch):
                for event in message.events:
                    await self._collector.record(event)

        try:
            async with trio.open_nursery() as link:
                link.start_soon(self._feed, stream)
                await read_messages(stream, frames, handle)  # until the worker closes the link
                if not self._stopping.is_set():
                    raise WorkerExited(f"edge worker {spec.name} ended on its own "
                                       f"(exit code {process.exitcode})")
        finally:
            with trio.CancelScope(shield=True):
                await _stop(process, stream, frames, handle)

    async def _feed(self, stream: trio.SocketStream) -> None:
        """Snapshots to the worker until the edge stops; then end our side of the link."""
        async with trio.open_nursery() as feeding:

            async def until_stopping() -> None:
                await self._stopping.wait()
                feeding.cancel_scope.cancel()

            feeding.start_soon(until_stopping)
            async with self._plane.subscribe() as snapshots:
                async for snapshot in snapshots:
                    await stream.send_all(frame(snapshot))
        await stream.send_eof()  # a frame cut short by the stop is dropped with the rest


async def _stop(process, stream: trio.SocketStream, frames: Frames, handle) -> None:
    """End our side (if `_feed` did not), take the worker's last events, and make sure its
    process is gone."""
    with trio.move_on_after(STOP_TIMEOUT):
        try:
            await stream.send_eof()
            await read_messages(stream, frames, handle)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        await trio.to_thread.run_sync(process.join)
    if process.is_alive():
        process.kill()
        await trio.to_thread.run_sync(process.join)
    await stream.aclose()
