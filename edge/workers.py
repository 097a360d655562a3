"""Edge nodes in worker processes, for `edge serve --workers N`: one port, N processes.

A Python process does its handshakes on one core; N workers, each an EdgeNode in a process of
its own, use N. They accept on one listening socket the parent opened and handed to each (as
gunicorn does), so no other process can join the port, as SO_REUSEPORT would let one. The
control plane, the API and the collector stay in the parent. A socket pair links each worker to
it, carrying length-prefixed pickles between processes this module started itself: snapshots and
`Stop` go out; `Listening`, `Applied` (per snapshot), `Batch`es of events and a last `Ended` come
back. Stopping is part of that protocol rather than a signal: after `Stop(grace)` the worker winds
its node down, sends its last events and closes, and the parent reads to the end, so no event is
lost. The end of the parent's side means "stop at once".
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
from edge.control.snapshot import EdgeConfig
from edge.events import Event
from edge.net import TcpListener
from edge.node.identity import EdgeIdentity
from edge.node.node import EdgeNode, NodeSettings
from edge.node.origin import Origin

HEADER = struct.Struct("!I")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0  # beyond a worker's grace: to report its last events and exit
BATCH = 256  # events per message at most
BATCHES_IN_FLIGHT = 4  # then the worker's node waits: backpressure from the parent's collector
_spawn = multiprocessing.get_context("spawn")


# --- the protocol (pure) ----------------------------------------------------------------------


@attrs.frozen
class Stop:
    """Parent to worker: stop as `EdgeNode.stop(grace)` does; a shorter grace hurries it."""

    grace: float


@attrs.frozen
class Listening:
    """The worker accepts connections."""


@attrs.frozen
class Applied:
    """The worker serves from this snapshot version on."""

    version: int


@attrs.frozen
class Batch:
    events: tuple[Event, ...]


@attrs.frozen
class Ended:
    """The worker's last word: events it could not hand over (0 unless its node was stuck)."""

    dropped: int


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


def listening_socket(address: tuple[str, int]) -> socket.socket:
    """The one socket every worker accepts on (no SO_REUSEPORT: nobody else can join)."""
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT only
        sock.bind(address)
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    return sock


# --- the worker process -----------------------------------------------------------------------


@attrs.frozen
class WorkerSpec:
    """Everything a worker needs, picklable: the node's name and the edge identity."""

    name: str
    ca_cert_pem: bytes = attrs.field(repr=False)
    ca_key_pem: bytes = attrs.field(repr=False)
    names: tuple[str, ...]
    origin: Origin
    settings: NodeSettings = NodeSettings()


