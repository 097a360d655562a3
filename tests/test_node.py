"""Edge nodes end to end: real mutual TLS, verdicts at simulated time, HTTP, events."""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib

from edge.http import ResponseReader
import pytest
import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge.clients import request
from edge.control import commands as c
from edge.control.plane import Link
from edge.events import Decision, TlsOutcome
from edge.node.reasons import Reason
from edge.pki import profiles
from edge.pki.issuer import Authority, Credential
from edge.pki.profiles import EXPECTED_REASON, EXPECTED_VERIFY_CODE, Profile
from edge_world import BLOCK_HOST, LOG_HOST, START, EdgeWorld

DAY = 86400.0


@functools.cache
def tenant_ca(name: str = "Corp Root") -> Authority:
    return Authority.root({"CN": name, "O": "Corp"})


# --- one test per profile, on a log-mode and a block-mode hostname -----------------------


@pytest.mark.parametrize("host", [BLOCK_HOST, LOG_HOST])
@pytest.mark.parametrize("profile", list(Profile))
async def test_profile_verdict_reason_and_decision(nursery, autojump_clock, profile, host):
    world = await EdgeWorld.start(nursery, tenant_ca())
    credential = profiles.issue(profile, tenant_ca(), now=START)
    result = await world.visit(credential, sni=host, paths=("/", "/again"))
    await world.drain()
    verdict = world.collector.connection(result.conn_id).verdict
    verified = EXPECTED_REASON[profile] == "OK"
    assert result.outcome is TlsOutcome.OK  # the handshake never fails on the certificate
    assert verdict.reason.value == EXPECTED_REASON[profile]
    assert verdict.openssl_code == (EXPECTED_VERIFY_CODE[profile] or 0)
    assert verdict.requested and verdict.presented is (profile is not Profile.NONE)
    assert verdict.verified is verified and verdict.fields.cert_verified is verified
    assert verdict.ca_id == (world.ids["ca"] if verified else None)
    if profile is Profile.NONE:
        assert verdict.workers_status == "NONE" and verdict.fields.cert_presented is False
    elif verified:
        assert verdict.workers_status == "SUCCESS" and verdict.depth == -1
    else:
        assert verdict.workers_status == "FAILED:" + verdict.openssl_message
        assert verdict.openssl_message and verdict.depth >= 0
    blocked = host == BLOCK_HOST and not verified
    assert result.statuses == ((403, 403) if blocked else (200, 200))
    decisions = {e.decision for e in world.collector.requests(result.conn_id)}
    expected = Decision.BLOCK if blocked else Decision.ALLOW if verified else Decision.LOG
    assert decisions == {expected}
    assert {e.would_block for e in world.collector.requests(result.conn_id)} == {not verified}


def _hex_serial(serial: int) -> str:
    text = f"{serial:X}"
    return text.zfill(len(text) + len(text) % 2)


def _openssl_date(moment: dt.datetime) -> str:
    return moment.strftime("%b ") + f"{moment.day:>2}" + moment.strftime(" %H:%M:%S %Y GMT")


def _ski(certificate: x509.Certificate) -> str:
    return certificate.extensions.get_extension_for_class(
        x509.SubjectKeyIdentifier
    ).value.digest.hex().upper()


async def test_fields_are_exact_for_a_chain_with_an_intermediate(nursery, autojump_clock):
    world = await EdgeWorld.start(nursery, tenant_ca())
    credential = profiles.issue(Profile.WITH_INTERMEDIATE, tenant_ca(), now=START)
    result = await world.visit(credential, sni=LOG_HOST)
    await world.drain()
    fields = world.collector.connection(result.conn_id).verdict.fields.as_fields()
    leaf, (intermediate,) = credential.leaf, credential.chain
    leaf_der = leaf.public_bytes(serialization.Encoding.DER)
    inter_der = intermediate.public_bytes(serialization.Encoding.DER)
    f = {k.removeprefix("cf.tls_client_auth."): v for k, v in fields.items()}
    assert len(f) == 21
    assert f["cert_presented"] and f["cert_verified"] and not f["cert_revoked"]
    assert f["cert_subject_dn"] == f["cert_subject_dn_rfc2253"] == leaf.subject.rfc4514_string()
    assert f["cert_issuer_dn"] == f["cert_issuer_dn_rfc2253"] == leaf.issuer.rfc4514_string()
    legacy = "/" + "/".join(reversed(leaf.issuer.rfc4514_string().split(",")))
    assert f["cert_issuer_dn_legacy"] == legacy
    assert f["cert_serial"] == _hex_serial(leaf.serial_number)
    assert f["cert_issuer_serial"] == _hex_serial(intermediate.serial_number)
    assert f["cert_fingerprint_sha256"] == hashlib.sha256(leaf_der).hexdigest()
    assert f["cert_fingerprint_sha1"] == hashlib.sha1(leaf_der).hexdigest()
    assert f["cert_not_before"] == _openssl_date(leaf.not_valid_before_utc)
    assert f["cert_not_after"] == _openssl_date(leaf.not_valid_after_utc)
    assert f["cert_ski"] == _ski(leaf)
    assert f["cert_issuer_ski"] == _ski(intermediate)
    assert f["cert_rfc9440"] == ":" + base64.b64encode(leaf_der).decode() + ":"
    assert f["cert_chain_rfc9440"] == ":" + base64.b64encode(inter_der).decode() + ":"
    assert not f["cert_rfc9440_too_large"] and not f["cert_chain_rfc9440_too_large"]


