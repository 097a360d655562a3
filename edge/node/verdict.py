"""The verdict on a client certificate, and the `cf.tls_client_auth.*` fields that carry it.

Pure: it takes what the handshake learned (the leaf, the chain the client sent, the chain OpenSSL
built, OpenSSL's first error) and the hostname's policy, and gives what Cloudflare's edge would
record. No I/O, no OpenSSL calls; the Trio shell feeds it.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Sequence

import attrs
from cryptography import x509

from edge.control.snapshot import EdgeConfig, HostPolicy
from edge.node.reasons import Reason, reason_for_code
from edge.pki import formats

PREFIX = "cf.tls_client_auth."
RFC9440_LEAF_LIMIT = 10 * 1024
RFC9440_CHAIN_LIMIT = 16 * 1024


@attrs.frozen
class ClientAuthFields:
    """The 21 `cf.tls_client_auth.*` fields; defaults are what a non-mTLS hostname shows."""

    cert_presented: bool = False
    cert_verified: bool = False
    cert_revoked: bool = False
    cert_issuer_dn: str = ""
    cert_subject_dn: str = ""
    cert_issuer_dn_rfc2253: str = ""
    cert_subject_dn_rfc2253: str = ""
    cert_issuer_dn_legacy: str = ""
    cert_subject_dn_legacy: str = ""
    cert_serial: str = ""
    cert_issuer_serial: str = ""
    cert_fingerprint_sha256: str = ""
    cert_fingerprint_sha1: str = ""
    cert_not_before: str = ""
    cert_not_after: str = ""
    cert_ski: str = ""
    cert_issuer_ski: str = ""
    cert_rfc9440: str = ""
    cert_rfc9440_too_large: bool = False
    cert_chain_rfc9440: str = ""
    cert_chain_rfc9440_too_large: bool = False

    def as_fields(self) -> dict[str, bool | str]:
        """Keyed by the full field names the Rules language uses."""
        return dict(self._field_map)

    @functools.cached_property
    def _field_map(self) -> dict[str, bool | str]:
        """Built once per instance: `certificate_fields` hands every connection presenting the
        same certificate the same instance, and every request's rules read these fields."""
        return {PREFIX + name: value for name, value in attrs.asdict(self).items()}


@attrs.frozen
class Verdict:
    requested: bool  # a certificate was asked for (the hostname has an association)
    presented: bool
    verified: bool
    revoked: bool
    reason: Reason
    openssl_code: int
    openssl_message: str
    depth: int  # where OpenSSL's first error was found; -1 when none
    ca_id: str | None  # the associated CA the chain verified to
    fields: ClientAuthFields = ClientAuthFields()

    @property
    def workers_status(self) -> str:
        """`SUCCESS`, `NONE` or `FAILED:<OpenSSL reason>`, as nginx and Workers show it."""
        if not self.presented:
            return "NONE"
        if self.verified and not self.revoked:
            return "SUCCESS"
        return "FAILED:" + (self.openssl_message if not self.verified else "certificate revoked")

    def summary(self) -> dict:
        """The verdict without the certificate fields, for events and reports."""
        return {
            "requested": self.requested,
            "presented": self.presented,
            "verified": self.verified,
            "revoked": self.revoked,
            "reason": self.reason.value,
            "openssl_code": self.openssl_code,
            "openssl_message": self.openssl_message,
            "depth": self.depth,
            "ca_id": self.ca_id,
            "status": self.workers_status,
        }


NOT_REQUESTED = Verdict(False, False, False, False, Reason.NO_CERT, 0, "", -1, None)
POLICY_MISSING = Verdict(False, False, False, False, Reason.POLICY_MISSING, 0, "", -1, None)


def _ski(certificate: x509.Certificate) -> str:
    try:
        ext = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except (x509.ExtensionNotFound, ValueError):
        return ""
    return ext.value.digest.hex().upper()


def _aki(certificate: x509.Certificate) -> str:
    try:
        ext = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    except (x509.ExtensionNotFound, ValueError):
        return ""
    key_id = ext.value.key_identifier
    return key_id.hex().upper() if key_id else ""


def _issuer_of(
    leaf: x509.Certificate, built_chain: Sequence[bytes], sent_chain: Sequence[bytes]
) -> x509.Certificate | None:
    """The leaf's issuer: next in the chain OpenSSL built, else a sent one with the issuer's DN.

    The fields only describe the certificate; trust never depends on this match.
    """
    if len(built_chain) > 1:
        return x509.load_der_x509_certificate(built_chain[1])
    for der in sent_chain:
        candidate = x509.load_der_x509_certificate(der)
        if candidate.subject == leaf.issuer:
            return candidate
    return None


@functools.lru_cache(maxsize=4096)
def _serial(leaf_der: bytes) -> int:
    return x509.load_der_x509_certificate(leaf_der).serial_number


@functools.lru_cache(maxsize=1024)
def _fingerprint(der: bytes) -> str:
    return formats.fingerprint_sha256(x509.load_der_x509_certificate(der))


def anchor_fingerprint(built_chain: Sequence[bytes]) -> str:
    """The SHA-256 of the chain's last certificate: the trust anchor OpenSSL verified to."""
    return _fingerprint(built_chain[-1])


def _rfc9440(ders: Sequence[bytes]) -> str:
    return ",".join(":" + base64.b64encode(der).decode("ascii") + ":" for der in ders)


