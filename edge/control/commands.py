"""The commands the control-plane store understands: one frozen class per API operation.

Reads are commands too (they leave the store as it is), so that one channel, one task and one
ordering serve every client of the control plane.
"""

from __future__ import annotations

import attrs

from edge.control.records import ClientCertificateStatus, Plan, Rule, ZoneSettings


def _tuple(value) -> tuple:
    return tuple(value)


# Accounts and zones
@attrs.frozen
class CreateAccount:
    name: str
    plan: Plan = Plan.ENTERPRISE


@attrs.frozen
class CreateZone:
    account_id: str
    name: str


@attrs.frozen
class ListAccounts:
    pass


@attrs.frozen
class ListZones:
    name: str | None = None


# Account CA store: /accounts/{account_id}/mtls_certificates
@attrs.frozen
class UploadCaCertificate:
    account_id: str
    certificates: str | bytes
    ca: bool = True
    name: str = ""
    private_key: str | None = attrs.field(default=None, repr=False)  # write-only, discarded


@attrs.frozen
class ListCaCertificates:
    account_id: str


@attrs.frozen
class GetCaCertificate:
    account_id: str
    certificate_id: str


@attrs.frozen
class DeleteCaCertificate:
    account_id: str
    certificate_id: str


@attrs.frozen
class ListCaAssociations:
    account_id: str
    certificate_id: str


# Hostname associations: /zones/{zone_id}/certificate_authorities/hostname_associations
@attrs.frozen
class PutHostnameAssociations:
    """Replace the hostnames of (zone, CA); no `mtls_certificate_id` means the managed CA."""

    zone_id: str
    hostnames: tuple[str, ...] = attrs.field(converter=_tuple)
    mtls_certificate_id: str | None = None


@attrs.frozen
class GetHostnameAssociations:
    zone_id: str
    mtls_certificate_id: str | None = None


# Managed CA client certificates: /zones/{zone_id}/client_certificates
@attrs.frozen
class CreateClientCertificate:
    zone_id: str
    csr: str
    validity_days: int = 3650


@attrs.frozen
class ListClientCertificates:
    zone_id: str
    status: ClientCertificateStatus | None = None


@attrs.frozen
class GetClientCertificate:
    zone_id: str
    client_certificate_id: str


@attrs.frozen
class RevokeClientCertificate:
    """DELETE: active -> pending_revocation."""

    zone_id: str
    client_certificate_id: str


@attrs.frozen
class ReactivateClientCertificate:
    """PATCH {"reactivate": true}: pending_revocation -> active."""

    zone_id: str
    client_certificate_id: str


@attrs.frozen
class FinalizeRevocations:
    """The back end completing revocations: every pending_revocation becomes revoked."""

    zone_id: str | None = None


# Custom rules: /zones/{zone_id}/rulesets/phases/http_request_firewall_custom/entrypoint
@attrs.frozen
class PutCustomRules:
    zone_id: str
    rules: tuple[Rule, ...] = attrs.field(converter=_tuple)


@attrs.frozen
class GetCustomRules:
    zone_id: str


# Zone settings: certificate forwarding (Managed Transforms, Access, RFC 9440), SNI/Host strictness
@attrs.frozen
class PutZoneSettings:
    zone_id: str
    settings: ZoneSettings


@attrs.frozen
class GetZoneSettings:
    zone_id: str


@attrs.frozen
class SetForwarding:
    """Turn the given forwarding options on or off and keep the others (None): one command,
    so a change made meanwhile to another option is never overwritten."""

    zone_id: str
    managed_transform: bool | None = None
    access_headers: bool | None = None
    rfc9440: bool | None = None