def worker_main(spec: WorkerSpec, control: socket.socket, listener: socket.socket) -> None:
    """A worker process's entry point."""
    for stop in (signal.SIGINT, signal.SIGTERM):  # the parent's to handle: it stops us in order
        signal.signal(stop, signal.SIG_IGN)
    try:
        trio.run(_work, spec, control, listener)
    except* (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the parent is gone (killed): there is nobody left to report to


async def _work(spec: WorkerSpec, control: socket.socket, listener: socket.socket) -> None:
    stream = trio.SocketStream(trio.socket.from_stdlib_socket(control))
    events_in, events_out = trio.open_memory_channel[Event](DEFAULT_BUFFER)
    outbox_in, outbox_out = trio.open_memory_channel[object](math.inf)
    credits = trio.Semaphore(BATCHES_IN_FLIGHT)
    identity = EdgeIdentity(trustme.CA.from_pem(spec.ca_cert_pem, spec.ca_key_pem),
                            names=spec.names)
    node = EdgeNode(spec.name, identity=identity, events=events_in, clock=wall_clock,
                    origin=spec.origin, settings=spec.settings)
    serving = False

    async def serve(worker: trio.Nursery, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        tcp = TcpListener(listener)
        await node.serve(tcp, task_status=task_status)
        worker.cancel_scope.cancel()  # the node has wound down: this worker is done

    async def follow_parent(worker: trio.Nursery) -> None:
        async def handle(message: object) -> None:
            nonlocal serving
            if isinstance(message, Stop):
                node.stop(message.grace)
                if not serving:
                    worker.cancel_scope.cancel()
            elif isinstance(message, EdgeConfig):
                node.apply_snapshot(message)
                outbox_in.send_nowait(Applied(message.version))
                if not serving and not node.stopping:  # listen once the first snapshot is in
                    serving = True
                    await worker.start(serve, worker)
                    outbox_in.send_nowait(Listening())

        await read_messages(stream, Frames(), handle)
        node.stop(0)  # the parent's side ended: stop at once
        if not serving:
            worker.cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(_send_out, stream, outbox_out, credits)
        nursery.start_soon(_batch_events, events_out, outbox_in.clone(), credits)
        async with outbox_in, events_in:  # closed once the worker is done: the others finish
            async with trio.open_nursery() as worker:
                worker.start_soon(follow_parent, worker)
            outbox_in.send_nowait(Ended(node.dropped))
    # Our side is ended; read the parent's to its end before closing, since closing a socket
    # with bytes unread resets it, and a reset can destroy what the parent has yet to read.
    with trio.move_on_after(STOP_TIMEOUT):
        try:
            while await stream.receive_some(65536):
                pass
        except trio.BrokenResourceError:
            pass
    await stream.aclose()


async def _batch_events(events: trio.MemoryReceiveChannel[Event],
                        outbox: trio.MemorySendChannel[object], credits: trio.Semaphore) -> None:
    """The node's events, a batch per message, until the node's channel closes; at most
    BATCHES_IN_FLIGHT unsent, so a slow parent slows the node rather than piling up events."""
    async with events, outbox:
        async for event in events:
            batch = [event]
            while len(batch) < BATCH:
                try:
                    batch.append(events.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            await credits.acquire()
            outbox.send_nowait(Batch(tuple(batch)))


async def _send_out(stream: trio.SocketStream, outbox: trio.MemoryReceiveChannel[object],
                    credits: trio.Semaphore) -> None:
    async with outbox:
        async for message in outbox:
            await stream.send_all(frame(message))
            if isinstance(message, Batch):
                credits.release()
    await stream.send_eof()  # the parent reads to here: every event is in


# --- the parent's side ------------------------------------------------------------------------


class WorkerExited(RuntimeError):
    """A worker process ended while the edge was serving."""


class Workers:
    """`count` worker processes serving one port, following `plane`, events to `collector`.

    Run with `await nursery.start(workers.run, address)`: it starts with the bound (host, port)
    once every worker accepts, and returns after `stop()` once every worker has ended; if
    cancelled instead, it still tells each worker to stop at once and takes its last events.
    """

    def __init__(self, count: int, *, plane: ControlPlane, identity: EdgeIdentity,
                 collector: Collector, origin: Origin, name: str = "local",
                 settings: NodeSettings = NodeSettings()) -> None:
        self._plane = plane
        self._collector = collector
        self._specs = [
            WorkerSpec(f"{name}-{index + 1}", identity.ca.cert_pem.bytes(),
                       identity.ca.private_key_pem.bytes(), identity.names, origin, settings)
            for index in range(count)
        ]
        self.applied = [-1] * count
        self.pids: list[int | None] = [None] * count
        self.dropped = 0  # events workers reported they could not hand over
        self.stopping = False
        self._stops: list[Stop] = []  # every stop asked for, for workers still starting too
        self._stop_feeds: list[trio.MemorySendChannel[Stop]] = []
        self._reading: list[trio.CancelScope] = []  # each link's read, bounded once stopping
        self._stop_deadline = math.inf

    async def run(self, address: tuple[str, int], *, task_status=trio.TASK_STATUS_IGNORED):
        with listening_socket(address) as listener:
            bound = listener.getsockname()[:2]
            async with trio.open_nursery() as nursery:
                listening = [trio.Event() for _ in self._specs]
                for index, spec in enumerate(self._specs):
                    nursery.start_soon(self._worker, index, spec, listener, listening[index])
                with trio.move_on_after(START_TIMEOUT) as waiting:
                    for event in listening:
                        await event.wait()
                if waiting.cancelled_caught:
                    raise WorkerExited(f"the edge workers did not start within "
                                       f"{START_TIMEOUT:.0f} s")
                listener.close()  # the workers hold their own copies
                task_status.started(bound)

    async def settle(self) -> None:
        """Wait until every worker serves the plane's newest snapshot."""
        while min(self.applied) < self._plane.store.version:
            await trio.sleep(0.001)

    def stop(self, grace: float | None = None) -> None:
        """Stop every worker as `EdgeNode.stop(grace)` does; `run` returns once all ended. A
        worker not done `STOP_TIMEOUT` after its grace is an error (its events are lost)."""
        stop = Stop(self._specs[0].settings.stop_grace if grace is None else grace)
        self._stops.append(stop)
        for feed in self._stop_feeds:
            feed.send_nowait(stop)
        self.stopping = True
        self._stop_deadline = min(self._stop_deadline,
                                  trio.current_time() + stop.grace + STOP_TIMEOUT)
        for scope in self._reading:
            scope.deadline = self._stop_deadline

    async def _worker(self, index: int, spec: WorkerSpec, listener: socket.socket,
                      listening: trio.Event) -> None:
        parent, child = socket.socketpair()
        process = _spawn.Process(target=worker_main, args=(spec, child, listener), daemon=True,
                                 name=f"edge worker {spec.name}")
        process.start()
        self.pids[index] = process.pid
        child.close()
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(parent))
        frames = Frames()
        stops_in, stops_out = trio.open_memory_channel[Stop](math.inf)
        self._stop_feeds.append(stops_in)
        for stop in self._stops:
            stops_in.send_nowait(stop)
        reading = trio.CancelScope(deadline=self._stop_deadline)
        self._reading.append(reading)
        ended = False

        async def handle(message: object) -> None:
            nonlocal ended
            if isinstance(message, Listening):
                listening.set()
            elif isinstance(message, Applied):
                self.applied[index] = message.version
            elif isinstance(message, Batch):
                with trio.CancelScope(shield=True):  # recorded whole: the batch is ours now
                    for event in message.events:
                        await self._collector.record(event)
            elif isinstance(message, Ended):
                self.dropped += message.dropped
                ended = True

        try:
            async with trio.open_nursery() as link:
                link.start_soon(self._feed, stream, stops_out, spec.name)
                with reading:
                    try:
                        await read_messages(stream, frames, handle)  # until the worker ends
                    except trio.BrokenResourceError:
                        pass  # a worker that died with our bytes unread resets the link
                link.cancel_scope.cancel()
            if not (self.stopping and ended):
                await trio.to_thread.run_sync(process.join, 1.0)
                raise WorkerExited(_exit_story(spec.name, process.exitcode, self.stopping,
                                               reading.cancelled_caught))
        finally:
            listening.set()  # an ended worker does not hold `run` up
            with trio.CancelScope(shield=True):
                await _end(process, stream, frames, handle)

    async def _feed(self, stream: trio.SocketStream, stops: trio.MemoryReceiveChannel[Stop],
                    name: str) -> None:
        """Snapshots to the worker, and then its stops: the one writer of the link."""
        async with trio.open_nursery() as feeding:

            async def snapshots() -> None:
                async with self._plane.subscribe() as arriving:
                    async for snapshot in arriving:
                        await _send_frame(stream, snapshot, name)

            feeding.start_soon(snapshots)
            stop = await stops.receive()
            feeding.cancel_scope.cancel()
        await _send_frame(stream, stop, name)
        async for stop in stops:  # a hurried stop (a second Ctrl-C)
            await _send_frame(stream, stop, name)


def _exit_story(name: str, exit_code: int | None, stopping: bool, overdue: bool) -> str:
    if overdue:
        return f"edge worker {name} did not stop in time; its last events are lost"
    if stopping:
        return (f"edge worker {name} ended (exit code {exit_code}) before handing over its "
                "last events; they are lost")
    return f"edge worker {name} ended on its own (exit code {exit_code})"


async def _send_frame(stream: trio.SocketStream, message: object, name: str) -> None:
    """One whole frame or none: a frame cut short by a cancellation would corrupt the link.
    A worker reads its link to the end, so the shielded send is bounded all the same."""
    data = frame(message)
    with trio.move_on_after(STOP_TIMEOUT) as sending:
        sending.shield = True
        await stream.send_all(data)
    if sending.cancelled_caught:
        raise WorkerExited(f"edge worker {name} stopped reading its link")


async def _end(process, stream: trio.SocketStream, frames: Frames, handle) -> None:
    """After the link: end our side (to a worker still running: stop at once), take its last
    events, and make sure its process is gone."""
    with trio.move_on_after(STOP_TIMEOUT):
        try:
            await stream.send_eof()
            await read_messages(stream, frames, handle)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        await trio.to_thread.run_sync(process.join, STOP_TIMEOUT)
    if process.is_alive():
        process.kill()
        await trio.to_thread.run_sync(process.join, STOP_TIMEOUT)
    await stream.aclose()
