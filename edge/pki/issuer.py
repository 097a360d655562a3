"""A small test PKI: CAs, intermediates and leaves with every knob a client-auth rehearsal needs.

trustme makes good certificates quickly but has no knobs for validity windows, EKUs or missing
extensions, and those are exactly what decide an mTLS verdict. So this module builds on
`cryptography` directly. Keys come from a `KeyPool` by default: RSA generation takes tens of
milliseconds, and a fleet of thousands of certificates needs only a handful of distinct keys.

Every value here is a frozen attrs class holding `cryptography` objects; PEM and DER are derived
on demand, so nothing can drift out of step with the certificate it renders.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Literal, Union

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from edge.pki import formats
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

UTC = dt.timezone.utc

KeyType = Literal["ec", "ec384", "rsa", "ed25519"]
KEY_TYPES: tuple[KeyType, ...] = ("ec", "ec384", "rsa", "ed25519")
PrivateKey = Union[ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey]
NameLike = Union[str, Mapping[str, Union[str, Sequence[str]]], x509.Name]

# A window wide enough that no rehearsal falls outside it; certificates whose window matters
# (everything a profile issues) get theirs explicitly, relative to the simulated `now`.
DEFAULT_NOT_BEFORE = dt.datetime(2000, 1, 1, tzinfo=UTC)
DEFAULT_NOT_AFTER = dt.datetime(2099, 12, 31, 23, 59, 59, tzinfo=UTC)

# Short names as OpenSSL prints them: the ones formats.py renders, read back.
NAME_OIDS: dict[str, ObjectIdentifier] = {
    name: oid for oid, name in formats.ATTRIBUTE_NAMES.items()
}

EKU_OIDS: dict[str, ObjectIdentifier] = {
    "clientAuth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "serverAuth": ExtendedKeyUsageOID.SERVER_AUTH,
    "codeSigning": ExtendedKeyUsageOID.CODE_SIGNING,
    "emailProtection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "timeStamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "OCSPSigning": ExtendedKeyUsageOID.OCSP_SIGNING,
    "any": ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
}

# OpenSSL's names for the KeyUsage bits, mapped to cryptography's keyword arguments.
KEY_USAGE_NAMES: dict[str, str] = {
    "digitalSignature": "digital_signature",
    "nonRepudiation": "content_commitment",
    "keyEncipherment": "key_encipherment",
    "dataEncipherment": "data_encipherment",
    "keyAgreement": "key_agreement",
    "keyCertSign": "key_cert_sign",
    "cRLSign": "crl_sign",
    "encipherOnly": "encipher_only",
    "decipherOnly": "decipher_only",
}

_CA_KEY_USAGE = ("keyCertSign", "cRLSign")


def _unknown(kind: str, value: object, choices: Iterable[str]) -> ValueError:
    return ValueError(f"unknown {kind} {value!r}; expected one of {', '.join(choices)}")


# --- keys -----------------------------------------------------------------------------------


def generate_key(key_type: KeyType) -> PrivateKey:
    """A fresh key; prefer `KeyPool.key`, which reuses them."""
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ec384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise _unknown("key type", key_type, KEY_TYPES)


def key_type_of(key: PrivateKey) -> KeyType:
    """The pool's name for a key, so an impostor can be made with the same kind as the original."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    if isinstance(key, rsa.RSAPrivateKey):
        return "rsa"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "ec384" if isinstance(key.curve, ec.SECP384R1) else "ec"
    raise TypeError(f"unsupported key {type(key).__name__}")


