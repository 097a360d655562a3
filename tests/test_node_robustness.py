"""Bad clients close their own connection, get an event, and disturb nobody else."""

from __future__ import annotations

import functools
import ssl

import pytest

import trio

from edge.events import ConnectionEvent, Decision, RequestEvent, TlsOutcome
from edge.node.reasons import Reason
from edge.pki import profiles
from edge.pki.issuer import Authority
from edge.pki.profiles import Profile
from edge.net import ConnectionRefused
from edge.tls import TlsChannel
from edge.clients import client_context
from edge_world import BLOCK_HOST, LOG_HOST, START, EdgeWorld, RecordingCollector


@functools.cache
def tenant() -> Authority:
    return Authority.root({"CN": "Robust Root"})


async def _good_client_meanwhile(world: EdgeWorld, results: list) -> None:
    credential = profiles.issue(Profile.VALID, tenant(), now=START)
    for _ in range(5):
        results.append(await world.visit(credential, sni=BLOCK_HOST, paths=("/", "/b")))


async def _run_beside_a_good_client(world: EdgeWorld, bad) -> tuple[str, list]:
    good: list = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_good_client_meanwhile, world, good)
        conn_id = await bad(world)
    await world.drain()
    assert [r.statuses for r in good] == [(200, 200)] * 5
    return conn_id, good


async def _garbage(world: EdgeWorld) -> str:
    accepted = world.deployment.network.connect("n1")
    await accepted.stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(range(256)))
    await trio.sleep(1)
    await accepted.stream.aclose()
    return accepted.conn_id


async def _vanish_mid_handshake(world: EdgeWorld) -> str:
    context = client_context(world.deployment.identity.configure_trust)
    accepted = world.deployment.network.connect("n1")
    channel = TlsChannel.wrap(accepted.stream, context, server_side=False,
                              server_hostname=BLOCK_HOST)
    try:
        channel.ssl_object.do_handshake()
    except Exception:  # noqa: BLE001 - want-read: the ClientHello is ready
        pass
    await accepted.stream.send_all(channel._outgoing.read())
    await accepted.stream.aclose()
    return accepted.conn_id


async def _silent(world: EdgeWorld) -> str:
    accepted = world.deployment.network.connect("n1")
    await trio.sleep(60)  # virtual: longer than the handshake timeout
    return accepted.conn_id


async def test_garbage_bytes_fail_only_that_handshake(nursery, autojump_clock):
    world = await EdgeWorld.start(nursery, tenant())
    conn_id, _ = await _run_beside_a_good_client(world, _garbage)
    event = world.collector.connection(conn_id)
    assert event.outcome is TlsOutcome.HANDSHAKE_FAILED and event.verdict is None
    assert event.error


async def test_client_vanishing_mid_handshake_is_recorded(nursery, autojump_clock):
    world = await EdgeWorld.start(nursery, tenant())
    conn_id, _ = await _run_beside_a_good_client(world, _vanish_mid_handshake)
    event = world.collector.connection(conn_id)
    assert event.outcome is TlsOutcome.CLIENT_CLOSED and event.sni == BLOCK_HOST


async def test_silent_client_times_out(nursery, autojump_clock):
    world = await EdgeWorld.start(nursery, tenant())
    conn_id, _ = await _run_beside_a_good_client(world, _silent)
    event = world.collector.connection(conn_id)
    timeout = world.deployment.nodes["n1"].settings.handshake_timeout
    assert event.outcome is TlsOutcome.TIMEOUT
    assert event.handshake_seconds >= timeout


async def test_oversized_request_gets_431_and_closes_the_connection(nursery, autojump_clock):
    world = await EdgeWorld.start(nursery, tenant())
    credential = profiles.issue(Profile.VALID, tenant(), now=START)

    async def oversized(world: EdgeWorld) -> str:
        channel, conn_id = await world.open_channel(credential, sni=BLOCK_HOST)
        await channel.send_all(b"GET / HTTP/1.1\r\nHost: block.example.com\r\nX-Big: "
                               + b"a" * 64 * 1024 + b"\r\n\r\n")
        answer = b""
        while chunk := await channel.receive_some():
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 431 ")
        return conn_id

    conn_id, _ = await _run_beside_a_good_client(world, oversized)
    event = world.collector.connection(conn_id)
    assert event.outcome is TlsOutcome.OK and event.requests == 1
    assert event.verdict.reason is Reason.OK
    (refused,) = world.collector.requests(conn_id)
    assert refused.decision is Decision.BAD_REQUEST and refused.status == 431


async def test_every_connection_is_accounted_once_under_a_slow_collector(autojump_clock, nursery):
    """1,000 concurrent connections, a collector that sleeps on every event and a buffer of 16:
    the collector's per-connection outcomes equal what the clients saw, none lost or doubled."""
    collector = RecordingCollector(delay=0.01, buffer=16)
    world = await EdgeWorld.start(nursery, tenant(), collector=collector, nodes=("n1", "n2"))
    mix = [Profile.VALID, Profile.OTHER_CA, Profile.NONE, Profile.EXPIRED]
    credentials = {p: profiles.issue(p, tenant(), now=START) for p in mix}
    results = []

    async def one(index: int) -> None:
        profile = mix[index % len(mix)]
        results.append(await world.visit(credentials[profile], sni=BLOCK_HOST,
                                         node=("n1", "n2")[index % 2]))

    async def one_garbage() -> None:
        results.append(_GarbageResult(await _garbage(world)))

    async with trio.open_nursery() as clients:
        for index in range(1000):
            if index % 100 == 0:
                clients.start_soon(one_garbage)
            else:
                clients.start_soon(one, index)
    await trio.sleep(120)
    seen = {e.conn_id: e.outcome for e in collector.events if isinstance(e, ConnectionEvent)}
    assert len(results) == 1000 and not collector.totals.duplicates
    assert seen == {r.conn_id: r.outcome for r in results}
    assert collector.totals.count("connections") == 1000
    blocked = collector.totals.count("requests", decision="block")
    assert blocked == sum(r.statuses.count(403) for r in results) > 0


