"""Client-certificate profiles: their structure, and their verdicts from OpenSSL through the stdlib.

The verdict check is independent of the edge: a plain `ssl` server with CERT_REQUIRED, trusting
only the tenant CA, does a real handshake over MemoryBIOs, and the server side's
`SSLCertVerificationError.verify_code` must be the profile's expected code. OpenSSL verifies at
wall-clock time here, so these tests take the wall clock as the simulated `now`.
"""

from __future__ import annotations

import datetime as dt
import ssl

import pytest
import trustme
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID

from edge.node.reasons import reason_for_code
from edge.pki import profiles
from edge.pki.issuer import Authority, Credential, key_type_of, public_key_der
from edge.pki.profiles import EXPECTED_REASON, EXPECTED_VERIFY_CODE, Profile, issue

UTC = dt.timezone.utc
NOW = dt.datetime.now(UTC).replace(microsecond=0)
SERVER_NAME = "api.tenant.test"


@pytest.fixture(scope="module")
def tenant() -> Authority:
    return Authority.root(
        {"CN": "Tenant Root", "O": "Tenant Inc"},
        not_before=NOW - dt.timedelta(days=365),
        not_after=NOW + dt.timedelta(days=3650),
    )


@pytest.fixture(scope="module")
def server_pki() -> tuple[trustme.CA, trustme.LeafCert]:
    ca = trustme.CA()
    return ca, ca.issue_cert(SERVER_NAME)


def handshake(
    credential: Credential | None, anchor: Authority, server_pki
) -> tuple[ssl.SSLError | None, ssl.SSLError | None]:
    """One TLS handshake over memory; returns (server error, client error)."""
    server_ca, server_cert = server_pki
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_cert.configure_cert(server_context)
    server_context.verify_mode = ssl.CERT_REQUIRED
    server_context.load_verify_locations(cadata=anchor.certificate_pem)
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    server_ca.configure_trust(client_context)
    if credential is not None:
        credential.configure(client_context)

    server_in, server_out, client_in, client_out = (ssl.MemoryBIO() for _ in range(4))
    server = server_context.wrap_bio(server_in, server_out, server_side=True)
    client = client_context.wrap_bio(client_in, client_out, server_hostname=SERVER_NAME)
    errors: dict[str, ssl.SSLError | None] = {"server": None, "client": None}
    done = {"server": False, "client": False}
    # Each round lets each side read what the other wrote; TLS 1.3 needs three flights.
    for _ in range(6):
        for side, end, outbox, peer_inbox in (
            ("client", client, client_out, server_in),
            ("server", server, server_out, client_in),
        ):
            if errors[side] is None and not done[side]:
                try:
                    end.do_handshake()
                    done[side] = True
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLError as exc:
                    errors[side] = exc
            peer_inbox.write(outbox.read())
        if errors["server"] is not None or all(done.values()):
            break
    else:
        raise AssertionError(f"handshake did not finish: {errors}, {done}")
    return errors["server"], errors["client"]


def ext(certificate: x509.Certificate, kind):
    return certificate.extensions.get_extension_for_class(kind).value


# --- the table ------------------------------------------------------------------------------


def test_every_profile_has_an_expectation():
    assert set(EXPECTED_REASON) == set(Profile) == set(EXPECTED_VERIFY_CODE)
    for profile, code in EXPECTED_VERIFY_CODE.items():
        if code is not None:
            assert reason_for_code(code).value == EXPECTED_REASON[profile], profile


def test_too_deep_default_exceeds_the_assumed_edge_limit():
    assert profiles.DEFAULT_TOO_DEEP > profiles.ASSUMED_EDGE_MAX_DEPTH


# --- verdicts from OpenSSL ------------------------------------------------------------------


@pytest.mark.parametrize("profile", list(Profile), ids=str)
def test_openssl_verdict_matches_expectation(profile, tenant, server_pki):
    credential = issue(profile, tenant, now=NOW)
    server_error, client_error = handshake(credential, tenant, server_pki)
    expected = EXPECTED_VERIFY_CODE[profile]
    if profile is Profile.TOO_DEEP:
        # The stdlib cannot set a verify depth: under OpenSSL's default (100) the chain is
        # otherwise sound. The depth limit itself is the edge's to test.
        assert server_error is None and client_error is None
        assert len(credential.chain) == profiles.DEFAULT_TOO_DEEP
    elif profile is Profile.NONE:
        assert credential is None
        assert not isinstance(server_error, ssl.SSLCertVerificationError)
        assert server_error.reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE"
    elif expected == 0:
        assert server_error is None and client_error is None
    else:
        assert isinstance(server_error, ssl.SSLCertVerificationError), server_error
        assert server_error.verify_code == expected, server_error.verify_message


@pytest.mark.parametrize("key_type", ["ec384", "rsa", "ed25519"])
def test_valid_profile_with_other_key_types_handshakes(key_type, tenant, server_pki):
    credential = issue(Profile.VALID, tenant, now=NOW, key_type=key_type)
    assert key_type_of(credential.key) == key_type
    assert handshake(credential, tenant, server_pki) == (None, None)


def test_impostor_without_aki_fails_the_signature_instead(tenant, server_pki):
    """Why same_dn_other_key is 20: with no AKI, OpenSSL picks the tenant CA by name alone."""
    credential = profiles.impostor_ca(tenant).issue(aki=False)
    server_error, _ = handshake(credential, tenant, server_pki)
    assert server_error.verify_code == 7  # certificate signature failure: BAD_SIGNATURE