async def test_non_mtls_hostname_requests_no_certificate(nursery, autojump_clock):
    world = await EdgeWorld.start(nursery, tenant_ca())
    credential = profiles.issue(Profile.VALID, tenant_ca(), now=START)
    result = await world.visit(credential, sni="www.example.com")
    await world.drain()
    verdict = world.collector.connection(result.conn_id).verdict
    assert not verdict.requested and not verdict.presented
    assert verdict.fields.as_fields()["cf.tls_client_auth.cert_presented"] is False
    assert all(v in (False, "") for v in verdict.fields.as_fields().values())
    assert result.statuses == (200,)


async def test_rsa_client_keys_verify_too(nursery, autojump_clock):
    world = await EdgeWorld.start(nursery, tenant_ca())
    credential = profiles.issue(Profile.VALID, tenant_ca(), now=START, key_type="rsa")
    result = await world.visit(credential, sni=BLOCK_HOST)
    assert result.statuses == (200,)


# --- tenants ---------------------------------------------------------------------------------


async def test_tenants_with_identical_ca_dns_never_verify_on_each_other(nursery, autojump_clock):
    corp_a = Authority.root({"CN": "Corp Root", "O": "Corp"})
    corp_b = Authority.root({"CN": "Corp Root", "O": "Corp"})
    assert corp_a.subject == corp_b.subject
    world = await EdgeWorld.start(nursery, corp_a)
    plane = world.deployment.plane
    other = await plane.submit(c.CreateAccount("other"))
    zone = await plane.submit(c.CreateZone(other.id, "example.net"))
    ca_b = await plane.submit(c.UploadCaCertificate(other.id, corp_b.certificate_pem))
    await plane.submit(c.PutHostnameAssociations(zone.id, ["api.example.net"], ca_b.id))
    await world.deployment.settle()
    a_client = profiles.issue(Profile.VALID, corp_a, now=START)
    b_client = profiles.issue(Profile.VALID, corp_b, now=START)
    outcomes = {}
    for who, cred in (("a", a_client), ("b", b_client)):
        for host in (BLOCK_HOST, "api.example.net"):
            result = await world.visit(cred, sni=host)
            await world.drain()
            outcomes[who, host] = world.collector.connection(result.conn_id).verdict
    assert outcomes["a", BLOCK_HOST].verified and outcomes["b", "api.example.net"].verified
    assert outcomes["a", BLOCK_HOST].ca_id == world.ids["ca"]
    assert outcomes["b", "api.example.net"].ca_id == ca_b.id
    for cross in (("a", "api.example.net"), ("b", BLOCK_HOST)):
        assert not outcomes[cross].verified
        assert outcomes[cross].reason is Reason.UNKNOWN_CA


# --- time -------------------------------------------------------------------------------------


async def test_expiry_happens_at_simulated_time(nursery, autojump_clock):
    world = await EdgeWorld.start(nursery, tenant_ca())
    credential = tenant_ca().issue(
        "short-lived", not_before=START - dt.timedelta(days=1), not_after=START + dt.timedelta(days=3)
    )
    await trio.sleep(2 * DAY)  # simulated day 2, a fraction of a real second
    day2 = await world.visit(credential, sni=BLOCK_HOST)
    await trio.sleep(2 * DAY)  # simulated day 4
    day4 = await world.visit(credential, sni=BLOCK_HOST)
    await world.drain()
    assert day2.statuses == (200,) and day4.statuses == (403,)
    earlier = world.collector.connection(day2.conn_id)
    later = world.collector.connection(day4.conn_id)
    assert earlier.verdict.verified and earlier.at - START >= dt.timedelta(days=2)
    assert later.verdict.reason is Reason.EXPIRED and later.verdict.openssl_code == 10
    assert later.at - START >= dt.timedelta(days=4)


# --- snapshots --------------------------------------------------------------------------------


