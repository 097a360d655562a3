"""Custom rules, certificate forwarding and SNI/Host at the edge, end to end."""

from __future__ import annotations

import functools

from edge.http import ResponseReader
import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from edge.clients import client_context, request
from edge.control import commands as c
from edge.control.records import Action, ForwardingOptions, Rule, ZoneSettings
from edge.deployment import Deployment
from edge.events import Decision, RequestEvent
from edge.node.forwarding import is_protected
from edge.node.identity import EdgeIdentity
from edge.node.origin import Origin
from edge.pki import profiles
from edge.pki.issuer import Authority
from edge.pki.profiles import EXPECTED_REASON, Profile
from edge.tls import TlsChannel
from edge_world import START, RecordingCollector

API = "api.example.com"
WWW = "www.example.com"
STANDARD = f'(http.host in {{"{API}"}} and not cf.tls_client_auth.cert_verified)'


@functools.cache
def tenant() -> Authority:
    return Authority.root({"CN": "Rules Root", "O": "Example"})


class Edge:
    """example.com with the tenant CA on api.example.com, rules and settings as asked."""

    def __init__(self, deployment: Deployment, zone_id: str, origin: Origin) -> None:
        self.deployment, self.zone_id, self.origin = deployment, zone_id, origin

    @classmethod
    async def start(cls, nursery, *, settings: ZoneSettings = ZoneSettings()) -> Edge:
        deployment = Deployment(
            start=START, collector=RecordingCollector(),
            identity=EdgeIdentity(names=("example.com", "*.example.com")),
        )
        await deployment.start_in(nursery)
        plane = deployment.plane
        account = await plane.submit(c.CreateAccount("acme"))
        zone = await plane.submit(c.CreateZone(account.id, "example.com"))
        ca = await plane.submit(c.UploadCaCertificate(account.id, tenant().certificate_pem))
        await plane.submit(c.PutHostnameAssociations(zone.id, [API], ca.id))
        await plane.submit(c.PutZoneSettings(zone.id, settings))
        origin = Origin(record=True)
        await deployment.add_node("n1", origin=origin)
        await deployment.settle()
        return cls(deployment, zone.id, origin)

    async def rules(self, *rules: Rule) -> None:
        await self.deployment.plane.submit(c.PutCustomRules(self.zone_id, rules))
        await self.deployment.settle()

    async def get(self, credential, *, sni: str, host: str, headers=()) -> tuple[int, RequestEvent]:
        context = client_context(self.deployment.identity.configure_trust, credential)
        accepted = self.deployment.network.connect("n1")
        channel = TlsChannel.wrap(accepted.stream, context, server_side=False,
                                  server_hostname=sni)
        await channel.handshake()
        status = await request(channel, ResponseReader(), host, "/orders", headers)
        await channel.aclose()
        await trio.sleep(1)
        (event,) = self.deployment.collector.requests(accepted.conn_id)
        return status, event


@pytest.mark.parametrize("profile", list(Profile))
async def test_standard_rule_logs_then_blocks_over_every_profile(nursery, autojump_clock, profile):
    edge = await Edge.start(nursery)
    credential = profiles.issue(profile, tenant(), now=START)
    verified = EXPECTED_REASON[profile] == "OK"
    await edge.rules(Rule(STANDARD, Action.LOG, "rehearse"))
    status, logged = await edge.get(credential, sni=API, host=API)
    assert status == 200  # log mode never blocks
    assert logged.decision is (Decision.ALLOW if verified else Decision.LOG)
    assert logged.would_block is (not verified)
    assert logged.matched == (() if verified else ("rehearse",))
    await edge.rules(Rule(STANDARD, Action.BLOCK, "enforce"))
    status, enforced = await edge.get(credential, sni=API, host=API)
    assert status == (200 if verified else 403)  # enforce never lets an unverified one through
    assert enforced.decision is (Decision.ALLOW if verified else Decision.BLOCK)
    assert len(edge.origin.received) == (2 if verified else 1)


