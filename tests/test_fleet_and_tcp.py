"""Fleets of clients, the JSON Lines output, and the same node code on real loopback TCP."""

from __future__ import annotations

import datetime as dt
import io
import json
import functools

import trio

from edge.clients import Fleet, client_context, visit
from edge.control import commands as c
from edge.deployment import Deployment
from edge.events import TlsOutcome
from edge.net import Accepted, TcpListener
from edge.node.identity import EdgeIdentity
from edge.node.origin import Origin
from edge.node.policy import HostModePolicy, Mode
from edge.pki import profiles
from edge.pki.issuer import Authority
from edge.pki.profiles import Profile
from edge.tls import TlsChannel
from edge_world import BLOCK_HOST, START, EdgeWorld


@functools.cache
def tenant() -> Authority:
    return Authority.root({"CN": "Fleet Root"})


async def test_a_fleet_spreads_over_nodes_and_records_every_connection(nursery, autojump_clock):
    world = await EdgeWorld.start(nursery, tenant(), nodes=("n1", "n2"))
    network = world.deployment.network
    fleet = Fleet(
        "legacy",
        profiles.issue(Profile.EXPIRED, tenant(), now=START),
        sni=BLOCK_HOST,
        paths=("/a", "/b"),
        connections=40,
        concurrency=8,
    )
    results = await fleet.run(
        [lambda: network.connect("n1"), lambda: network.connect("n2")],
        world.deployment.identity.configure_trust,
    )
    await world.drain()
    assert len(results) == 40 and {r.statuses for r in results} == {(403, 403)}
    totals = world.collector.totals
    assert totals.count("connections", node="n1") == totals.count("connections", node="n2") == 20
    assert totals.count("requests", decision="block", reason="EXPIRED") == 80


async def test_collector_writes_one_json_line_per_event(nursery, autojump_clock):
    out = io.StringIO()
    deployment = Deployment(start=START, jsonl=out,
                            identity=EdgeIdentity(names=("example.com", "*.example.com")))
    await deployment.start_in(nursery)
    account = await deployment.plane.submit(c.CreateAccount("json"))
    await deployment.plane.submit(c.CreateZone(account.id, "example.com"))
    await deployment.add_node("n1")
    await deployment.settle()
    context = client_context(deployment.identity.configure_trust)
    result = await visit(lambda: deployment.network.connect("n1"), context,
                         sni="www.example.com", paths=("/x",))
    await trio.sleep(1)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["kind"] for line in lines] == ["request", "connection"]
    assert {line["conn_id"] for line in lines} == {result.conn_id}
    assert lines[0]["path"] == "/x" and lines[0]["status"] == 200
    assert lines[1]["verdict"]["reason"] == "NO_CERT" and lines[1]["outcome"] == "ok"


async def _tcp_node(nursery):
    """A deployment whose node blocks unverified clients of BLOCK_HOST on a loopback port."""
    identity = EdgeIdentity(names=("example.com", "*.example.com"))
    deployment = Deployment(start=dt.datetime.now(dt.timezone.utc), identity=identity)
    await deployment.start_in(nursery)
    plane = deployment.plane
    account = await plane.submit(c.CreateAccount("tcp"))
    zone = await plane.submit(c.CreateZone(account.id, "example.com"))
    ca = await plane.submit(c.UploadCaCertificate(account.id, tenant().certificate_pem))
    await plane.submit(c.PutHostnameAssociations(zone.id, [BLOCK_HOST], ca.id))
    node = await deployment.add_node(
        "tcp-node", policy=HostModePolicy({BLOCK_HOST: Mode.BLOCK}), origin=Origin(record=True)
    )
    await deployment.settle()
    (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listener.socket.getsockname()[1]
    await nursery.start(node.serve, TcpListener.adopting(listener))
    return deployment, node, port


async def test_the_node_serves_real_loopback_tcp_with_the_same_code(nursery):
    deployment, _, port = await _tcp_node(nursery)
    identity = deployment.identity
    streams = []

    async def connect_tcp() -> Accepted:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        streams.append(stream)
        return Accepted(stream, "client")

    outcomes = []
    for profile in (Profile.VALID, Profile.OTHER_CA):
        credential = profiles.issue(profile, tenant(), now=deployment.now())
        context = client_context(identity.configure_trust, credential)
        accepted = await connect_tcp()
        outcomes.append(await visit(lambda: accepted, context, sni=BLOCK_HOST))
    assert [o.statuses for o in outcomes] == [(200,), (403,)]
    assert all(o.outcome is TlsOutcome.OK for o in outcomes)
    await trio.sleep(0.2)
    counted = deployment.collector.totals
    assert counted.count("connections", node="tcp-node") == 2
    assert counted.count("requests", decision="block", reason="UNKNOWN_CA") == 1
    nursery.cancel_scope.cancel()


async def test_a_large_body_crosses_tcp_whole(nursery):
    """Many reads in a row without a wait (and the checkpoints among them) lose nothing."""
    deployment, node, port = await _tcp_node(nursery)
    credential = profiles.issue(Profile.VALID, tenant(), now=deployment.now())
    context = client_context(deployment.identity.configure_trust, credential)
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    channel = TlsChannel.wrap(stream, context, server_side=False, server_hostname=BLOCK_HOST)
    await channel.handshake()
    body = bytes(range(256)) * 3600  # 900 KiB, under the node's 1 MiB limit
    await channel.send_all(b"POST /upload HTTP/1.1\r\nHost: " + BLOCK_HOST.encode()
                           + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    answer = await channel.receive_some()
    await channel.aclose()
    assert answer.startswith(b"HTTP/1.1 200 ")
    (received,) = node.origin.received
    assert received.body == body
    nursery.cancel_scope.cancel()