async def test_connection_in_flight_keeps_its_snapshot_while_new_ones_switch(
    nursery, autojump_clock
):
    world = await EdgeWorld.start(nursery, tenant_ca())
    node = world.deployment.nodes["n1"]
    credential = profiles.issue(Profile.OTHER_CA, tenant_ca(), now=START)
    channel, conn_id = await world.open_channel(credential, sni=BLOCK_HOST)
    reader = ResponseReader()
    before = node.snapshot.version
    assert await request(channel, reader, BLOCK_HOST, "/1") == 403
    # the other CA is now associated too: new connections verify, the open one does not
    account = world.ids["account"]
    other_ca = profiles.unrelated_ca(tenant_ca())
    upload = await world.deployment.plane.submit(
        c.UploadCaCertificate(account, other_ca.certificate_pem)
    )
    await world.deployment.plane.submit(
        c.PutHostnameAssociations(world.ids["zone"], [BLOCK_HOST], upload.id)
    )
    await world.deployment.settle()
    assert node.snapshot.version > before
    assert await request(channel, reader, BLOCK_HOST, "/2") == 403
    await channel.aclose()
    fresh = await world.visit(credential, sni=BLOCK_HOST)
    await world.drain()
    assert fresh.statuses == (200,)
    old_requests = world.collector.requests(conn_id)
    assert [e.snapshot_version for e in old_requests] == [before, before]
    assert world.collector.connection(fresh.conn_id).snapshot_version == node.snapshot.version


async def test_a_node_without_a_snapshot_answers_503_with_policy_missing(nursery, autojump_clock):
    link = Link()
    link.cut()
    world = await EdgeWorld.start(nursery, tenant_ca(), nodes=(), link=link)
    await world.deployment.add_node("late", link=link)
    credential = profiles.issue(Profile.VALID, tenant_ca(), now=START)
    result = await world.visit(credential, sni=BLOCK_HOST, node="late")
    await world.drain()
    event = world.collector.connection(result.conn_id)
    assert event.snapshot_version == -1 and event.verdict.reason is Reason.POLICY_MISSING
    assert result.statuses == (503,)  # it cannot know the hostname's rules: it fails closed
    (refused,) = world.collector.requests(result.conn_id)
    assert refused.decision is Decision.UNAVAILABLE and refused.reason == "POLICY_MISSING"
    link.heal()
    await world.deployment.settle()
    result = await world.visit(credential, sni=BLOCK_HOST, node="late")
    await world.drain()
    assert world.collector.connection(result.conn_id).verdict.reason is Reason.OK


async def test_contexts_are_cached_per_trust_set_and_evicted(nursery, autojump_clock):
    world = await EdgeWorld.start(nursery, tenant_ca())
    node = world.deployment.nodes["n1"]
    contexts = node._contexts
    assert len(contexts) == 1 and contexts.built == 1  # two hostnames, one trust set
    plane = world.deployment.plane
    await plane.submit(c.PutHostnameAssociations(world.ids["zone"], [LOG_HOST]))  # + managed CA
    await world.deployment.settle()
    assert len(contexts) == 2 and contexts.built == 2
    await plane.submit(c.PutHostnameAssociations(world.ids["zone"], []))
    await world.deployment.settle()
    assert len(contexts) == 1 and contexts.built == 2  # the old one came back from the cache


# --- managed CA and revocation ----------------------------------------------------------------


def _csr_and_key(cn: str):
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode(), key


async def test_revoked_managed_certificate_is_verified_but_revoked(nursery, autojump_clock):
    world = await EdgeWorld.start(nursery, tenant_ca())
    plane = world.deployment.plane
    zone = world.ids["zone"]
    await plane.submit(c.PutHostnameAssociations(zone, [BLOCK_HOST]))  # managed CA as well
    csr, key = _csr_and_key("device-9")
    issued = await plane.submit(c.CreateClientCertificate(zone, csr, 30))
    credential = Credential(x509.load_pem_x509_certificate(issued.certificate.encode()), key)
    await world.deployment.settle()
    first = await world.visit(credential, sni=BLOCK_HOST)
    await plane.submit(c.RevokeClientCertificate(zone, issued.id))
    await world.deployment.settle()
    second = await world.visit(credential, sni=BLOCK_HOST)
    await world.drain()
    ok = world.collector.connection(first.conn_id).verdict
    revoked = world.collector.connection(second.conn_id).verdict
    assert ok.verified and not ok.revoked and ok.ca_id == issued.managed_ca_id
    assert revoked.verified and revoked.revoked and revoked.reason is Reason.REVOKED
    assert revoked.fields.cert_revoked and revoked.workers_status == "FAILED:certificate revoked"
    assert first.statuses == (200,) and second.statuses == (403,)


# --- standalone verify --------------------------------------------------------------------


@pytest.mark.parametrize("profile", [p for p in Profile if p is not Profile.NONE])
async def test_standalone_verify_agrees_with_the_handshake(nursery, autojump_clock, profile):
    from edge.node.verify import verify

    world = await EdgeWorld.start(nursery, tenant_ca())
    credential = profiles.issue(profile, tenant_ca(), now=START)
    result = await world.visit(credential, sni=LOG_HOST)
    await world.drain()
    event = world.collector.connection(result.conn_id)
    chain = [cert.public_bytes(serialization.Encoding.DER) for cert in credential.chain]
    verdict, reason = verify(credential.leaf_der, chain, [tenant_ca().certificate_der], event.at)
    assert reason is event.verdict.reason
    assert (verdict.code, verdict.depth) == (event.verdict.openssl_code, event.verdict.depth)
