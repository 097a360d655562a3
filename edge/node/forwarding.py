"""The certificate headers the origin sees: what the edge adds, and what it never lets through.

Pure: a verdict, the zone's `ForwardingOptions` and the client's request headers in; the header
list for the origin out. Three independent ways of forwarding the client certificate, as Cloudflare
offers them:

- Managed Transform "Add TLS client auth headers" (`managed_transform`): 17 `cf-cert-*` headers,
  one per `cf.tls_client_auth.*` field, sent for every request of the zone whatever the verdict
  (an origin must read `cf-cert-verified` / `cf-cert-revoked` before trusting the rest).
  Names from developers.cloudflare.com/rules/transform/managed-transforms/reference/ as last
  updated 2026-09-24: the fingerprints are `cf-cert-sha256` and `cf-cert-sha1`. Older revisions of
  that page (cloudflare/cloudflare-docs `reference.mdx`, e.g. commit 5d2cc64b) called them
  `cf-cert-fingerprint-sha256` / `cf-cert-fingerprint-sha1`; the current names win, and both old
  names are stripped from clients anyway (every `cf-cert-*` name is).
  A managed transform is built from Transform Rules, and a rule whose value evaluates to ""
  removes the header instead of sending it empty; so booleans (`true`/`false`) are always sent
  and string fields only when not empty.
- Access-style forwarding (`access_headers`): `Cf-Client-Cert-Der-Base64` (standard base64 of the
  leaf DER, no colons) and `Cf-Client-Cert-Sha256` (lower-case hex SHA-256 of the same DER).
  Access forwards only for authenticated requests, so here: only when a certificate was presented
  AND verified AND not revoked (a revoked certificate authenticates nobody). The two go together
  or not at all, and the DER header is never empty: it comes from `leaf_der` when the caller has
  it, else from the verdict's `cert_rfc9440`; above RFC 9440's 10 KiB that field is empty, so a
  large leaf needs `leaf_der`, and without it neither Access header is sent.
  (Cloudflare's page says both "only on the first request of an mTLS connection" and "every
  request"; this module decides per request, and the caller may choose which requests to ask.)
- RFC 9440 (`rfc9440`): `Client-Cert: :<b64 DER>:` and `Client-Cert-Chain: :<b64>:, ...` (the
  intermediates as the client sent them) only when verified and not revoked, and only within the
  10 KiB / 16 KiB limits (the verdict's fields are already empty above them). `Client-Cert-Chain`
  is never sent without `Client-Cert`, and not when the client sent no intermediates.

Spoofing: before adding anything, every client-sent header this module could set is removed,
whatever the options (a zone that forwards nothing must still not pass a forged `Client-Cert`).
Names compare case-insensitively, ignoring surrounding whitespace, and with `_` equal to `-`
(CGI/WSGI origins and nginx's `underscores_in_headers` turn `Client_Cert` into `CLIENT_CERT`
too). Any `cf-cert-*` name is removed, not just the 17 known ones.

Values the edge adds are made safe field values: a character that is not printable ASCII (a DN
may carry CR, LF or non-ASCII text from a client's certificate) becomes `\\u00XX` per UTF-8 byte,
the encoding Cloudflare documents for non-ASCII header values.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence


from edge.control.records import ForwardingOptions
from edge.node.verdict import ClientAuthFields, Verdict

Header = tuple[str, str]

# (header name, ClientAuthFields attribute), in the order Cloudflare's page lists them.
MANAGED_TRANSFORM_HEADERS: tuple[tuple[str, str], ...] = (
    ("cf-cert-revoked", "cert_revoked"),
    ("cf-cert-verified", "cert_verified"),
    ("cf-cert-presented", "cert_presented"),
    ("cf-cert-issuer-dn", "cert_issuer_dn"),
    ("cf-cert-subject-dn", "cert_subject_dn"),
    ("cf-cert-issuer-dn-rfc2253", "cert_issuer_dn_rfc2253"),
    ("cf-cert-subject-dn-rfc2253", "cert_subject_dn_rfc2253"),
    ("cf-cert-issuer-dn-legacy", "cert_issuer_dn_legacy"),
    ("cf-cert-subject-dn-legacy", "cert_subject_dn_legacy"),
    ("cf-cert-serial", "cert_serial"),
    ("cf-cert-issuer-serial", "cert_issuer_serial"),
    ("cf-cert-sha256", "cert_fingerprint_sha256"),
    ("cf-cert-sha1", "cert_fingerprint_sha1"),
    ("cf-cert-not-before", "cert_not_before"),
    ("cf-cert-not-after", "cert_not_after"),
    ("cf-cert-ski", "cert_ski"),
    ("cf-cert-issuer-ski", "cert_issuer_ski"),
)

ACCESS_DER_HEADER = "Cf-Client-Cert-Der-Base64"
ACCESS_SHA256_HEADER = "Cf-Client-Cert-Sha256"
RFC9440_CERT_HEADER = "Client-Cert"
RFC9440_CHAIN_HEADER = "Client-Cert-Chain"

PROTECTED_PREFIX = "cf-cert-"
PROTECTED_NAMES: frozenset[str] = frozenset(
    {name for name, _ in MANAGED_TRANSFORM_HEADERS}
    | {
        ACCESS_DER_HEADER.lower(),
        ACCESS_SHA256_HEADER.lower(),
        RFC9440_CERT_HEADER.lower(),
        RFC9440_CHAIN_HEADER.lower(),
    }
)


NO_FORWARDING = ForwardingOptions()


def _normalise(name: str) -> str:
    return name.strip(" \t").lower().replace("_", "-")


def is_protected(name: str) -> bool:
    """Whether a header with this name may only ever come from the edge."""
    key = _normalise(name)
    return key.startswith(PROTECTED_PREFIX) or key in PROTECTED_NAMES


def safe_value(text: str) -> str:
    """`text` with everything but printable ASCII and HTAB as `\\u00XX` per UTF-8 byte."""
    if all(" " <= ch <= "~" or ch == "\t" for ch in text):
        return text
    out = []
    for ch in text:
        if " " <= ch <= "~" or ch == "\t":
            out.append(ch)
        else:
            out.extend(f"\\u00{byte:02x}" for byte in ch.encode("utf-8", "surrogatepass"))
    return "".join(out)


def _render(value: bool | str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return safe_value(value)


def managed_transform_headers(fields: ClientAuthFields) -> tuple[Header, ...]:
    """The `cf-cert-*` headers: booleans always, strings only when not empty."""
    out = []
    for name, attribute in MANAGED_TRANSFORM_HEADERS:
        value = getattr(fields, attribute)
        if isinstance(value, bool) or value:
            out.append((name, _render(value)))
    return tuple(out)


def _trusted(verdict: Verdict) -> bool:
    return (
        verdict.presented
        and verdict.verified
        and not verdict.revoked
        and verdict.fields.cert_verified
        and not verdict.fields.cert_revoked
    )


def _leaf_b64(fields: ClientAuthFields, leaf_der: bytes | None) -> str:
    """Base64 of the leaf DER: from `leaf_der` (checked against the fingerprint) or the field."""
    if leaf_der is not None:
        if hashlib.sha256(leaf_der).hexdigest() != fields.cert_fingerprint_sha256:
            raise ValueError("leaf_der is not the certificate this verdict describes")
        return base64.b64encode(leaf_der).decode("ascii")
    wrapped = fields.cert_rfc9440
    if len(wrapped) > 2 and wrapped[0] == ":" and wrapped[-1] == ":" and "," not in wrapped:
        inner = wrapped[1:-1]
        try:
            base64.b64decode(inner, validate=True)
        except binascii.Error:
            return ""
        return inner
    return ""


def access_headers(verdict: Verdict, leaf_der: bytes | None = None) -> tuple[Header, ...]:
    """`Cf-Client-Cert-Der-Base64` and `Cf-Client-Cert-Sha256`, both or neither."""
    if not _trusted(verdict):
        return ()
    fields = verdict.fields
    der_b64 = _leaf_b64(fields, leaf_der)
    if not der_b64 or not fields.cert_fingerprint_sha256:
        return ()
    return (
        (ACCESS_DER_HEADER, der_b64),
        (ACCESS_SHA256_HEADER, fields.cert_fingerprint_sha256),
    )


def rfc9440_headers(verdict: Verdict) -> tuple[Header, ...]:
    """`Client-Cert` (and `Client-Cert-Chain` when the client sent intermediates), if trusted."""
    fields = verdict.fields
    if not _trusted(verdict) or not fields.cert_rfc9440:
        return ()
    out: list[Header] = [(RFC9440_CERT_HEADER, fields.cert_rfc9440)]
    if fields.cert_chain_rfc9440:
        out.append((RFC9440_CHAIN_HEADER, fields.cert_chain_rfc9440))
    return tuple(out)


def edge_headers(
    verdict: Verdict, options: ForwardingOptions, leaf_der: bytes | None = None
) -> tuple[Header, ...]:
    """Only the headers the edge adds, in a fixed order: managed transform, Access, RFC 9440."""
    out: list[Header] = []
    if options.managed_transform:
        out.extend(managed_transform_headers(verdict.fields))
    if options.access_headers:
        out.extend(access_headers(verdict, leaf_der))
    if options.rfc9440:
        out.extend(rfc9440_headers(verdict))
    return tuple(out)


def strip_protected(client_headers: Sequence[Header]) -> tuple[Header, ...]:
    """The client's headers without any the edge alone may set, the rest in order."""
    return tuple((name, value) for name, value in client_headers if not is_protected(name))


def origin_headers(
    client_headers: Sequence[Header],
    verdict: Verdict,
    options: ForwardingOptions,
    leaf_der: bytes | None = None,
) -> tuple[Header, ...]:
    """The headers the origin receives: the client's, minus protected ones, plus the edge's.

    `leaf_der` is optional: the verdict's fields carry the leaf up to 10 KiB; pass it so that the
    Access DER header is also sent for a larger leaf. It must be the verdict's certificate.
    """
    return strip_protected(client_headers) + edge_headers(verdict, options, leaf_der)
