"""The edge fails closed: resumption, domain fronting, odd Host headers, missing configuration,
and a slow collector never let a request through unverified or lose its event."""

from __future__ import annotations

import functools
import ssl

from edge.http import ResponseReader
import pytest
import trio

from edge.clients import client_context, request
from edge.control import commands as c
from edge.control.records import Action, Rule, ZoneSettings
from edge.events import ConnectionEvent, Decision, RequestEvent
from edge.node.reasons import Reason
from edge.node.routing import normalise_host
from edge.pki import openssl, profiles
from edge.pki.issuer import Authority
from edge.pki.profiles import Profile
from edge.tls import TlsChannel
from edge_world import BLOCK_HOST, START, EdgeWorld, RecordingCollector

STANDARD = "not cf.tls_client_auth.cert_verified"


@functools.cache
def tenants() -> tuple[Authority, Authority]:
    return Authority.root({"CN": "Fail Closed A"}), Authority.root({"CN": "Fail Closed B"})


async def two_tenant_world(nursery, **kwargs) -> EdgeWorld:
    """Tenant A on example.com (the EdgeWorld one); tenant B on example.net; both enforce."""
    a, b = tenants()
    world = await EdgeWorld.start(nursery, a, rules=True, **kwargs)
    plane = world.deployment.plane
    other = await plane.submit(c.CreateAccount("b"))
    zone = await plane.submit(c.CreateZone(other.id, "example.net"))
    ca = await plane.submit(c.UploadCaCertificate(other.id, b.certificate_pem))
    await plane.submit(c.PutHostnameAssociations(zone.id, ["api.example.net"], ca.id))
    for zone_id in (world.ids["zone"], zone.id):
        await plane.submit(c.PutCustomRules(zone_id, [Rule(STANDARD, Action.BLOCK)]))
    world.ids["zone_b"] = zone.id
    await world.deployment.settle()
    return world


async def raw_get(world: EdgeWorld, credential, *, sni, host_header: bytes | None,
                  http10: bool = False) -> tuple[bytes, str]:
    """Send a hand-written request line and headers; the status line and the connection id."""
    context = client_context(world.deployment.identity.configure_trust, credential)
    context.check_hostname = False
    accepted = world.deployment.network.connect("n1")
    channel = TlsChannel.wrap(accepted.stream, context, server_side=False, server_hostname=sni)
    await channel.handshake()
    head = b"GET / HTTP/1.0\r\n" if http10 else b"GET / HTTP/1.1\r\n"
    if host_header is not None:
        head += b"Host: " + host_header + b"\r\n"
    await channel.send_all(head + b"\r\n")
    answer = b""
    while b"\r\n" not in answer:
        chunk = await channel.receive_some()
        if not chunk:
            break
        answer += chunk
    await channel.aclose()
    await world.drain()
    return answer[:len(b"HTTP/1.1 200 ")], accepted.conn_id  # the status line without its reason


async def test_a_certificate_of_tenant_a_never_passes_on_tenant_b_via_host(nursery, autojump_clock):
    world = await two_tenant_world(nursery)
    credential = profiles.issue(Profile.VALID, tenants()[0], now=START)
    status, conn_id = await raw_get(world, credential, sni=BLOCK_HOST, host_header=b"api.example.net")
    assert status == b"HTTP/1.1 421 "
    (event,) = world.collector.requests(conn_id)
    assert event.decision is Decision.MISDIRECTED and event.reason == "SNI_HOST_MISMATCH"
    assert world.collector.connection(conn_id).verdict.verified  # valid for the SNI's tenant only


@pytest.mark.parametrize("host", [b"api.example.net.", b"API.EXAMPLE.NET:443"])
async def test_host_spellings_reach_the_same_rules(nursery, autojump_clock, host):
    world = await two_tenant_world(nursery)
    status, conn_id = await raw_get(world, None, sni="api.example.net", host_header=host)
    assert status == b"HTTP/1.1 403 "
    assert world.collector.requests(conn_id)[0].host == "api.example.net"


async def test_a_request_without_host_is_refused(nursery, autojump_clock):
    world = await two_tenant_world(nursery)
    status, conn_id = await raw_get(world, None, sni="api.example.net", host_header=None,
                                    http10=True)
    assert status == b"HTTP/1.1 400 "
    assert world.collector.requests(conn_id)[0].decision is Decision.BAD_REQUEST


async def test_a_host_no_zone_serves_is_misdirected(nursery, autojump_clock):
    world = await two_tenant_world(nursery)
    status, conn_id = await raw_get(world, None, sni="api.example.net", host_header=b"evil.org")
    assert status == b"HTTP/1.1 421 "