def public_key_der(key: PrivateKey) -> bytes:
    """SubjectPublicKeyInfo DER: how two keys are compared (key objects have no equality)."""
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@attrs.define(eq=False)
class KeyPool:
    """A bounded set of keys per type, made on first use and then handed out round-robin.

    Reuse is safe for a test PKI as long as two certificates whose keys must differ (a CA and its
    same-name impostor) ask with `exclude`: a shared key makes two CAs interchangeable signers.
    `key(index=i)` always returns the same key, for tests that want a fixed one.
    """

    size: int = 8
    _keys: dict[str, list[PrivateKey]] = attrs.field(factory=dict, init=False)
    _next: dict[str, int] = attrs.field(factory=dict, init=False)

    def __attrs_post_init__(self) -> None:
        if self.size < 2:
            raise ValueError("a KeyPool needs at least 2 keys per type, or `exclude` cannot work")

    def _slot(self, key_type: KeyType, index: int) -> PrivateKey:
        keys = self._keys.setdefault(key_type, [])
        while len(keys) <= index:
            keys.append(generate_key(key_type))
        return keys[index]

    def key(
        self,
        key_type: KeyType = "ec",
        *,
        index: int | None = None,
        exclude: Iterable[PrivateKey] = (),
    ) -> PrivateKey:
        """The key at `index` (mod size), or the next one round-robin that is not in `exclude`."""
        if key_type not in KEY_TYPES:
            raise _unknown("key type", key_type, KEY_TYPES)
        if index is not None:
            return self._slot(key_type, index % self.size)
        avoid = {public_key_der(k) for k in exclude}
        for _ in range(self.size):
            position = self._next.get(key_type, 0)
            self._next[key_type] = (position + 1) % self.size
            candidate = self._slot(key_type, position)
            if public_key_der(candidate) not in avoid:
                return candidate
        raise ValueError(f"every {key_type} key in the pool is excluded; use a larger pool")


_DEFAULT_POOL = KeyPool()


def default_pool() -> KeyPool:
    """The process-wide pool every builder uses unless given another."""
    return _DEFAULT_POOL


def _pick_key(
    key: PrivateKey | None, key_type: KeyType, pool: KeyPool | None, exclude: Iterable[PrivateKey]
) -> PrivateKey:
    if key is not None:
        return key
    return (pool or _DEFAULT_POOL).key(key_type, exclude=exclude)


# --- names, SANs, extensions ----------------------------------------------------------------


def make_name(subject: NameLike) -> x509.Name:
    """An x509.Name from a bare CN, a dict of short names (in certificate order), or a Name.

    A dict value may be a list to repeat an attribute (two OUs, several DCs).
    """
    if isinstance(subject, x509.Name):
        return subject
    if isinstance(subject, str):
        subject = {"CN": subject}
    attributes = []
    for short, values in subject.items():
        oid = NAME_OIDS.get(short)
        if oid is None:
            raise _unknown("DN attribute", short, NAME_OIDS)
        for value in [values] if isinstance(values, str) else values:
            attributes.append(x509.NameAttribute(oid, value))
    return x509.Name(attributes)


def general_name(value: str | x509.GeneralName) -> x509.GeneralName:
    """`a@b` is an email, `scheme://...` a URI, an IP literal an IP address, anything else DNS."""
    if isinstance(value, x509.GeneralName):
        return value
    if "://" in value:
        return x509.UniformResourceIdentifier(value)
    if "@" in value:
        return x509.RFC822Name(value)
    try:
        return x509.IPAddress(ipaddress.ip_address(value))
    except ValueError:
        return x509.DNSName(value)


def _key_usage(names: Iterable[str]) -> x509.KeyUsage:
    flags = dict.fromkeys(KEY_USAGE_NAMES.values(), False)
    for name in names:
        if name not in KEY_USAGE_NAMES:
            raise _unknown("key usage", name, KEY_USAGE_NAMES)
        flags[KEY_USAGE_NAMES[name]] = True
    return x509.KeyUsage(**flags)


def _eku(names: Iterable[str | ObjectIdentifier]) -> x509.ExtendedKeyUsage:
    oids = []
    for name in names:
        if isinstance(name, ObjectIdentifier):
            oids.append(name)
        elif name in EKU_OIDS:
            oids.append(EKU_OIDS[name])
        else:
            raise _unknown("EKU", name, [*EKU_OIDS, "an ObjectIdentifier"])
    return x509.ExtendedKeyUsage(oids)


