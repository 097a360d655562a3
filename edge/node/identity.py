"""The edge's own server identity: a local server CA and the certificates edge nodes present.

Clients trust the server CA (`configure_trust`); a node presents one certificate covering the
identity's own names and every zone of its snapshot (the zone name and its wildcard), re-issued
only when that set of names changes.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Callable

import trustme
from cryptography.hazmat.primitives import serialization

from edge.control.snapshot import EdgeConfig
from edge.pki import openssl

NO_ZONES = ("edge.invalid",)


class EdgeIdentity:
    """`names` are always covered, even before a node has a snapshot (a real edge's certificates
    do not wait for the mTLS configuration); a snapshot's zones are added to them."""

    def __init__(self, ca: trustme.CA | None = None, *, names: tuple[str, ...] = ()) -> None:
        self.ca = ca or trustme.CA(organization_name="edge simulator server CA")
        self.names = tuple(names)

    def names_for(self, snapshot: EdgeConfig | None) -> tuple[str, ...]:
        zones = () if snapshot is None else tuple(snapshot.zones)
        names = {*self.names, *(n for zone in zones for n in (zone, "*." + zone))}
        return tuple(sorted(names)) or NO_ZONES

    @functools.lru_cache(maxsize=8)
    def configurer(self, names: tuple[str, ...]) -> Callable[[ssl.SSLContext], None]:
        """What makes a server context present a certificate for these names. Decoded once:
        a node builds a context per trust set, and all of them present this certificate."""
        return credential(self.ca.issue_cert(*names)).configure

    def configure_trust(self, context: ssl.SSLContext) -> None:
        """Make a client context trust the edge's server certificates."""
        self.ca.configure_trust(context)


def credential(leaf: trustme.LeafCert) -> openssl.ServerCredential:
    """A trustme certificate (with its chain and key) as OpenSSL objects decoded once."""
    chain = [ssl.PEM_cert_to_DER_cert(pem.bytes().decode("ascii")) for pem in leaf.cert_chain_pems]
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), None)
    key_der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return openssl.ServerCredential(chain, key_der)
