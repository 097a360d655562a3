"""The control plane's records: frozen values that the store holds and the API shows.

Records never change; the store replaces them. `to_api()` renders the result object the
Cloudflare v4 API returns for the record, with Cloudflare's field formats.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
from collections.abc import Mapping

import attrs

from edge.pki import formats
from edge.pki.managed import ManagedCaMaterial


class Plan(str, enum.Enum):
    ENTERPRISE = "enterprise"
    BUSINESS = "business"
    PRO = "pro"
    FREE = "free"


class ManagedCaScope(str, enum.Enum):
    """Where one managed CA is shared: public sources disagree, so it is a setting."""

    ACCOUNT = "account"
    ZONE = "zone"
    SHARED = "shared"


class ClientCertificateStatus(str, enum.Enum):
    ACTIVE = "active"
    PENDING_REVOCATION = "pending_revocation"
    REVOKED = "revoked"


class Action(str, enum.Enum):
    LOG = "log"
    BLOCK = "block"
    SKIP = "skip"


@attrs.frozen
class Account:
    id: str
    name: str
    plan: Plan

    def to_api(self) -> dict:
        return {"id": self.id, "name": self.name, "type": "standard", "plan": self.plan.value}


@attrs.frozen
class Rule:
    """One custom rule; the expression stays text until the rules language parses it."""

    expression: str
    action: Action
    description: str = ""
    enabled: bool = True

    def to_api(self) -> dict:
        return {
            "expression": self.expression,
            "action": self.action.value,
            "description": self.description,
            "enabled": self.enabled,
        }


@attrs.frozen
class ForwardingOptions:
    """Per zone: which certificate headers the origin receives. Nothing by default."""

    managed_transform: bool = False  # Managed Transform "Add TLS client auth headers"
    access_headers: bool = False  # Cf-Client-Cert-Der-Base64, Cf-Client-Cert-Sha256
    rfc9440: bool = False  # Client-Cert, Client-Cert-Chain


@attrs.frozen
class ZoneSettings:
    """How a zone's edge treats requests beyond trust: forwarding, and SNI/Host strictness."""

    forwarding: ForwardingOptions = ForwardingOptions()
    strict_sni_host: bool = False  # 421 when Host names another mTLS hostname than the SNI

    def to_api(self) -> dict:
        return {**attrs.asdict(self.forwarding), "strict_sni_host": self.strict_sni_host}


@attrs.frozen
class Zone:
    """A zone and what hangs off it: associations per CA id, its ordered custom rules, settings."""

    id: str
    account_id: str
    name: str
    associations: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    rules: tuple[Rule, ...] = ()
    settings: ZoneSettings = ZoneSettings()

    def to_api(self) -> dict:
        return {"id": self.id, "name": self.name, "account": {"id": self.account_id}}


@attrs.frozen
class CaCertificate:
    """An uploaded (BYOCA) certificate or bundle in an account's store."""

    id: str
    account_id: str
    name: str
    ca: bool
    certificates: str  # normalised PEM of the bundle
    ders: tuple[bytes, ...]
    fingerprints: tuple[str, ...]  # SHA-256, lower-case hex, one per certificate
    issuer: str
    serial_number: str
    signature: str
    expires_on: dt.datetime
    uploaded_on: dt.datetime

    def to_api(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "ca": self.ca,
            "certificates": self.certificates,
            "issuer": self.issuer,
            "serial_number": self.serial_number,
            "signature": self.signature,
            "expires_on": formats.rfc3339(self.expires_on),
            "uploaded_on": formats.rfc3339(self.uploaded_on, micro=True),
            "updated_at": formats.rfc3339(self.uploaded_on, micro=True),
            "type": "custom",
        }


@attrs.frozen
class ManagedCa:
    """The Cloudflare-managed CA of one scope (an account, a zone, or everyone)."""

    id: str
    scope_key: str
    name: str
    material: ManagedCaMaterial = attrs.field(repr=False)

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.material.certificate_der).hexdigest()


@attrs.frozen
class ClientCertificate:
    """A client certificate the managed CA issued from a CSR."""

    id: str
    zone_id: str
    managed_ca_id: str
    status: ClientCertificateStatus
    certificate: str
    csr: str
    serial: int
    common_name: str
    fingerprint_sha256: str
    validity_days: int
    issued_on: dt.datetime
    expires_on: dt.datetime

    def to_api(self) -> dict:
        return {
            "id": self.id,
            "certificate": self.certificate,
            "csr": self.csr,
            "status": self.status.value,
            "serial_number": formats.serial_hex(self.serial),
            "common_name": self.common_name,
            "fingerprint_sha256": self.fingerprint_sha256,
            "validity_days": self.validity_days,
            "issued_on": formats.rfc3339(self.issued_on),
            "expires_on": formats.rfc3339(self.expires_on),
            "certificate_authority": {"id": self.managed_ca_id},
        }


@attrs.frozen
class CaAssociation:
    """One use of an uploaded CA: the answer of GET .../mtls_certificates/{id}/associations."""

    zone_id: str
    hostnames: tuple[str, ...]
    service: str = "mtls"
    status: str = "active"

    def to_api(self) -> dict:
        return {"service": self.service, "status": self.status}