def _signature_hash(signer: PrivateKey) -> hashes.HashAlgorithm | None:
    """Ed25519 signs without a separate hash; P-384 pairs with SHA-384 as CAs usually do."""
    if isinstance(signer, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(signer, ec.EllipticCurvePrivateKey) and isinstance(signer.curve, ec.SECP384R1):
        return hashes.SHA384()
    return hashes.SHA256()


def _or(moment: dt.datetime | None, default: dt.datetime) -> dt.datetime:
    return default if moment is None else moment


def _check_window(not_before: dt.datetime, not_after: dt.datetime) -> None:
    if not_before.tzinfo is None or not_after.tzinfo is None:
        raise ValueError("validity times must be timezone-aware datetimes")


@attrs.frozen
class _Spec:
    """Everything that goes into one certificate, so roots, sub-CAs and leaves share one builder."""

    subject: x509.Name
    key: PrivateKey
    not_before: dt.datetime
    not_after: dt.datetime
    serial: int | None = None
    ca: bool | None = False  # BasicConstraints cA; None leaves the extension out
    path_length: int | None = None
    key_usage: Sequence[str] | None = ("digitalSignature",)
    eku: Sequence[str | ObjectIdentifier] | None = None
    sans: Sequence[str | x509.GeneralName] = ()
    ski: bool = True
    aki: bool = True


def _build(spec: _Spec, issuer_name: x509.Name, signer: PrivateKey) -> x509.Certificate:
    _check_window(spec.not_before, spec.not_after)
    public = spec.key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(spec.subject)
        .issuer_name(issuer_name)
        .public_key(public)
        .serial_number(spec.serial if spec.serial is not None else x509.random_serial_number())
        .not_valid_before(spec.not_before)
        .not_valid_after(spec.not_after)
    )
    if spec.ca is not None:
        path_length = spec.path_length if spec.ca else None
        constraints = x509.BasicConstraints(ca=spec.ca, path_length=path_length)
        builder = builder.add_extension(constraints, critical=True)
    if spec.key_usage is not None:
        builder = builder.add_extension(_key_usage(spec.key_usage), critical=True)
    if spec.eku is not None:
        builder = builder.add_extension(_eku(spec.eku), critical=False)
    if spec.sans:
        names = [general_name(s) for s in spec.sans]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if spec.ski:
        ski = x509.SubjectKeyIdentifier.from_public_key(public)
        builder = builder.add_extension(ski, critical=False)
    if spec.aki:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key())
        builder = builder.add_extension(aki, critical=False)
    return builder.sign(signer, _signature_hash(signer))


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


# --- credentials ----------------------------------------------------------------------------


