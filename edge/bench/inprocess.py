"""The rows measured inside the bench's own process: the raw stdlib loop and the simulator.

`stdlib-membio` is the baseline every other row is a ratio of: a client and a server
`SSLObject` over MemoryBIOs, one loop, full mutual TLS with the client certificate verified.
`edge-inmemory` is the simulator's whole path: a client connects over the in-memory network, an
edge node does the handshake (verify callback, simulated time, SNI context switch), the verdict,
one HTTP request through its rules, and both events reach the collector.

Two handshake-only rows say where edge-inmemory's time goes: `trio-sslstream` is the reference
(trio's SSLStream pairs over trio's memory streams, two tasks per connection),
`edge-transport` the same over the simulator's own transport (TlsChannel over the in-memory
pipe). What edge-inmemory loses beyond edge-transport is the per-connection work, not the
transport.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Sequence

import trio
import trio.testing

from edge.bench.material import HOST, Material, edge_deployment
from edge.clients import visit
from edge.net import pipe
from edge.tls import TlsChannel


def pump_handshakes(client: ssl.SSLObject, server: ssl.SSLObject, client_bios: tuple,
                    server_bios: tuple) -> None:
    """Both ends' handshakes to their end in one loop, handing each flight across (the BIOs
    as (incoming, outgoing) pairs)."""
    pending = [client, server]
    while pending:
        for end in list(pending):
            try:
                end.do_handshake()
                pending.remove(end)
            except ssl.SSLWantReadError:
                pass
        client_bios[0].write(server_bios[1].read())
        server_bios[0].write(client_bios[1].read())


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext, session=None):
    s_in, s_out, c_in, c_out = (ssl.MemoryBIO() for _ in range(4))
    server_side = server.wrap_bio(s_in, s_out, server_side=True)
    client_side = client.wrap_bio(c_in, c_out, server_hostname=HOST, session=session)
    pump_handshakes(client_side, server_side, (c_in, c_out), (s_in, s_out))
    # TLS 1.3 delivers the session ticket after the handshake: let the client read it
    try:
        client_side.read(1)
    except ssl.SSLError:
        pass
    return client_side


def membio_rate(server: ssl.SSLContext, client: ssl.SSLContext, seconds: float,
                *, resume: bool = False) -> float:
    """Handshakes per second of the raw loop; with `resume`, each reuses the first's session."""
    session = _handshake(server, client).session if resume else None
    done, started = 0, time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        end = _handshake(server, client, session)
        if resume and not end.session_reused:
            raise RuntimeError("the session was not resumed: resumption cannot be measured")
        done += 1
    return done / (time.perf_counter() - started)


def trusting(material: Material, extra_cas: list[str]) -> ssl.SSLContext:
    """The baseline server context, trusting the tenant CA and `extra_cas` (PEM) besides."""
    context = material.server_context()
    for pem in extra_cas:
        context.load_verify_locations(cadata=pem)
    return context


async def _rate(connection, seconds: float, concurrency: int) -> float:
    """Connections per second: `concurrency` tasks each awaiting `connection()` in turn."""
    done, deadline = 0, trio.current_time() + seconds
    started = time.perf_counter()

    async def worker() -> None:
        nonlocal done
        while trio.current_time() < deadline:
            await connection()
            done += 1

    async with trio.open_nursery() as workers:
        for _ in range(concurrency):
            workers.start_soon(worker)
    return done / (time.perf_counter() - started)


async def _edge_round(material: Material, seconds: float, concurrency: int, tickets: int,
                      resume: bool, extra_cas: Sequence[str], client_auth: bool) -> float:
    client = material.client_context()
    async with trio.open_nursery() as nursery:
        deployment = await edge_deployment(material, nursery, "n1", tickets=tickets,
                                           extra_cas=extra_cas, client_auth=client_auth)

        def connect():
            return deployment.network.connect("n1")

        session = (
            (await visit(connect, client, sni=HOST, keep_session=True)).session if resume else None
        )

        async def connection() -> None:
            result = await visit(connect, client, sni=HOST, session=session)
            if result.statuses != (200,) or result.resumed != resume:
                raise RuntimeError(f"edge-inmemory: unexpected answer {result}")

        rate = await _rate(connection, seconds, concurrency)
        nursery.cancel_scope.cancel()
    return rate


def edge_inmemory_rate(material: Material, seconds: float, concurrency: int = 16, *,
                       tickets: int = 0, resume: bool = False,
                       extra_cas: Sequence[str] = (), client_auth: bool = True) -> float:
    """The simulator's path; `tickets` > 0 lets the node issue session tickets, `resume`
    makes every connection resume one session, `extra_cas` (PEM) are associated with the
    hostname beside the tenant CA, and without `client_auth` the hostname has no CA at all."""
    return trio.run(_edge_round, material, seconds, concurrency, tickets, resume, extra_cas,
                    client_auth)


def sslstream_pair(server: ssl.SSLContext, client: ssl.SSLContext) -> tuple:
    """The server's and the client's handshake: trio's SSLStreams over trio's memory streams."""
    server_end, client_end = trio.testing.memory_stream_pair()
    return (trio.SSLStream(server_end, server, server_side=True).do_handshake,
            trio.SSLStream(client_end, client, server_hostname=HOST).do_handshake)


def channel_pair(server: ssl.SSLContext, client: ssl.SSLContext) -> tuple:
    """The server's and the client's handshake: the edge's TlsChannels over its in-memory pipe."""
    server_end, client_end = pipe()
    return (TlsChannel.wrap(server_end, server, server_side=True).handshake,
            TlsChannel.wrap(client_end, client, server_side=False, server_hostname=HOST).handshake)


async def _pairs_round(open_pair, server: ssl.SSLContext, client: ssl.SSLContext,
                       seconds: float, concurrency: int) -> float:
    async def connection() -> None:
        server_side, client_side = open_pair(server, client)
        async with trio.open_nursery() as both:
            both.start_soon(server_side)
            both.start_soon(client_side)

    return await _rate(connection, seconds, concurrency)


def handshake_pairs_rate(open_pair, server: ssl.SSLContext, client: ssl.SSLContext,
                         seconds: float, concurrency: int = 16) -> float:
    """Handshakes per second with `concurrency` connections at a time, each end a Trio task of
    its own and nothing after the handshake: `open_pair` is `sslstream_pair` or `channel_pair`."""
    return trio.run(_pairs_round, open_pair, server, client, seconds, concurrency)
