"""Certificates and CSRs for tests, made once per session: key generation is the slow part."""

from __future__ import annotations

import datetime as dt
import functools

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import NameOID

UTC = dt.timezone.utc


def pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


@functools.cache
def trustme_ca(index: int = 0) -> trustme.CA:
    return trustme.CA(organization_name=f"Tenant CA {index}")


def ca_pem(index: int = 0) -> str:
    return trustme_ca(index).cert_pem.bytes().decode("ascii")


def leaf_pem() -> str:
    """A client leaf (CA:FALSE) from CA 0."""
    return trustme_ca(0).issue_cert("client.example.com").cert_chain_pems[0].bytes().decode()


def _self_signed(key, sign_hash, *, cn: str, ca: bool = True, padding_=None) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime(2026, 1, 1, tzinfo=UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1234567)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if padding_ is not None:
        return builder.sign(key, sign_hash, rsa_padding=padding_)
    return builder.sign(key, sign_hash)


@functools.cache
def ed25519_ca_pem() -> str:
    return pem(_self_signed(ed25519.Ed25519PrivateKey.generate(), None, cn="Ed25519 CA"))


@functools.cache
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@functools.cache
def rsa_pss_ca_pem() -> str:
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    return pem(_self_signed(rsa_key(), hashes.SHA256(), cn="PSS CA", padding_=pss))


@functools.cache
def rsa_sha384_ca_pem() -> str:
    return pem(_self_signed(rsa_key(), hashes.SHA384(), cn="RSA CA"))


@functools.cache
def csr_pem(common_name: str = "device-1") -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode("ascii")


def private_key_pem() -> str:
    return trustme_ca(0).private_key_pem.bytes().decode("ascii")


def public_key_pem() -> str:
    key = serialization.load_pem_private_key(trustme_ca(0).private_key_pem.bytes(), None)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


@functools.cache
def same_dn_ca_pems() -> tuple[str, str]:
    """Two CA certificates with one subject DN and two different keys."""
    return tuple(
        pem(_self_signed(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256(), cn="Corp Root"))
        for _ in range(2)
    )