@attrs.frozen
class Credential:
    """What a client carries: its leaf, the intermediates it sends after it, and its key.

    `chain` is the chain to SEND, nearest issuer first, never the trust anchor; it is empty for a
    leaf straight from a root, and deliberately short in "missing intermediate" scenarios.
    """

    leaf: x509.Certificate
    key: PrivateKey = attrs.field(eq=False)
    chain: tuple[x509.Certificate, ...] = ()

    @property
    def leaf_der(self) -> bytes:
        return self.leaf.public_bytes(serialization.Encoding.DER)

    @property
    def leaf_pem(self) -> bytes:
        return _pem(self.leaf)

    def cert_chain_pem(self) -> bytes:
        """Leaf first, then the intermediates: the order `SSLContext.load_cert_chain` reads."""
        return b"".join(_pem(c) for c in (self.leaf, *self.chain))

    def key_pem(self) -> bytes:
        """PKCS#8, unencrypted: test keys only."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def write(self, directory: str | Path, stem: str = "client") -> tuple[Path, Path]:
        """Write `<stem>.crt` (chain) and `<stem>.key` into `directory`; return both paths."""
        directory = Path(directory)
        cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
        cert_path.write_bytes(self.cert_chain_pem())
        key_path.write_bytes(self.key_pem())
        key_path.chmod(0o600)
        return cert_path, key_path

    def configure(self, context: ssl.SSLContext) -> None:
        """Load this credential into a context; the stdlib only reads files, so use a temp dir."""
        with tempfile.TemporaryDirectory(prefix="edge-cred-") as directory:
            context.load_cert_chain(*self.write(directory))


# --- authorities ----------------------------------------------------------------------------


@attrs.frozen
class Authority:
    """A CA that can issue sub-CAs and leaves: a root when `parent` is None.

    Equality and hashing follow the certificate alone (it binds the key), so an Authority can key
    a cache.
    """

    certificate: x509.Certificate
    key: PrivateKey = attrs.field(eq=False, repr=False)
    parent: Authority | None = attrs.field(default=None, eq=False, repr=False)

    @classmethod
    def root(
        cls,
        subject: NameLike = "Test Root CA",
        *,
        not_before: dt.datetime = DEFAULT_NOT_BEFORE,
        not_after: dt.datetime = DEFAULT_NOT_AFTER,
        path_length: int | None = None,
        key_type: KeyType = "ec",
        key: PrivateKey | None = None,
        pool: KeyPool | None = None,
        serial: int | None = None,
        exclude_keys: Iterable[PrivateKey] = (),
    ) -> Authority:
        """A self-signed CA. `exclude_keys` keeps it from sharing a pooled key with another CA."""
        key = _pick_key(key, key_type, pool, exclude_keys)
        spec = _Spec(
            subject=make_name(subject), key=key, not_before=not_before, not_after=not_after,
            serial=serial, ca=True, path_length=path_length, key_usage=_CA_KEY_USAGE,
        )
        return cls(_build(spec, spec.subject, key), key)

    @property
    def subject(self) -> x509.Name:
        return self.certificate.subject

    @property
    def is_root(self) -> bool:
        return self.parent is None

    @property
    def certificate_pem(self) -> str:
        """The PEM to upload to the control plane as a trust anchor."""
        return _pem(self.certificate).decode("ascii")

    @property
    def certificate_der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        """What a holder of a leaf from this CA sends after it: itself and its parents, no root."""
        if self.parent is None:
            return ()
        return (self.certificate, *self.parent.chain)

    def sub_ca(
        self,
        subject: NameLike,
        *,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        path_length: int | None = None,
        key_type: KeyType = "ec",
        key: PrivateKey | None = None,
        pool: KeyPool | None = None,
        serial: int | None = None,
        aki: bool = True,
    ) -> Authority:
        """An intermediate signed by this CA; by default it lives exactly as long as its parent."""
        key = _pick_key(key, key_type, pool, [self.key])
        spec = _Spec(
            subject=make_name(subject), key=key,
            not_before=_or(not_before, self.certificate.not_valid_before_utc),
            not_after=_or(not_after, self.certificate.not_valid_after_utc),
            serial=serial, ca=True, path_length=path_length, key_usage=_CA_KEY_USAGE, aki=aki,
        )
        return Authority(_build(spec, self.subject, self.key), key, self)

    def issue(
        self,
        subject: NameLike = "client",
        *,
        sans: Sequence[str | x509.GeneralName] = (),
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        eku: Sequence[str | ObjectIdentifier] | None = ("clientAuth",),
        key_usage: Sequence[str] | None = ("digitalSignature",),
        ca: bool | None = False,
        key_type: KeyType = "ec",
        key: PrivateKey | None = None,
        pool: KeyPool | None = None,
        serial: int | None = None,
        ski: bool = True,
        aki: bool = True,
    ) -> Credential:
        """A leaf from this CA, with `chain` set to this CA's chain to send.

        `eku=None`, `key_usage=None` and `ca=None` leave the extension out entirely; empty `sans`
        means no SAN extension. The window defaults to the issuer's.
        """
        key = _pick_key(key, key_type, pool, [self.key])
        spec = _Spec(
            subject=make_name(subject), key=key,
            not_before=_or(not_before, self.certificate.not_valid_before_utc),
            not_after=_or(not_after, self.certificate.not_valid_after_utc),
            serial=serial, ca=ca, key_usage=key_usage, eku=eku, sans=sans, ski=ski, aki=aki,
        )
        return Credential(_build(spec, self.subject, self.key), key, self.chain)


def self_signed(
    subject: NameLike = "client",
    *,
    sans: Sequence[str | x509.GeneralName] = (),
    not_before: dt.datetime = DEFAULT_NOT_BEFORE,
    not_after: dt.datetime = DEFAULT_NOT_AFTER,
    eku: Sequence[str | ObjectIdentifier] | None = ("clientAuth",),
    key_usage: Sequence[str] | None = ("digitalSignature",),
    ca: bool | None = False,
    key_type: KeyType = "ec",
    key: PrivateKey | None = None,
    pool: KeyPool | None = None,
    serial: int | None = None,
    ski: bool = True,
    aki: bool = True,
) -> Credential:
    """A leaf that signs itself, as a client with a home-made certificate presents it."""
    key = _pick_key(key, key_type, pool, ())
    spec = _Spec(
        subject=make_name(subject), key=key, not_before=not_before, not_after=not_after,
        serial=serial, ca=ca, key_usage=key_usage, eku=eku, sans=sans, ski=ski, aki=aki,
    )
    return Credential(_build(spec, spec.subject, key), key)
