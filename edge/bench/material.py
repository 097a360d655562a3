"""The certificates every row of a bench uses, written once to a folder other processes read.

One edge server certificate (from the edge's server CA), one tenant CA and one client
certificate from it, of the chosen key type: so the rows differ only in the code that does the
handshake, never in the cryptography.
"""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Sequence
from pathlib import Path

import attrs
import trustme
from cryptography.hazmat.primitives import serialization

from edge.control import commands as c
from edge.control.records import Action, Plan, Rule
from edge.control.store import Settings
from edge.deployment import Deployment
from edge.node.identity import EdgeIdentity
from edge.node.node import NodeSettings
from edge.pki.issuer import Authority

HOST = "api.example.com"
ZONE = "example.com"


@attrs.frozen
class Material:
    folder: Path
    key_type: str
    tls: str  # "1.2" or "1.3"

    @property
    def server_ca(self) -> Path:
        return self.folder / "server-ca.pem"

    @property
    def server_cert(self) -> Path:
        return self.folder / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.folder / "server.key"

    @property
    def tenant_ca(self) -> Path:
        return self.folder / "tenant-ca.pem"

    @property
    def client_cert(self) -> Path:
        return self.folder / "client.pem"

    @property
    def client_key(self) -> Path:
        return self.folder / "client.key"

    def tls_version(self) -> ssl.TLSVersion:
        return ssl.TLSVersion.TLSv1_3 if self.tls == "1.3" else ssl.TLSVersion.TLSv1_2

    def server_context(self, *, tickets: int = 0, client_auth: bool = True) -> ssl.SSLContext:
        """A plain stdlib server context: the certificate, the tenant CA, client auth required
        (without `client_auth`, no client certificate asked for: server authentication only)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.server_cert, self.server_key)
        if client_auth:
            context.load_verify_locations(self.tenant_ca)
            context.verify_mode = ssl.CERT_REQUIRED
        context.num_tickets = tickets
        context.maximum_version = context.minimum_version = self.tls_version()
        return context

    def client_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(self.server_ca)
        context.load_cert_chain(self.client_cert, self.client_key)
        context.maximum_version = context.minimum_version = self.tls_version()
        return context

    def configure_server_cert(self, context: ssl.SSLContext) -> None:
        context.load_cert_chain(self.server_cert, self.server_key)

    def identity(self) -> EdgeIdentity:
        """An edge identity that presents the bench's server certificate whatever the zones."""
        return _FixedIdentity(self.configure_server_cert)


async def edge_deployment(material: Material, nursery, node: str, *, tickets: int = 0,
                          extra_cas: Sequence[str] = (), client_auth: bool = True) -> Deployment:
    """A running deployment whose node `node` enforces the bench's tenant CA on HOST (a block
    rule for unverified requests, so every row's request goes through the rules); `extra_cas`
    (PEM) are associated with HOST as well. Without `client_auth`, HOST has no CA, association
    or rule: the same edge serving it with server authentication only."""
    settings = Settings(ca_quota={Plan.ENTERPRISE: 1 + len(extra_cas)})  # 5 is the default
    deployment = Deployment(start=dt.datetime.now(dt.timezone.utc), identity=material.identity(),
                            settings=settings)
    await deployment.start_in(nursery)
    plane = deployment.plane
    account = await plane.submit(c.CreateAccount("bench"))
    zone = await plane.submit(c.CreateZone(account.id, ZONE))
    if client_auth:
        for pem in (material.tenant_ca.read_text(), *extra_cas):
            ca = await plane.submit(c.UploadCaCertificate(account.id, pem))
            await plane.submit(c.PutHostnameAssociations(zone.id, [HOST], ca.id))
        rule = Rule("not cf.tls_client_auth.cert_verified", Action.BLOCK)
        await plane.submit(c.PutCustomRules(zone.id, [rule]))
    await deployment.add_node(node, settings=NodeSettings(num_tickets=tickets))
    await deployment.settle()
    return deployment


class _FixedIdentity(EdgeIdentity):
    def __init__(self, configure) -> None:
        super().__init__(trustme.CA())
        self._configure = configure

    def configurer(self, names):
        return self._configure


def _pem_key(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make(folder: Path, *, key_type: str = "ec", tls: str = "1.3") -> Material:
    """Generate and write the bench's certificates into `folder`."""
    now = dt.datetime.now(dt.timezone.utc)
    window = dict(not_before=now - dt.timedelta(days=1), not_after=now + dt.timedelta(days=30))
    server_ca = Authority.root({"CN": "edge bench server CA"}, key_type=key_type, **window)
    tenant = Authority.root({"CN": "edge bench tenant CA"}, key_type=key_type, **window)
    server = server_ca.issue(HOST, sans=[HOST, ZONE, "*." + ZONE], eku=["serverAuth"],
                             key_type=key_type, **window)
    client = tenant.issue("bench client", key_type=key_type, **window)
    material = Material(folder, key_type, tls)
    material.server_ca.write_text(server_ca.certificate_pem)
    material.server_cert.write_bytes(server.cert_chain_pem())
    material.server_key.write_bytes(_pem_key(server.key))
    material.tenant_ca.write_text(tenant.certificate_pem)
    material.client_cert.write_bytes(client.cert_chain_pem())
    material.client_key.write_bytes(_pem_key(client.key))
    return material
