"""The fields rules can read, with their types, and the value a missing field takes.

The names and types follow Cloudflare's Rules language. `ip.src` is an IP address (not a string)
so that it compares with unquoted literals and CIDR ranges, as in wirefilter.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType


class FieldType(str, enum.Enum):
    BOOL = "boolean"
    STRING = "string"
    INT = "integer"
    IP = "IP address"

    @property
    def article(self) -> str:
        """`a string`, `an integer`: how error messages name a value of this type."""
        return ("an " if self.value[0] in "aeiouI" else "a ") + self.value


# The 21 `cf.tls_client_auth.*` fields, as `edge.node.verdict.ClientAuthFields` produces them
# (a test keeps the two in step; importing the node from here would make a cycle once snapshots
# compile their rules).
_CLIENT_AUTH_BOOLS = (
    "cert_presented",
    "cert_verified",
    "cert_revoked",
    "cert_rfc9440_too_large",
    "cert_chain_rfc9440_too_large",
)
_CLIENT_AUTH_STRINGS = (
    "cert_issuer_dn",
    "cert_subject_dn",
    "cert_issuer_dn_rfc2253",
    "cert_subject_dn_rfc2253",
    "cert_issuer_dn_legacy",
    "cert_subject_dn_legacy",
    "cert_serial",
    "cert_issuer_serial",
    "cert_fingerprint_sha256",
    "cert_fingerprint_sha1",
    "cert_not_before",
    "cert_not_after",
    "cert_ski",
    "cert_issuer_ski",
    "cert_rfc9440",
    "cert_chain_rfc9440",
)


def _client_auth_types() -> dict[str, FieldType]:
    types = {name: FieldType.BOOL for name in _CLIENT_AUTH_BOOLS}
    types.update((name, FieldType.STRING) for name in _CLIENT_AUTH_STRINGS)
    return {"cf.tls_client_auth." + name: kind for name, kind in types.items()}


FIELD_TYPES: Mapping[str, FieldType] = MappingProxyType(
    {
        **_client_auth_types(),
        "http.host": FieldType.STRING,
        "http.request.uri.path": FieldType.STRING,
        "http.request.method": FieldType.STRING,
        "http.request.full_uri": FieldType.STRING,
        "ip.src": FieldType.IP,
        "ssl": FieldType.BOOL,
        "cf.tls_version": FieldType.STRING,
    }
)

# What a field absent from the evaluated mapping reads as: Cloudflare's values for a request that
# has nothing to say (a non-mTLS hostname shows false and ""). A missing `ip.src` equals nothing.
DEFAULTS: Mapping[FieldType, object] = MappingProxyType(
    {FieldType.BOOL: False, FieldType.STRING: "", FieldType.INT: 0, FieldType.IP: None}
)
