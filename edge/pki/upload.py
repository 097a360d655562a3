"""What the account CA store accepts: PEM bundles of CA certificates, checked as Cloudflare does.

Pure functions over bytes and text. A rejection is an `UploadRejected` with the message the API
answers; the control plane turns it into an API error without changing any state.
"""

from __future__ import annotations

import re
import warnings

import attrs
from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import SignatureAlgorithmOID

from edge.pki import formats

UNPARSEABLE = "Unable to parse certificate"

_PEM_BLOCK = re.compile(
    r"-----BEGIN (?P<label>[A-Z0-9 ]+)-----(?P<body>.*?)-----END (?P=label)-----", re.DOTALL
)

# RSA PKCS#1 v1.5 or ECDSA, with SHA-1 or SHA-2: no Ed25519, no RSA-PSS, no MD5.
ALLOWED_SIGNATURES = frozenset(
    {
        SignatureAlgorithmOID.RSA_WITH_SHA1,
        SignatureAlgorithmOID.RSA_WITH_SHA256,
        SignatureAlgorithmOID.RSA_WITH_SHA384,
        SignatureAlgorithmOID.RSA_WITH_SHA512,
        SignatureAlgorithmOID.ECDSA_WITH_SHA1,
        SignatureAlgorithmOID.ECDSA_WITH_SHA256,
        SignatureAlgorithmOID.ECDSA_WITH_SHA384,
        SignatureAlgorithmOID.ECDSA_WITH_SHA512,
    }
)


class UploadRejected(ValueError):
    """The upload is not acceptable; `str(err)` is the API's message."""


@attrs.frozen
class ParsedBundle:
    """The certificates of one upload, in the order they were given."""

    certificates: tuple[x509.Certificate, ...]

    @property
    def first(self) -> x509.Certificate:
        return self.certificates[0]

    @property
    def pem(self) -> str:
        """The bundle re-serialised: the API normalises whitespace and trailing newlines."""
        return "".join(c.public_bytes(Encoding.PEM).decode("ascii") for c in self.certificates)

    @property
    def ders(self) -> tuple[bytes, ...]:
        return tuple(c.public_bytes(Encoding.DER) for c in self.certificates)


def parse_bundle(text: str | bytes) -> ParsedBundle:
    """Parse PEM text holding one or more CERTIFICATE blocks and nothing else of PEM.

    Keys, CSRs, public keys, other PEM labels and text without a PEM block are refused with the
    API's one message. Text between blocks (as `openssl x509 -text` leaves) is tolerated.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            raise UploadRejected(UNPARSEABLE) from None
    blocks = list(_PEM_BLOCK.finditer(text))
    if not blocks or any(b["label"] != "CERTIFICATE" for b in blocks):
        raise UploadRejected(UNPARSEABLE)
    certificates = []
    for block in blocks:
        try:
            with warnings.catch_warnings():  # e.g. a negative serial: parsed, and shown as is
                warnings.simplefilter("ignore", CryptographyDeprecationWarning)
                certificate = x509.load_pem_x509_certificate(block[0].encode("ascii"))
                _read_every_field(certificate)
        except (ValueError, x509.InvalidVersion):
            raise UploadRejected(UNPARSEABLE) from None
        certificates.append(certificate)
    return ParsedBundle(tuple(certificates))


def _read_every_field(certificate: x509.Certificate) -> None:
    """cryptography decodes names and extensions lazily: read now everything the store and its
    result object render, so an undecodable one is refused here, not met later as a crash."""
    formats.dn_rfc2253(certificate.issuer)
    formats.dn_rfc2253(certificate.subject)
    formats.serial_decimal(certificate)
    formats.signature_name(certificate)
    formats.fingerprint_sha256(certificate)
    certificate.not_valid_after_utc
    certificate.extensions


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False
    except ValueError:  # a malformed extension: not a usable CA
        return False


def check_bundle(bundle: ParsedBundle, *, ca: bool) -> None:
    """Refuse what the store would: disallowed signatures, and non-CA certificates for `ca: true`."""
    for index, certificate in enumerate(bundle.certificates):
        if certificate.signature_algorithm_oid not in ALLOWED_SIGNATURES:
            name = formats.signature_name(certificate)
            raise UploadRejected(
                f"Certificate {index + 1} uses signature algorithm {name}; "
                "only RSA or ECDSA with SHA-1, SHA-256, SHA-384 or SHA-512 is allowed"
            )
        if ca and not _is_ca(certificate):
            raise UploadRejected(
                f"Certificate {index + 1} ({formats.dn_rfc2253(certificate.subject)}) "
                "is not a CA: ca is true but BasicConstraints CA:TRUE is missing"
            )

