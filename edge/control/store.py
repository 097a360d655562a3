"""The control plane as pure state: `apply(store, command, now)` gives a new store and a result.

No I/O, no Trio, no clock of its own: time comes in with each command and ids come from a seeded
counter, so the same commands give the same store. A refused command raises `ApiError` before
anything is replaced, and since a `Store` is immutable the caller's store is then exactly as it
was. Every accepted change bumps `version`; reads return the very same store object.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import attrs
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from edge.control import commands as c
from edge.control import errors as e
from edge.control.errors import ApiError
from edge.control.hostnames import most_specific
from edge.control.records import (
    Account,
    Action,
    CaAssociation,
    CaCertificate,
    ClientCertificate,
    ClientCertificateStatus,
    ManagedCa,
    ManagedCaScope,
    Plan,
    Rule,
    Zone,
    ZoneSettings,
)
from edge.pki import formats, managed, upload
from edge.rules import RuleSyntaxError, compile_rules

Status = ClientCertificateStatus

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
MAX_VALIDITY_DAYS = 36500


def _default_ca_quota() -> Mapping[Plan, int]:
    # BYOCA is an Enterprise feature; other plans have no uploads at all.
    return {Plan.ENTERPRISE: 5, Plan.BUSINESS: 0, Plan.PRO: 0, Plan.FREE: 0}


@attrs.frozen
class Settings:
    managed_ca_scope: ManagedCaScope = ManagedCaScope.ACCOUNT
    ca_quota: Mapping[Plan, int] = attrs.field(factory=_default_ca_quota)
    client_certificate_quota: int = 100
    seed: int = 0


@attrs.frozen
class Store:
    settings: Settings = Settings()
    version: int = 0
    draws: int = 0  # ids and serials drawn so far, for deterministic ids
    accounts: Mapping[str, Account] = attrs.field(factory=dict)
    zones: Mapping[str, Zone] = attrs.field(factory=dict)
    cas: Mapping[str, CaCertificate] = attrs.field(factory=dict)
    managed_cas: Mapping[str, ManagedCa] = attrs.field(factory=dict)
    managed_by_scope: Mapping[str, str] = attrs.field(factory=dict)
    zone_names: Mapping[str, str] = attrs.field(factory=dict)  # zone name -> zone id
    client_certificates: Mapping[str, ClientCertificate] = attrs.field(factory=dict)

    def managed_ca_for(self, zone: Zone) -> ManagedCa:
        return self.managed_cas[self.managed_by_scope[_scope_key(self.settings, zone)]]


@attrs.frozen
class Applied:
    store: Store
    result: Any


def new_store(settings: Settings = Settings(), *, now: dt.datetime) -> Store:
    """An empty store; with a shared managed CA, that CA exists from the start."""
    store = Store(settings=settings)
    if settings.managed_ca_scope is ManagedCaScope.SHARED:
        store = _with_managed_ca(store, "shared", "edge managed CA", now)
    return store


def apply(store: Store, command: Any, now: dt.datetime) -> Applied:
    try:
        handler = _HANDLERS[type(command)]
    except KeyError:
        raise ApiError(e.INVALID_REQUEST, f"Unknown command {type(command).__name__}") from None
    new, result = handler(store, command, now)
    if new is not store:
        new = attrs.evolve(new, version=store.version + 1)
    return Applied(new, result)


# --- helpers -----------------------------------------------------------------------------------


def _put(mapping: Mapping, key, value) -> dict:
    return {**mapping, key: value}


def _draw(store: Store) -> tuple[Store, bytes]:
    digest = hashlib.sha256(f"edge:{store.settings.seed}:{store.draws}".encode()).digest()
    return attrs.evolve(store, draws=store.draws + 1), digest


def _new_id(store: Store) -> tuple[Store, str]:
    store, digest = _draw(store)
    return store, str(uuid.UUID(bytes=digest[:16], version=4))


def _new_serial(store: Store) -> tuple[Store, int]:
    store, digest = _draw(store)
    return store, int.from_bytes(digest[:15], "big") | 1  # positive, under 20 octets


def _scope_key(settings: Settings, zone_or_account: Zone | Account) -> str:
    scope = settings.managed_ca_scope
    if scope is ManagedCaScope.SHARED:
        return "shared"
    if scope is ManagedCaScope.ACCOUNT:
        return zone_or_account.account_id if isinstance(zone_or_account, Zone) else zone_or_account.id
    return zone_or_account.id


def _with_managed_ca(store: Store, scope_key: str, name: str, now: dt.datetime) -> Store:
    store, ca_id = _new_id(store)
    store, serial = _new_serial(store)
    material = managed.new_managed_ca(name, serial, now)
    record = ManagedCa(id=ca_id, scope_key=scope_key, name=name, material=material)
    return attrs.evolve(
        store,
        managed_cas=_put(store.managed_cas, ca_id, record),
        managed_by_scope=_put(store.managed_by_scope, scope_key, ca_id),
    )


def _account(store: Store, account_id: str) -> Account:
    try:
        return store.accounts[account_id]
    except KeyError:
        raise ApiError(e.ACCOUNT_NOT_FOUND, f"Account {account_id!r} not found") from None


def _zone(store: Store, zone_id: str) -> Zone:
    try:
        return store.zones[zone_id]
    except KeyError:
        raise ApiError(e.ZONE_NOT_FOUND, f"Zone {zone_id!r} not found") from None


def _ca(store: Store, account_id: str, certificate_id: str) -> CaCertificate:
    """An account's own upload; another account's id is as unknown as a made-up one."""
    found = store.cas.get(certificate_id)
    if found is None or found.account_id != account_id:
        raise ApiError(e.CERTIFICATE_NOT_FOUND, f"mTLS certificate {certificate_id!r} not found")
    return found


def _client_certificate(store: Store, zone_id: str, cert_id: str) -> ClientCertificate:
    found = store.client_certificates.get(cert_id)
    if found is None or found.zone_id != zone_id:
        raise ApiError(e.CLIENT_CERTIFICATE_NOT_FOUND, f"Client certificate {cert_id!r} not found")
    return found


def _check_name(field: str, name: str) -> str:
    """A lower-cased DNS name, or an error naming the field and what was expected."""
    if not isinstance(name, str):
        raise ApiError(e.INVALID_HOSTNAME, f"{field}: expected a hostname string, got {name!r}")
    lowered = name.lower().rstrip(".")
    labels = lowered.split(".")
    if len(lowered) > 253 or len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise ApiError(
            e.INVALID_HOSTNAME,
            f"{field}: {name!r} is not a hostname (letters, digits and hyphens in dot-separated "
            "labels; wildcards are not supported)",
        )
    return lowered


def _owning_zone(store: Store, hostname: str) -> Zone | None:
    zone_id = most_specific(hostname, store.zone_names)
    return None if zone_id is None else store.zones[zone_id]


def _associations_of(store: Store, ca_id: str) -> list[CaAssociation]:
    return [
        CaAssociation(zone_id=zone.id, hostnames=zone.associations[ca_id])
        for zone in store.zones.values()
        if zone.associations.get(ca_id)
    ]


# --- accounts and zones ------------------------------------------------------------------------


def _create_account(store: Store, cmd: c.CreateAccount, now: dt.datetime):
    if not isinstance(cmd.name, str) or not cmd.name.strip():
        raise ApiError(e.INVALID_REQUEST, "name: expected a non-empty account name")
    try:
        plan = Plan(cmd.plan)
    except ValueError:
        allowed = ", ".join(p.value for p in Plan)
        raise ApiError(e.INVALID_REQUEST, f"plan: expected one of {allowed}, got {cmd.plan!r}") from None
    store, account_id = _new_id(store)
    account = Account(id=account_id, name=cmd.name, plan=plan)
    store = attrs.evolve(store, accounts=_put(store.accounts, account_id, account))
    if store.settings.managed_ca_scope is ManagedCaScope.ACCOUNT:
        store = _with_managed_ca(store, account_id, f"{cmd.name} managed CA", now)
    return store, account


def _create_zone(store: Store, cmd: c.CreateZone, now: dt.datetime):
    _account(store, cmd.account_id)
    name = _check_name("name", cmd.name)
    if name in store.zone_names:
        raise ApiError(e.ZONE_EXISTS, f"name: a zone {name!r} already exists")
    _check_zone_overlap(store, cmd.account_id, name)
    store, zone_id = _new_id(store)
    zone = Zone(id=zone_id, account_id=cmd.account_id, name=name)
    store = attrs.evolve(
        store,
        zones=_put(store.zones, zone_id, zone),
        zone_names=_put(store.zone_names, name, zone_id),
    )
    if store.settings.managed_ca_scope is ManagedCaScope.ZONE:
        store = _with_managed_ca(store, zone_id, f"{name} managed CA", now)
    return store, zone


def _check_zone_overlap(store: Store, account_id: str, name: str) -> None:
    """Refuse a zone that would take hostnames from another zone.

    A zone inside or around another account's zone would move that tenant's hostnames (and so
    their trust) to a stranger; a sub-zone of one's own zone may not strand hostnames that the
    parent zone has already associated.
    """
    for other in store.zones.values():
        nested = name.endswith("." + other.name) or other.name.endswith("." + name)
        if not nested:
            continue
        if other.account_id != account_id:
            raise ApiError(
                e.ZONE_OVERLAPS,
                f"name: {name!r} overlaps zone {other.name!r} of another account",
            )
        taken = [
            hostname
            for hostnames in other.associations.values()
            for hostname in hostnames
            if hostname == name or hostname.endswith("." + name)
        ]
        if taken and name.endswith("." + other.name):
            raise ApiError(
                e.ZONE_OVERLAPS,
                f"name: zone {other.name!r} has hostname associations under {name!r} "
                f"({taken[0]}); clear them first",
            )


def _list_accounts(store: Store, cmd: c.ListAccounts, now: dt.datetime):
    return store, tuple(store.accounts.values())


def _list_zones(store: Store, cmd: c.ListZones, now: dt.datetime):
    zones = store.zones.values()
    if cmd.name is not None:
        if not isinstance(cmd.name, str):
            raise ApiError(e.INVALID_REQUEST, f"name: expected a zone name, got {cmd.name!r}")
        zone_id = store.zone_names.get(cmd.name.lower())
        zones = [] if zone_id is None else [store.zones[zone_id]]
    return store, tuple(zones)


# --- account CA store --------------------------------------------------------------------------


def _upload(store: Store, cmd: c.UploadCaCertificate, now: dt.datetime):
    account = _account(store, cmd.account_id)
    if not isinstance(cmd.ca, bool):
        raise ApiError(e.INVALID_REQUEST, f"ca: expected true or false, got {cmd.ca!r}")
    if not isinstance(cmd.certificates, (str, bytes)):
        raise ApiError(e.INVALID_REQUEST, "certificates: expected a PEM string")
    try:
        bundle = upload.parse_bundle(cmd.certificates)
    except upload.UploadRejected as err:
        raise ApiError(e.UNPARSEABLE_CERTIFICATE, str(err)) from None
    try:
        upload.check_bundle(bundle, ca=cmd.ca)
    except upload.UploadRejected as err:
        raise ApiError(e.CERTIFICATE_REJECTED, str(err)) from None
    quota = store.settings.ca_quota.get(account.plan, 0)
    if quota == 0:
        raise ApiError(
            e.PLAN_NOT_ENTITLED,
            f"Account plan {account.plan.value!r} cannot upload CA certificates (Enterprise only)",
        )
    if sum(1 for ca in store.cas.values() if ca.account_id == account.id) >= quota:
        raise ApiError(e.CA_QUOTA_EXCEEDED, "Hit maximum CA cert allocation.")
    store, cert_id = _new_id(store)
    first = bundle.first
    record = CaCertificate(
        id=cert_id,
        account_id=account.id,
        name=cmd.name or "",
        ca=cmd.ca,
        certificates=bundle.pem,
        ders=bundle.ders,
        fingerprints=tuple(formats.fingerprint_sha256(cert) for cert in bundle.certificates),
        issuer=formats.dn_rfc2253(first.issuer),
        serial_number=formats.serial_decimal(first),
        signature=formats.signature_name(first),
        expires_on=first.not_valid_after_utc,
        uploaded_on=now,
    )
    return attrs.evolve(store, cas=_put(store.cas, cert_id, record)), record


def _list_cas(store: Store, cmd: c.ListCaCertificates, now: dt.datetime):
    _account(store, cmd.account_id)
    return store, tuple(ca for ca in store.cas.values() if ca.account_id == cmd.account_id)


def _get_ca(store: Store, cmd: c.GetCaCertificate, now: dt.datetime):
    _account(store, cmd.account_id)
    return store, _ca(store, cmd.account_id, cmd.certificate_id)


def _delete_ca(store: Store, cmd: c.DeleteCaCertificate, now: dt.datetime):
    _account(store, cmd.account_id)
    record = _ca(store, cmd.account_id, cmd.certificate_id)
    in_use = _associations_of(store, record.id)
    if in_use:
        zones = ", ".join(store.zones[a.zone_id].name for a in in_use)
        raise ApiError(
            e.CERTIFICATE_IN_USE,
            f"mTLS certificate {record.id!r} is associated with hostnames in {zones}; "
            "clear those hostname associations first",
        )
    cas = {k: v for k, v in store.cas.items() if k != record.id}
    return attrs.evolve(store, cas=cas), record


def _list_ca_associations(store: Store, cmd: c.ListCaAssociations, now: dt.datetime):
    _account(store, cmd.account_id)
    record = _ca(store, cmd.account_id, cmd.certificate_id)
    return store, tuple(_associations_of(store, record.id))


# --- hostname associations ---------------------------------------------------------------------


def _association_ca_id(store: Store, zone: Zone, certificate_id: str | None) -> str:
    if certificate_id is None:
        return store.managed_ca_for(zone).id
    record = _ca(store, zone.account_id, certificate_id)
    if not record.ca:
        raise ApiError(
            e.CERTIFICATE_NOT_CA,
            f"mtls_certificate_id: {certificate_id!r} was uploaded with ca: false "
            "and cannot validate client certificates",
        )
    return record.id


def _put_associations(store: Store, cmd: c.PutHostnameAssociations, now: dt.datetime):
    zone = _zone(store, cmd.zone_id)
    ca_id = _association_ca_id(store, zone, cmd.mtls_certificate_id)
    hostnames: dict[str, None] = {}
    for index, raw in enumerate(cmd.hostnames):
        hostname = _check_name(f"hostnames[{index}]", raw)
        if _owning_zone(store, hostname) is not zone:
            raise ApiError(
                e.HOSTNAME_NOT_IN_ZONE,
                f"hostnames[{index}]: {hostname!r} is not a hostname of zone {zone.name!r}",
            )
        hostnames[hostname] = None
    associations = {k: v for k, v in zone.associations.items() if k != ca_id}
    if hostnames:
        associations[ca_id] = tuple(hostnames)
    new_zone = attrs.evolve(zone, associations=associations)
    return attrs.evolve(store, zones=_put(store.zones, zone.id, new_zone)), tuple(hostnames)


def _get_associations(store: Store, cmd: c.GetHostnameAssociations, now: dt.datetime):
    zone = _zone(store, cmd.zone_id)
    ca_id = _association_ca_id(store, zone, cmd.mtls_certificate_id)
    return store, zone.associations.get(ca_id, ())


# --- managed CA client certificates ------------------------------------------------------------


def _create_client_certificate(store: Store, cmd: c.CreateClientCertificate, now: dt.datetime):
    zone = _zone(store, cmd.zone_id)
    days = cmd.validity_days
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_VALIDITY_DAYS:
        raise ApiError(
            e.INVALID_VALIDITY,
            f"validity_days: expected a whole number from 1 to {MAX_VALIDITY_DAYS}, got {days!r}",
        )
    try:
        csr = managed.parse_csr(cmd.csr)
    except managed.CsrRejected as err:
        raise ApiError(e.INVALID_CSR, f"csr: {err}") from None
    holding = sum(
        1
        for cert in store.client_certificates.values()
        if cert.zone_id == zone.id and cert.status is not Status.REVOKED
    )
    quota = store.settings.client_certificate_quota
    if holding >= quota:
        raise ApiError(
            e.CLIENT_CERTIFICATE_QUOTA,
            f"Zone {zone.name!r} already holds {quota} client certificates; revoke one first",
        )
    authority = store.managed_ca_for(zone)
    store, cert_id = _new_id(store)
    store, serial = _new_serial(store)
    issued = managed.sign_client_certificate(
        authority.material, csr, serial=serial, now=now, validity_days=days
    )
    names = csr.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
    record = ClientCertificate(
        id=cert_id,
        zone_id=zone.id,
        managed_ca_id=authority.id,
        status=Status.ACTIVE,
        certificate=issued.public_bytes(Encoding.PEM).decode("ascii"),
        csr=cmd.csr,
        serial=serial,
        common_name=str(names[0].value) if names else "",
        fingerprint_sha256=formats.fingerprint_sha256(issued),
        validity_days=days,
        issued_on=issued.not_valid_before_utc,
        expires_on=issued.not_valid_after_utc,
    )
    certificates = _put(store.client_certificates, cert_id, record)
    return attrs.evolve(store, client_certificates=certificates), record


def _list_client_certificates(store: Store, cmd: c.ListClientCertificates, now: dt.datetime):
    _zone(store, cmd.zone_id)
    try:
        status = None if cmd.status is None else Status(cmd.status)
    except ValueError:
        allowed = ", ".join(state.value for state in Status)
        raise ApiError(
            e.INVALID_REQUEST, f"status: expected one of {allowed}, got {cmd.status!r}"
        ) from None
    found = tuple(
        cert
        for cert in store.client_certificates.values()
        if cert.zone_id == cmd.zone_id and (status is None or cert.status is status)
    )
    return store, found


def _get_client_certificate(store: Store, cmd: c.GetClientCertificate, now: dt.datetime):
    _zone(store, cmd.zone_id)
    return store, _client_certificate(store, cmd.zone_id, cmd.client_certificate_id)


def _transition(store: Store, zone_id: str, cert_id: str, source: Status, target: Status, verb: str):
    _zone(store, zone_id)
    record = _client_certificate(store, zone_id, cert_id)
    if record.status is not source:
        raise ApiError(
            e.INVALID_STATUS_CHANGE,
            f"Client certificate {cert_id!r} is {record.status.value}; "
            f"only a {source.value} certificate can be {verb}",
        )
    changed = attrs.evolve(record, status=target)
    certificates = _put(store.client_certificates, cert_id, changed)
    return attrs.evolve(store, client_certificates=certificates), changed


def _revoke(store: Store, cmd: c.RevokeClientCertificate, now: dt.datetime):
    return _transition(
        store, cmd.zone_id, cmd.client_certificate_id,
        Status.ACTIVE, Status.PENDING_REVOCATION, "revoked",
    )


def _reactivate(store: Store, cmd: c.ReactivateClientCertificate, now: dt.datetime):
    return _transition(
        store, cmd.zone_id, cmd.client_certificate_id,
        Status.PENDING_REVOCATION, Status.ACTIVE, "reactivated",
    )


def _finalize(store: Store, cmd: c.FinalizeRevocations, now: dt.datetime):
    if cmd.zone_id is not None:
        _zone(store, cmd.zone_id)
    pending = [
        cert
        for cert in store.client_certificates.values()
        if cert.status is Status.PENDING_REVOCATION and cmd.zone_id in (None, cert.zone_id)
    ]
    if not pending:
        return store, ()
    certificates = dict(store.client_certificates)
    for cert in pending:
        certificates[cert.id] = attrs.evolve(cert, status=Status.REVOKED)
    done = tuple(certificates[cert.id] for cert in pending)
    return attrs.evolve(store, client_certificates=certificates), done


# --- custom rules ------------------------------------------------------------------------------


def _check_rule(index: int, rule: Any) -> Rule:
    where = f"rules[{index}]"
    if not isinstance(rule, Rule):
        raise ApiError(e.INVALID_RULE, f"{where}: expected a rule, got {rule!r}")
    if not isinstance(rule.expression, str) or not rule.expression.strip():
        raise ApiError(e.INVALID_RULE, f"{where}.expression: expected a non-empty expression")
    try:
        action = Action(rule.action)
    except ValueError:
        allowed = ", ".join(a.value for a in Action)
        raise ApiError(
            e.INVALID_RULE, f"{where}.action: expected one of {allowed}, got {rule.action!r}"
        ) from None
    return attrs.evolve(rule, action=action)


def _put_rules(store: Store, cmd: c.PutCustomRules, now: dt.datetime):
    zone = _zone(store, cmd.zone_id)
    rules = tuple(_check_rule(i, rule) for i, rule in enumerate(cmd.rules))
    try:
        compile_rules(rules)  # refused at upload, so a snapshot never carries a bad expression
    except RuleSyntaxError as err:
        raise ApiError(e.INVALID_RULE, str(err)) from None
    new_zone = attrs.evolve(zone, rules=rules)
    return attrs.evolve(store, zones=_put(store.zones, zone.id, new_zone)), rules


def _get_rules(store: Store, cmd: c.GetCustomRules, now: dt.datetime):
    return store, _zone(store, cmd.zone_id).rules


# --- zone settings ----------------------------------------------------------------------------


def _put_settings(store: Store, cmd: c.PutZoneSettings, now: dt.datetime):
    zone = _zone(store, cmd.zone_id)
    if not isinstance(cmd.settings, ZoneSettings):
        raise ApiError(e.INVALID_REQUEST, f"settings: expected zone settings, got {cmd.settings!r}")
    new_zone = attrs.evolve(zone, settings=cmd.settings)
    return attrs.evolve(store, zones=_put(store.zones, zone.id, new_zone)), cmd.settings


def _get_settings(store: Store, cmd: c.GetZoneSettings, now: dt.datetime):
    return store, _zone(store, cmd.zone_id).settings


def _set_forwarding(store: Store, cmd: c.SetForwarding, now: dt.datetime):
    settings = _zone(store, cmd.zone_id).settings
    changes = {}
    for field in attrs.fields(c.SetForwarding)[1:]:
        value = getattr(cmd, field.name)
        if value is not None and not isinstance(value, bool):
            raise ApiError(e.INVALID_REQUEST, f"{field.name}: expected true or false, got {value!r}")
        if value is not None:
            changes[field.name] = value
    if not changes:
        return store, settings  # nothing asked: a read
    forwarding = attrs.evolve(settings.forwarding, **changes)
    return _put_settings(store, c.PutZoneSettings(cmd.zone_id, attrs.evolve(
        settings, forwarding=forwarding)), now)


_HANDLERS: dict[type, Callable[[Store, Any, dt.datetime], tuple[Store, Any]]] = {
    c.CreateAccount: _create_account,
    c.CreateZone: _create_zone,
    c.ListAccounts: _list_accounts,
    c.ListZones: _list_zones,
    c.UploadCaCertificate: _upload,
    c.ListCaCertificates: _list_cas,
    c.GetCaCertificate: _get_ca,
    c.DeleteCaCertificate: _delete_ca,
    c.ListCaAssociations: _list_ca_associations,
    c.PutHostnameAssociations: _put_associations,
    c.GetHostnameAssociations: _get_associations,
    c.CreateClientCertificate: _create_client_certificate,
    c.ListClientCertificates: _list_client_certificates,
    c.GetClientCertificate: _get_client_certificate,
    c.RevokeClientCertificate: _revoke,
    c.ReactivateClientCertificate: _reactivate,
    c.FinalizeRevocations: _finalize,
    c.PutCustomRules: _put_rules,
    c.GetCustomRules: _get_rules,
    c.PutZoneSettings: _put_settings,
    c.GetZoneSettings: _get_settings,
    c.SetForwarding: _set_forwarding,
}
