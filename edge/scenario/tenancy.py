"""A scenario's tenants and control-plane actions, applied to a control plane.

Keeps the names a scenario uses (tenant, zone, upload, fleet) and the ids the plane gave them.
The runner plays the actions on the timeline; `edge serve` applies them all at start-up.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge.control import commands as c
from edge.control import errors
from edge.control.errors import ApiError
from edge.control.plane import ControlPlane
from edge.control.records import Rule
from edge.pki.issuer import Credential
from edge.scenario import model as m
from edge.scenario.pki import Ca

# The actions that are control-plane commands (the others act on the topology or on phases).
CONTROL_ACTIONS = frozenset({
    m.ActionKind.UPLOAD_CA, m.ActionKind.ASSOCIATE, m.ActionKind.DEPLOY_RULES,
    m.ActionKind.DELETE_CA, m.ActionKind.REVOKE, m.ActionKind.REACTIVATE,
})


class Tenancy:
    def __init__(self, plane: ControlPlane, cas: dict[str, Ca]) -> None:
        self.plane = plane
        self.cas = cas
        self.accounts: dict[str, str] = {}  # tenant name -> account id
        self.zones: dict[str, str] = {}  # zone name -> zone id
        self.uploads: dict[str, str] = {}  # upload name -> certificate id
        self.managed: dict[str, tuple[str, str]] = {}  # fleet -> (zone id, certificate id)

    async def set_up(self, tenants) -> None:
        """Accounts and zones, before anything else happens."""
        for tenant in tenants:
            account = await self.plane.submit(c.CreateAccount(tenant.name, tenant.plan))
            self.accounts[tenant.name] = account.id
            for zone_name in tenant.zones:
                zone = await self.plane.submit(c.CreateZone(account.id, zone_name))
                self.zones[zone_name] = zone.id

    async def managed_credential(self, fleet: m.FleetSpec) -> Credential:
        """A client certificate from the managed CA of the fleet's zone, issued from a CSR."""
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, fleet.name)]))
            .sign(key, hashes.SHA256())
            .public_bytes(serialization.Encoding.PEM)
            .decode("ascii")
        )
        zone_id = self.zones[fleet.cert.zone]
        issued = await self.plane.submit(
            c.CreateClientCertificate(zone_id, csr, fleet.cert.validity_days)
        )
        self.managed[fleet.name] = (zone_id, issued.id)
        return Credential(x509.load_pem_x509_certificate(issued.certificate.encode()), key)

    async def act(self, entry: m.TimelineEntry) -> None:
        """One control-plane action; raises the plane's ApiError when it is refused."""
        kind, submit = entry.action, self.plane.submit
        if kind is m.ActionKind.UPLOAD_CA:
            record = await submit(
                c.UploadCaCertificate(
                    self.accounts[entry.tenant], self.cas[entry.ca].bundle_pem,
                    name=entry.name or entry.ca,
                )
            )
            self.uploads[entry.name or entry.ca] = record.id
        elif kind is m.ActionKind.ASSOCIATE:
            ca_id = None if entry.ca in (None, "managed") else self.uploads[entry.ca]
            await submit(c.PutHostnameAssociations(self.zones[entry.zone], entry.hostnames, ca_id))
        elif kind is m.ActionKind.DEPLOY_RULES:
            rules = [Rule(r.expression, r.action, r.description, r.enabled) for r in entry.rules]
            await submit(c.PutCustomRules(self.zones[entry.zone], rules))
        elif kind is m.ActionKind.DELETE_CA:
            await submit(c.DeleteCaCertificate(self.accounts[entry.tenant], self.uploads[entry.ca]))
        elif kind in (m.ActionKind.REVOKE, m.ActionKind.REACTIVATE):
            zone_id, cert_id = self._managed_certificate(entry.fleet)
            command = c.RevokeClientCertificate if kind is m.ActionKind.REVOKE else (
                c.ReactivateClientCertificate
            )
            await submit(command(zone_id, cert_id))

    def _managed_certificate(self, fleet: str) -> tuple[str, str]:
        try:
            return self.managed[fleet]
        except KeyError:
            raise ApiError(
                errors.CLIENT_CERTIFICATE_NOT_FOUND,
                f"fleet {fleet!r} carries no managed-CA certificate",
            ) from None