@functools.lru_cache(maxsize=4096)
def certificate_fields(
    leaf_der: bytes,
    sent_chain: tuple[bytes, ...],
    built_chain: tuple[bytes, ...],
    *,
    verified: bool,
    revoked: bool,
) -> ClientAuthFields:
    """All 21 fields for a presented certificate, in Cloudflare's formats.

    Cached: a fleet presents the same few certificates over and over, and parsing and rendering
    them is the largest Python cost of a connection after the handshake itself.
    """
    leaf = x509.load_der_x509_certificate(leaf_der)
    issuer = _issuer_of(leaf, built_chain, sent_chain)
    leaf_field = _rfc9440([leaf_der])
    chain_field = _rfc9440(sent_chain)
    leaf_too_large = len(leaf_der) > RFC9440_LEAF_LIMIT
    chain_too_large = sum(len(der) for der in sent_chain) > RFC9440_CHAIN_LIMIT
    return ClientAuthFields(
        cert_presented=True,
        cert_verified=verified,
        cert_revoked=revoked,
        cert_issuer_dn=formats.dn_rfc2253(leaf.issuer),
        cert_subject_dn=formats.dn_rfc2253(leaf.subject),
        cert_issuer_dn_rfc2253=formats.dn_rfc2253(leaf.issuer),
        cert_subject_dn_rfc2253=formats.dn_rfc2253(leaf.subject),
        cert_issuer_dn_legacy=formats.dn_legacy(leaf.issuer),
        cert_subject_dn_legacy=formats.dn_legacy(leaf.subject),
        cert_serial=formats.serial_hex(leaf.serial_number),
        cert_issuer_serial="" if issuer is None else formats.serial_hex(issuer.serial_number),
        cert_fingerprint_sha256=formats.fingerprint_sha256(leaf),
        cert_fingerprint_sha1=formats.fingerprint_sha1(leaf),
        cert_not_before=formats.openssl_time(leaf.not_valid_before_utc),
        cert_not_after=formats.openssl_time(leaf.not_valid_after_utc),
        cert_ski=_ski(leaf),
        cert_issuer_ski=_aki(leaf) or ("" if issuer is None else _ski(issuer)),
        cert_rfc9440="" if leaf_too_large else leaf_field,
        cert_rfc9440_too_large=leaf_too_large,
        cert_chain_rfc9440="" if chain_too_large else chain_field,
        cert_chain_rfc9440_too_large=chain_too_large,
    )


def decide(
    policy: HostPolicy,
    snapshot: EdgeConfig,
    *,
    leaf_der: bytes | None,
    sent_chain: Sequence[bytes],
    built_chain: Sequence[bytes],
    openssl_code: int,
    openssl_message: str,
    depth: int,
) -> Verdict:
    """The verdict for an mTLS hostname, from what OpenSSL found during the handshake."""
    if leaf_der is None:
        return attrs.evolve(NOT_REQUESTED, requested=True)
    verified = openssl_code == 0
    ca = policy.ca_with_fingerprint(anchor_fingerprint(built_chain)) if built_chain else None
    if verified and ca is None:
        # Verified to no CA of this hostname, or with no chain at all (a resumed session is not
        # verified again): never trust that.
        verified, openssl_code, openssl_message = False, 20, "unable to get local issuer certificate"
    revoked = verified and _is_revoked(policy, snapshot, ca.ca_id if ca else None, leaf_der)
    reason = Reason.REVOKED if revoked else reason_for_code(openssl_code)
    fields = certificate_fields(
        leaf_der, tuple(sent_chain), tuple(built_chain), verified=verified, revoked=revoked
    )
    return Verdict(
        requested=True,
        presented=True,
        verified=verified,
        revoked=revoked,
        reason=reason,
        openssl_code=openssl_code,
        openssl_message=openssl_message if not verified else "ok",
        depth=depth if not verified else -1,
        ca_id=ca.ca_id if ca and verified else None,
        fields=fields,
    )


def _is_revoked(policy: HostPolicy, snapshot: EdgeConfig, ca_id: str | None, leaf_der: bytes) -> bool:
    """Revocation is known for the managed CA only (BYOCA has no CRL or OCSP checking)."""
    ca = next((ca for ca in policy.cas if ca.ca_id == ca_id), None)
    return bool(ca and ca.managed and snapshot.is_revoked(ca.ca_id, _serial(leaf_der)))


def resumed(
    verdict: Verdict, policy: HostPolicy, snapshot: EdgeConfig, leaf_der: bytes,
    anchor_fingerprint: str | None,
) -> Verdict:
    """The verdict of a resumed session: the one of the handshake that verified its
    certificate (OpenSSL does not verify a resumed session again), with revocation looked up
    again in the current snapshot, since a revocation may have arrived since."""
    if not verdict.verified:
        return verdict
    # Same certificates may be uploaded by two tenants: the CA id is this hostname's own.
    ca = policy.ca_with_fingerprint(anchor_fingerprint) if anchor_fingerprint else None
    if ca is None:
        return attrs.evolve(verdict, verified=False, revoked=False, ca_id=None,
                            reason=reason_for_code(20), openssl_code=20,
                            openssl_message="unable to get local issuer certificate",
                            fields=attrs.evolve(verdict.fields, cert_verified=False,
                                                cert_revoked=False))
    revoked = _is_revoked(policy, snapshot, ca.ca_id, leaf_der)
    fields = attrs.evolve(verdict.fields, cert_revoked=revoked)
    reason = Reason.REVOKED if revoked else reason_for_code(verdict.openssl_code)
    return attrs.evolve(verdict, ca_id=ca.ca_id, revoked=revoked, reason=reason, fields=fields)