class _GarbageResult:
    def __init__(self, conn_id: str) -> None:
        self.conn_id = conn_id
        self.outcome = TlsOutcome.HANDSHAKE_FAILED
        self.statuses = ()


async def test_a_cancelled_collector_still_records_what_was_queued():
    """Ctrl-C on `edge serve` cancels the collector: events already sent are written anyway."""
    collector = RecordingCollector(buffer=16)
    sender = collector.sender()
    for index in range(5):
        sender.send_nowait(RequestEvent(
            conn_id=f"c{index}", node="n", snapshot_version=1, at=START, sni=None, host="h",
            method="GET", path="/", status=200, decision=Decision.ALLOW, would_block=False,
            reason="OK"))
    with trio.CancelScope() as scope:
        scope.cancel()
        await collector.run()
    assert [event.conn_id for event in collector.events] == [f"c{i}" for i in range(5)]


async def test_a_stopping_node_accounts_for_every_connection(nursery, autojump_clock):
    """stop(): new connections are refused; one kept alive after an answered request closes at
    once; one still silent before its handshake is cut when the grace runs out: each sends its
    connection event (1 request, OK; then 0 requests, STOPPED)."""
    world = await EdgeWorld.start(nursery, tenant())
    node = world.deployment.nodes["n1"]
    credential = profiles.issue(Profile.VALID, tenant(), now=START)
    channel, kept = await world.open_channel(credential, sni=LOG_HOST)
    await channel.send_all(b"GET / HTTP/1.1\r\nHost: " + LOG_HOST.encode() + b"\r\n\r\n")
    assert (await channel.receive_some()).startswith(b"HTTP/1.1 200")
    silent = world.deployment.network.connect("n1")
    await trio.sleep(0.1)
    node.stop()
    await trio.sleep(0.01)
    with pytest.raises(ConnectionRefused):
        world.deployment.network.connect("n1")
    assert await channel.receive_some() == b""  # the edge closed the idle connection
    kept_event = world.collector.connection(kept)
    assert (kept_event.outcome, kept_event.requests, kept_event.error) == (TlsOutcome.OK, 1, "")
    assert len(world.collector.requests(kept)) == 1
    await trio.sleep(node.settings.stop_grace + 1)
    silent_event = world.collector.connection(silent.conn_id)
    assert (silent_event.outcome, silent_event.requests) == (TlsOutcome.STOPPED, 0)
    assert "stopped" in silent_event.error


async def test_a_corrupt_record_after_the_handshake_is_the_clients_error(nursery, autojump_clock):
    world = await EdgeWorld.start(nursery, tenant())
    credential = profiles.issue(Profile.VALID, tenant(), now=START)

    async def corrupt(world: EdgeWorld) -> str:
        channel, conn_id = await world.open_channel(credential, sni=BLOCK_HOST)
        await channel.stream.send_all(b"\x17\x03\x03\x00\x20" + bytes(32))  # application data
        with pytest.raises(ssl.SSLError, match="BAD_RECORD_MAC"):  # the edge's alert
            await channel.receive_some()
        await channel.aclose()
        return conn_id

    conn_id, _ = await _run_beside_a_good_client(world, corrupt)
    event = world.collector.connection(conn_id)
    assert event.outcome is TlsOutcome.OK and event.requests == 0
    assert event.error.startswith("TLS error after the handshake: ")


async def test_a_stopping_node_answers_a_request_that_already_arrived_then_closes(
    nursery, autojump_clock
):
    """The node is busy handing an answer's event to a slow collector when the client's next
    request arrives and the node is told to stop: that request is answered, with
    `Connection: close`, and counted."""
    world = await EdgeWorld.start(nursery, tenant(), collector=RecordingCollector(delay=5.0,
                                                                                  buffer=0))
    node = world.deployment.nodes["n1"]
    credential = profiles.issue(Profile.VALID, tenant(), now=START)
    channel, conn_id = await world.open_channel(credential, sni=LOG_HOST)
    request = b"GET / HTTP/1.1\r\nHost: " + LOG_HOST.encode() + b"\r\n\r\n"
    await channel.send_all(request)
    assert (await channel.receive_some()).startswith(b"HTTP/1.1 200")
    await channel.send_all(request)  # while the node still waits on the collector
    node.stop()
    rest = b""
    while chunk := await channel.receive_some():
        rest += chunk
    assert rest.startswith(b"HTTP/1.1 200") and b"\r\nconnection: close\r\n" in rest
    await trio.sleep(30)
    assert world.collector.connection(conn_id).requests == 2
    assert len(world.collector.requests(conn_id)) == 2