async def test_skip_stops_evaluation_and_log_rules_are_recorded(nursery, autojump_clock):
    edge = await Edge.start(nursery)
    credential = profiles.issue(Profile.OTHER_CA, tenant(), now=START)
    await edge.rules(
        Rule('http.request.uri.path eq "/health"', Action.SKIP, "health checks"),
        Rule(STANDARD, Action.LOG, "rehearse"),
        Rule(STANDARD, Action.BLOCK, "enforce", enabled=False),
    )
    status, event = await edge.get(credential, sni=API, host=API)
    assert status == 200 and event.decision is Decision.LOG and event.matched == ("rehearse",)


# --- SNI and Host -----------------------------------------------------------------------------


@pytest.mark.parametrize("strict", [False, True])
async def test_sni_of_a_plain_host_with_host_of_the_mtls_one(nursery, autojump_clock, strict):
    """The classic bypass attempt: TLS to www (no certificate asked), HTTP to api."""
    edge = await Edge.start(nursery, settings=ZoneSettings(strict_sni_host=strict))
    await edge.rules(Rule(STANDARD, Action.BLOCK, "enforce"))
    status, event = await edge.get(None, sni=WWW, host=API)
    assert event.sni_host_mismatch
    if strict:
        assert status == 421 and event.decision is Decision.MISDIRECTED
    else:  # Cloudflare-like: rules see Host, and no certificate was verified on this connection
        assert status == 403 and event.decision is Decision.BLOCK
    assert edge.origin.received == []


@pytest.mark.parametrize("strict", [False, True])
async def test_verified_on_the_mtls_sni_then_host_of_a_plain_name(nursery, autojump_clock, strict):
    edge = await Edge.start(nursery, settings=ZoneSettings(strict_sni_host=strict))
    await edge.rules(Rule(STANDARD, Action.BLOCK, "enforce"))
    credential = profiles.issue(Profile.VALID, tenant(), now=START)
    status, event = await edge.get(credential, sni=API, host=WWW)
    assert status == 200 and event.sni_host_mismatch  # www is no mTLS host: nothing to misdirect


# --- forwarding -------------------------------------------------------------------------------

ALL = ZoneSettings(ForwardingOptions(managed_transform=True, access_headers=True, rfc9440=True))
PROTECTED = ["cf-cert-verified", "CF-Cert-Presented", "cf-cert-sha256", "Cf-Client-Cert-Sha256",
             "cf-client-cert-der-base64", "Client-Cert", "client-cert-chain", "cf-cert-issuer-dn"]
names = st.one_of(
    st.sampled_from(PROTECTED),
    st.from_regex(r"x-[a-z0-9-]{1,12}", fullmatch=True),
)
values = st.from_regex(r"[!-~]{1,24}", fullmatch=True)


@given(
    headers=st.lists(st.tuples(names, values), max_size=8),
    profile=st.sampled_from([Profile.VALID, Profile.OTHER_CA, Profile.NONE]),
)
def test_client_sent_certificate_headers_never_reach_the_origin(headers, profile):
    """The same request with and without spoofed headers: the origin sees the same certificate
    headers (the edge's), and every other client header unchanged and in order."""

    async def scenario():
        async with trio.open_nursery() as nursery:
            edge = await Edge.start(nursery, settings=ALL)
            credential = profiles.issue(profile, tenant(), now=START)
            await edge.get(credential, sni=API, host=API)
            await edge.get(credential, sni=API, host=API, headers=headers)
            nursery.cancel_scope.cancel()
        return [received.headers for received in edge.origin.received]

    clean, spoofed = trio.run(scenario, clock=trio.testing.MockClock(autojump_threshold=0))

    def protected(seen):
        return sorted((n.lower(), v) for n, v in seen if is_protected(n))

    assert protected(spoofed) == protected(clean)
    unprotected = [(n.lower(), v) for n, v in headers if not is_protected(n)]
    assert [(n.lower(), v) for n, v in spoofed if not is_protected(n) and n != "host"] == unprotected
    if profile is Profile.VALID:
        assert "client-cert" in dict(protected(clean))  # verified: RFC 9440 header forwarded
