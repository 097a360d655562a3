"""Cloudflare's string formats for certificate fields.

Cloudflare's API and its `cf.tls_client_auth.*` fields render the same X.509 facts in several
dialects (RFC 2253 DNs, OpenSSL "legacy" slash DNs, decimal or upper-case hex serials, Go's names
for signature algorithms, RFC 3339 timestamps). Every place in `edge` that shows a certificate
field goes through this module so that the dialects stay consistent.
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID

# Short names as OpenSSL and Go print them; cryptography's rfc4514_string() knows most of these but
# prints emailAddress as a dotted OID, which no Cloudflare field does.
ATTRIBUTE_NAMES = {
    NameOID.COMMON_NAME: "CN",
    NameOID.COUNTRY_NAME: "C",
    NameOID.LOCALITY_NAME: "L",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.STREET_ADDRESS: "STREET",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.DOMAIN_COMPONENT: "DC",
    NameOID.USER_ID: "UID",
    NameOID.EMAIL_ADDRESS: "emailAddress",
    NameOID.SERIAL_NUMBER: "serialNumber",
}

# Go's x509.SignatureAlgorithm.String() names, which the Cloudflare API returns in `signature`.
GO_SIGNATURE_NAMES = {
    SignatureAlgorithmOID.RSA_WITH_MD5: "MD5WithRSA",
    SignatureAlgorithmOID.RSA_WITH_SHA1: "SHA1WithRSA",
    SignatureAlgorithmOID.RSA_WITH_SHA256: "SHA256WithRSA",
    SignatureAlgorithmOID.RSA_WITH_SHA384: "SHA384WithRSA",
    SignatureAlgorithmOID.RSA_WITH_SHA512: "SHA512WithRSA",
    SignatureAlgorithmOID.RSASSA_PSS: "SHA256WithRSAPSS",
    SignatureAlgorithmOID.ECDSA_WITH_SHA1: "ECDSAWithSHA1",
    SignatureAlgorithmOID.ECDSA_WITH_SHA256: "ECDSAWithSHA256",
    SignatureAlgorithmOID.ECDSA_WITH_SHA384: "ECDSAWithSHA384",
    SignatureAlgorithmOID.ECDSA_WITH_SHA512: "ECDSAWithSHA512",
    SignatureAlgorithmOID.ED25519: "PureEd25519",
}


def _attribute_name(attribute: x509.NameAttribute) -> str:
    return ATTRIBUTE_NAMES.get(attribute.oid, attribute.oid.dotted_string)


def _escape_rfc2253(value: str) -> str:
    """Escape a DN attribute value as RFC 2253 section 2.4 asks."""
    out = []
    for i, ch in enumerate(value):
        if ch in ',+"\\<>;' or (ch == "#" and i == 0) or (ch == " " and i in (0, len(value) - 1)):
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def _rdn_string(rdn: x509.RelativeDistinguishedName, escape) -> str:
    return "+".join(f"{_attribute_name(a)}={escape(str(a.value))}" for a in rdn)


def dn_rfc2253(name: x509.Name) -> str:
    """`O=Example Inc.,L=California,C=US`: the most specific RDN first, as RFC 2253 orders it."""
    return ",".join(_rdn_string(rdn, _escape_rfc2253) for rdn in reversed(name.rdns))


def dn_legacy(name: x509.Name) -> str:
    """`/C=US/O=Example Inc./CN=client`: OpenSSL's old one-line form, in certificate order."""
    return "".join("/" + _rdn_string(rdn, str) for rdn in name.rdns)


def serial_decimal(certificate: x509.Certificate) -> str:
    return str(certificate.serial_number)


def serial_hex(serial: int) -> str:
    """Upper-case hex without colons or leading zeros beyond one byte pair, as Cloudflare shows."""
    text = format(serial, "X")
    return text if len(text) % 2 == 0 else "0" + text


def signature_name(certificate: x509.Certificate) -> str:
    oid = certificate.signature_algorithm_oid
    return GO_SIGNATURE_NAMES.get(oid, oid.dotted_string)


def rfc3339(moment: dt.datetime, *, micro: bool = False) -> str:
    """`2122-10-29T16:59:47Z`, or with microseconds for `uploaded_on`."""
    moment = moment.astimezone(dt.timezone.utc)
    spec = "%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ"
    return moment.strftime(spec)


def openssl_time(moment: dt.datetime) -> str:
    """`Mar 21 13:35:00 2022 GMT` (day padded with a space), as `cert_not_before` shows it."""
    moment = moment.astimezone(dt.timezone.utc)
    return f"{moment:%b} {moment.day:2d} {moment:%H:%M:%S %Y} GMT"


def fingerprint_sha256(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex()


def fingerprint_sha1(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA1()).hex()