async def test_strict_sni_host_within_one_account(nursery, autojump_clock):
    world = await two_tenant_world(nursery)
    plane = world.deployment.plane  # block. and log.example.com: both mTLS hosts of tenant A
    credential = profiles.issue(Profile.VALID, tenants()[0], now=START)
    status, _ = await raw_get(world, credential, sni=BLOCK_HOST, host_header=b"log.example.com")
    assert status == b"HTTP/1.1 200 "  # Cloudflare-like default: same account, rules see Host
    await plane.submit(c.PutZoneSettings(world.ids["zone"], ZoneSettings(strict_sni_host=True)))
    await world.deployment.settle()
    status, _ = await raw_get(world, credential, sni=BLOCK_HOST, host_header=b"log.example.com")
    assert status == b"HTTP/1.1 421 "


async def test_a_restarted_node_cut_from_the_plane_answers_503(nursery, autojump_clock):
    world = await two_tenant_world(nursery)
    before, _ = await raw_get(world, None, sni="api.example.net", host_header=b"api.example.net")
    world.deployment.links["n1"].cut()
    world.deployment.restart_node("n1")
    after, conn_id = await raw_get(world, None, sni="api.example.net",
                                   host_header=b"api.example.net")
    assert (before, after) == (b"HTTP/1.1 403 ", b"HTTP/1.1 503 ")
    (event,) = world.collector.requests(conn_id)
    assert event.decision is Decision.UNAVAILABLE and event.reason == "POLICY_MISSING"
    world.deployment.links["n1"].heal()
    await world.deployment.settle()
    healed, _ = await raw_get(world, None, sni="api.example.net", host_header=b"api.example.net")
    assert healed == b"HTTP/1.1 403 "


async def test_tls12_session_resumption_is_refused_so_new_trust_applies(nursery, autojump_clock):
    world = await two_tenant_world(nursery)
    node = world.deployment.nodes["n1"]
    assert openssl.session_cache_mode(node._contexts.plain) == 0
    credential = profiles.issue(Profile.VALID, tenants()[0], now=START)
    context = client_context(world.deployment.identity.configure_trust, credential,
                             maximum_version=ssl.TLSVersion.TLSv1_2)

    async def connect(session=None) -> tuple[TlsChannel, int, str]:
        channel, conn_id = await world.open_channel(sni=BLOCK_HOST, context=context,
                                                    session=session)
        status = await request(channel, ResponseReader(), BLOCK_HOST, "/")
        await channel.aclose()
        return channel, status, conn_id

    first, status, _ = await connect()
    assert status == 200
    # the tenant's CA is swapped for the managed CA: a resumed session would still say verified
    plane = world.deployment.plane
    await plane.submit(c.PutHostnameAssociations(world.ids["zone"], [BLOCK_HOST]))
    await plane.submit(c.PutHostnameAssociations(world.ids["zone"], [], world.ids["ca"]))
    await world.deployment.settle()
    second, status, conn_id = await connect(first.ssl_object.session)
    await world.drain()
    assert not second.ssl_object.session_reused
    assert status == 403
    assert world.collector.connection(conn_id).verdict.reason is Reason.UNKNOWN_CA


async def test_no_event_is_lost_when_the_collector_is_slower_than_the_idle_timeout(
    nursery, autojump_clock
):
    from edge.node.node import NodeSettings

    collector = RecordingCollector(delay=0.05, buffer=4)
    world = await EdgeWorld.start(nursery, tenants()[0], collector=collector, nodes=())
    await world.deployment.add_node("n1", settings=NodeSettings(idle_timeout=0.5))
    await world.deployment.settle()
    credential = profiles.issue(Profile.OTHER_CA, tenants()[0], now=START)
    results = []

    async def one() -> None:
        results.append(await world.visit(credential, sni=BLOCK_HOST))

    async with trio.open_nursery() as clients:
        for _ in range(200):
            clients.start_soon(one)
    await trio.sleep(600)
    requests = [e for e in collector.events if isinstance(e, RequestEvent)]
    connections = [e for e in collector.events if isinstance(e, ConnectionEvent)]
    assert len(requests) == len(connections) == 200
    assert all(e.requests == 1 for e in connections)


def test_host_normalisation():
    assert normalise_host("API.Example.com.:8443") == "api.example.com"
    assert normalise_host("[2001:db8::1]:443") == "[2001:db8::1]"
    assert normalise_host("") == ""
