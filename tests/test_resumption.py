"""TLS session resumption at the edge, a deliberate setting: with tickets on, a resumed
connection carries the verdict and fields of the handshake that verified its certificate;
revocations still apply; another trust set never resumes."""

from __future__ import annotations

import functools

from edge.http import ResponseReader
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge.clients import client_context, request
from edge.control import commands as c
from edge.node.node import NodeSettings
from edge.node.policy import HostModePolicy, Mode
from edge.node.reasons import Reason
from edge.pki.issuer import Authority, Credential
from edge_world import BLOCK_HOST, EdgeWorld


@functools.cache
def tenant() -> Authority:
    return Authority.root({"CN": "Resumption Root"})


async def ticketed_world(nursery) -> EdgeWorld:
    world = await EdgeWorld.start(nursery, tenant(), nodes=())
    await world.deployment.add_node(
        "n1", settings=NodeSettings(num_tickets=2),
        policy=HostModePolicy({BLOCK_HOST: Mode.BLOCK}),
    )
    await world.deployment.settle()
    return world


async def connect(world: EdgeWorld, context, session=None):
    channel, conn_id = await world.open_channel(sni=BLOCK_HOST, context=context, session=session)
    status = await request(channel, ResponseReader(), BLOCK_HOST, "/")
    session = channel.ssl_object.session  # the ticket arrived with the response
    reused = channel.ssl_object.session_reused
    await channel.aclose()
    await world.drain()
    return world.collector.connection(conn_id), status, session, reused


async def test_a_resumed_connection_carries_the_verdict_and_fields_of_its_session(
    nursery, autojump_clock
):
    world = await ticketed_world(nursery)
    context = client_context(world.deployment.identity.configure_trust,
                             tenant().issue("device"))
    first, status, session, reused = await connect(world, context)
    assert status == 200 and not reused and first.verdict.verified
    again, status, _, reused = await connect(world, context, session)
    assert reused, "the ticket should resume the session"
    assert status == 200 and again.verdict == first.verdict  # fields included


async def test_a_revocation_reaches_resumed_sessions(nursery, autojump_clock):
    world = await ticketed_world(nursery)
    plane, zone = world.deployment.plane, world.ids["zone"]
    await plane.submit(c.PutHostnameAssociations(zone, [BLOCK_HOST]))  # + the managed CA
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "laptop")]))
           .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())
    issued = await plane.submit(c.CreateClientCertificate(zone, csr, 30))
    await world.deployment.settle()
    credential = Credential(x509.load_pem_x509_certificate(issued.certificate.encode()), key)
    context = client_context(world.deployment.identity.configure_trust, credential)
    first, status, session, _ = await connect(world, context)
    assert status == 200 and first.verdict.verified and not first.verdict.revoked
    await plane.submit(c.RevokeClientCertificate(zone, issued.id))
    await world.deployment.settle()
    again, status, _, reused = await connect(world, context, session)
    assert reused and status == 403
    assert again.verdict.revoked and again.verdict.reason is Reason.REVOKED
    assert again.verdict.fields.cert_revoked


async def test_a_session_from_another_trust_set_is_not_trusted(nursery, autojump_clock):
    """Tickets are sealed by the context a connection starts on, so OpenSSL resumes across
    trust sets; the node has no verdict for the certificate under the new trust set and fails
    closed (a fresh connection without the ticket is verified normally)."""
    world = await ticketed_world(nursery)
    context = client_context(world.deployment.identity.configure_trust,
                             tenant().issue("device"))
    _, status, session, _ = await connect(world, context)
    assert status == 200
    other = Authority.root({"CN": "Another Root"})
    plane = world.deployment.plane
    upload = await plane.submit(c.UploadCaCertificate(world.ids["account"], other.certificate_pem))
    await plane.submit(c.PutHostnameAssociations(world.ids["zone"], [BLOCK_HOST], upload.id))
    await plane.submit(c.PutHostnameAssociations(world.ids["zone"], [], world.ids["ca"]))
    await world.deployment.settle()
    again, status, _, _ = await connect(world, context, session)
    assert status == 403 and not again.verdict.verified
    assert again.verdict.reason is Reason.UNKNOWN_CA


async def test_a_resumed_session_names_the_hostnames_own_ca_when_tenants_share_one(
    nursery, autojump_clock
):
    """Two accounts upload the very same CA: one trust set, two CA ids. A session verified on
    tenant A's hostname and resumed on tenant B's carries B's CA id, never A's."""
    world = await ticketed_world(nursery)
    plane = world.deployment.plane
    other = await plane.submit(c.CreateAccount("twin"))
    zone = await plane.submit(c.CreateZone(other.id, "example.net"))
    twin = await plane.submit(c.UploadCaCertificate(other.id, tenant().certificate_pem))
    await plane.submit(c.PutHostnameAssociations(zone.id, ["api.example.net"], twin.id))
    await world.deployment.settle()
    context = client_context(world.deployment.identity.configure_trust,
                             tenant().issue("device"))
    first, status, session, _ = await connect(world, context)
    assert status == 200 and first.verdict.ca_id == world.ids["ca"]
    channel, conn_id = await world.open_channel(sni="api.example.net", context=context,
                                                session=session)
    await request(channel, ResponseReader(), "api.example.net", "/")
    reused = channel.ssl_object.session_reused
    await channel.aclose()
    await world.drain()
    resumed = world.collector.connection(conn_id).verdict
    assert reused and resumed.verified and resumed.ca_id == twin.id