def test_other_tenant_does_not_trust_this_tenant(tenant, server_pki):
    neighbour = Authority.root({"CN": "Neighbour Root"}, exclude_keys=[tenant.key])
    credential = issue(Profile.VALID, tenant, now=NOW)
    server_error, _ = handshake(credential, neighbour, server_pki)
    assert server_error.verify_code == 20


# --- structure ------------------------------------------------------------------------------


def test_valid_window_is_relative_to_simulated_now(tenant):
    later = NOW + dt.timedelta(days=400)
    leaf = issue(Profile.VALID, tenant, now=later).leaf
    assert leaf.not_valid_before_utc == later - dt.timedelta(days=1)
    assert leaf.not_valid_after_utc == later + profiles.LEAF_LIFETIME
    leaf.verify_directly_issued_by(tenant.certificate)
    assert list(ext(leaf, x509.ExtendedKeyUsage)) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_expired_and_not_yet_valid_windows(tenant):
    expired = issue(Profile.EXPIRED, tenant, now=NOW).leaf
    assert expired.not_valid_after_utc == NOW - dt.timedelta(days=1)
    assert expired.not_valid_before_utc < expired.not_valid_after_utc
    future = issue(Profile.NOT_YET_VALID, tenant, now=NOW).leaf
    assert future.not_valid_before_utc == NOW + dt.timedelta(days=1)
    assert future.not_valid_after_utc > future.not_valid_before_utc


def test_other_ca_and_self_signed_are_not_from_the_tenant(tenant):
    other = issue(Profile.OTHER_CA, tenant, now=NOW)
    assert other.chain == () and other.leaf.issuer != tenant.subject
    other.leaf.verify_directly_issued_by(profiles.unrelated_ca(tenant).certificate)
    assert public_key_der(profiles.unrelated_ca(tenant).key) != public_key_der(tenant.key)
    mine = issue(Profile.SELF_SIGNED, tenant, now=NOW)
    assert mine.chain == () and mine.leaf.issuer == mine.leaf.subject
    mine.leaf.verify_directly_issued_by(mine.leaf)


def test_intermediate_profiles_share_one_cached_child_of_the_tenant(tenant):
    sent = issue(Profile.WITH_INTERMEDIATE, tenant, now=NOW)
    missing = issue(Profile.MISSING_INTERMEDIATE, tenant, now=NOW)
    (intermediate,) = sent.chain
    assert missing.chain == ()
    assert intermediate == profiles.tenant_intermediate(tenant).certificate
    intermediate.verify_directly_issued_by(tenant.certificate)
    assert ext(intermediate, x509.BasicConstraints).ca
    sent.leaf.verify_directly_issued_by(intermediate)
    missing.leaf.verify_directly_issued_by(intermediate)
    assert sent.leaf.serial_number != missing.leaf.serial_number
    other_tenant = Authority.root("Second Tenant")
    assert profiles.tenant_intermediate(other_tenant) != profiles.tenant_intermediate(tenant)


def test_eku_profiles(tenant):
    server_only = issue(Profile.EKU_SERVER_ONLY, tenant, now=NOW).leaf
    assert list(ext(server_only, x509.ExtendedKeyUsage)) == [ExtendedKeyUsageOID.SERVER_AUTH]
    with pytest.raises(x509.ExtensionNotFound):
        ext(issue(Profile.NO_EKU, tenant, now=NOW).leaf, x509.ExtendedKeyUsage)


@pytest.mark.parametrize("depth", [2, profiles.DEFAULT_TOO_DEEP])
def test_too_deep_sends_every_intermediate_in_order(tenant, depth):
    credential = issue(Profile.TOO_DEEP, tenant, now=NOW, depth=depth)
    chain = credential.chain
    assert len(chain) == depth
    credential.leaf.verify_directly_issued_by(chain[0])
    for child, parent in zip(chain, chain[1:]):
        child.verify_directly_issued_by(parent)
    chain[-1].verify_directly_issued_by(tenant.certificate)
    assert issue(Profile.TOO_DEEP, tenant, now=NOW, depth=depth).chain == chain  # cached


def test_too_deep_needs_an_intermediate(tenant):
    with pytest.raises(ValueError):
        issue(Profile.TOO_DEEP, tenant, now=NOW, depth=0)


def test_same_dn_other_key(tenant):
    credential = issue(Profile.SAME_DN_OTHER_KEY, tenant, now=NOW)
    impostor = profiles.impostor_ca(tenant)
    assert impostor.subject == tenant.subject
    assert impostor.subject.public_bytes() == tenant.subject.public_bytes()
    assert credential.leaf.issuer == tenant.subject
    assert public_key_der(impostor.key) != public_key_der(tenant.key)
    assert key_type_of(impostor.key) == key_type_of(tenant.key)
    credential.leaf.verify_directly_issued_by(impostor.certificate)
    with pytest.raises(InvalidSignature):
        credential.leaf.verify_directly_issued_by(tenant.certificate)


def test_none_and_arguments(tenant):
    assert issue("none", tenant, now=NOW) is None
    leaf = issue("valid", tenant, now=NOW, subject_cn="fleet-a-17").leaf
    assert leaf.subject.rfc4514_string() == "CN=fleet-a-17"
    with pytest.raises(ValueError, match="timezone-aware"):
        issue(Profile.VALID, tenant, now=dt.datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        issue("bogus", tenant, now=NOW)


def test_cache_can_be_cleared(tenant):
    before = profiles.tenant_intermediate(tenant)
    profiles.clear_cache()
    after = profiles.tenant_intermediate(tenant)
    assert after != before
    assert profiles.tenant_intermediate(tenant) is after
