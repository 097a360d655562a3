"""The Cloudflare-managed CA: a CA per scope that signs client certificates from CSRs.

Key generation and signing are CPU work but no I/O, so the pure control-plane store calls these
directly. Serial numbers and times come from the caller, which keeps the store deterministic.
"""

from __future__ import annotations

import datetime as dt

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Long enough that no rehearsal outlives it, short enough to stay inside UTCTime/GeneralizedTime.
_CA_LIFETIME = dt.timedelta(days=365 * 20)


class CsrRejected(ValueError):
    """The CSR cannot be used; `str(err)` is the API's message."""


@attrs.frozen
class ManagedCaMaterial:
    certificate_pem: str
    certificate_der: bytes
    key_pem: bytes  # PKCS#8, unencrypted: the simulator's own CA, never a customer's key


def new_managed_ca(common_name: str, serial: int, now: dt.datetime) -> ManagedCaMaterial:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "edge simulator"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + _CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return ManagedCaMaterial(
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        certificate_der=certificate.public_bytes(serialization.Encoding.DER),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def parse_csr(text: str | bytes) -> x509.CertificateSigningRequest:
    if not isinstance(text, (str, bytes)):
        raise CsrRejected("expected a PEM CERTIFICATE REQUEST string")
    try:
        csr = x509.load_pem_x509_csr(text.encode("ascii") if isinstance(text, str) else text)
    except (ValueError, UnicodeEncodeError):
        raise CsrRejected("Unable to parse CSR: expected a PEM CERTIFICATE REQUEST") from None
    if not csr.is_signature_valid:
        raise CsrRejected("CSR signature is not valid")
    return csr


def sign_client_certificate(
    ca: ManagedCaMaterial,
    csr: x509.CertificateSigningRequest,
    *,
    serial: int,
    now: dt.datetime,
    validity_days: int,
) -> x509.Certificate:
    """Issue a clientAuth leaf for the CSR's subject and key, valid from `now`."""
    ca_certificate = x509.load_der_x509_certificate(ca.certificate_der)
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    return (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(ca_certificate.subject)
        .public_key(csr.public_key())
        .serial_number(serial)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=validity_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_certificate.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
