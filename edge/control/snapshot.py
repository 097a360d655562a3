"""EdgeConfig: the immutable, versioned picture of the store that edge nodes serve from.

It holds what a node needs and nothing else: per hostname the CAs it trusts, per zone the rules,
and the managed CAs' revocation sets. Trust is grouped into `TrustSet`s keyed by the CA
certificates' fingerprints, so a node builds one TLS context per distinct trust set, never one
per hostname. Snapshots are built incrementally: a zone whose record did not change keeps its
part of the previous snapshot, so an accepted change costs the zones it touched plus a walk over
the zone list, not a rebuild of every hostname.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import attrs

from edge.control.hostnames import most_specific
from edge.control.records import ClientCertificateStatus, Rule, Zone, ZoneSettings
from edge.control.store import Store


@attrs.frozen
class TrustedCa:
    """One CA a hostname trusts: an upload (possibly a bundle) or a managed CA."""

    ca_id: str
    account_id: str | None  # None for a managed CA shared by every account
    managed: bool
    ders: tuple[bytes, ...] = attrs.field(repr=False)
    fingerprints: tuple[str, ...]


@attrs.frozen
class TrustSet:
    """The certificates one TLS context trusts; equal keys mean interchangeable contexts."""

    key: tuple[str, ...]  # sorted SHA-256 fingerprints
    ders: tuple[bytes, ...] = attrs.field(repr=False)


@attrs.frozen
class HostPolicy:
    """How an mTLS hostname validates: its zone, its trust set and which CA each anchor is."""

    zone_id: str
    account_id: str
    trust: TrustSet
    cas: tuple[TrustedCa, ...]

    def ca_with_fingerprint(self, fingerprint: str) -> TrustedCa | None:
        """The hostname's CA holding this certificate: tenants' CAs with one DN stay apart."""
        return next((ca for ca in self.cas if fingerprint in ca.fingerprints), None)


@attrs.frozen
class ZoneConfig:
    id: str
    account_id: str
    name: str
    rules: tuple[Rule, ...]
    settings: ZoneSettings
    hosts: Mapping[str, HostPolicy]
    policies: tuple[HostPolicy, ...]  # the distinct values of `hosts`
    source: Zone = attrs.field(eq=False, repr=False)  # the record this part was built from


@attrs.frozen
class EdgeConfig:
    version: int
    zones: Mapping[str, ZoneConfig]  # by zone name
    revoked: Mapping[str, frozenset[int]]  # managed CA id -> revoked serial numbers
    trust_sets: Mapping[tuple[str, ...], TrustSet]  # every distinct trust set in use

    def zone_for(self, hostname: str) -> ZoneConfig | None:
        """The most specific zone that holds the hostname, as the store decides ownership."""
        return most_specific(hostname, self.zones)

    def host(self, hostname: str) -> HostPolicy | None:
        """The policy of an mTLS hostname, or None where no CA is associated."""
        zone = self.zone_for(hostname)
        return None if zone is None else zone.hosts.get(hostname.lower())

    def is_revoked(self, ca_id: str, serial: int) -> bool:
        return serial in self.revoked.get(ca_id, ())

    @property
    def hostname_count(self) -> int:
        return sum(len(zone.hosts) for zone in self.zones.values())


def _trusted_ca(store: Store, ca_id: str) -> TrustedCa:
    upload = store.cas.get(ca_id)
    if upload is not None:
        return TrustedCa(ca_id, upload.account_id, False, upload.ders, upload.fingerprints)
    authority = store.managed_cas[ca_id]
    account = authority.scope_key if authority.scope_key in store.accounts else None
    der = authority.material.certificate_der
    return TrustedCa(ca_id, account, True, (der,), (authority.fingerprint,))


def _trust_set(cas: Iterable[TrustedCa], interned: dict) -> TrustSet:
    by_fingerprint = {fp: der for ca in cas for fp, der in zip(ca.fingerprints, ca.ders)}
    key = tuple(sorted(by_fingerprint))
    found = interned.get(key)
    if found is None:
        found = interned[key] = TrustSet(key, tuple(by_fingerprint[fp] for fp in key))
    return found


def _trust_for(
    store: Store, ca_ids: tuple[str, ...], interned: dict
) -> tuple[tuple[TrustedCa, ...], TrustSet]:
    """The CAs and trust set of a sorted CA-id tuple, worked out once per build."""
    found = interned.get(ca_ids)
    if found is None:
        cas = tuple(_trusted_ca(store, ca_id) for ca_id in ca_ids)
        found = interned[ca_ids] = (cas, _trust_set(cas, interned))
    return found


def _zone_config(store: Store, zone: Zone, interned: dict) -> ZoneConfig:
    """One zone's part: hostnames with the same CA ids share one HostPolicy object."""
    ca_ids_by_host: dict[str, list[str]] = {}
    for ca_id, hostnames in zone.associations.items():
        for hostname in hostnames:
            ca_ids_by_host.setdefault(hostname, []).append(ca_id)
    policies: dict[tuple[str, ...], HostPolicy] = {}
    hosts = {}
    for hostname, ca_ids in ca_ids_by_host.items():
        key = tuple(sorted(ca_ids))
        policy = policies.get(key)
        if policy is None:
            cas, trust = _trust_for(store, key, interned)
            policy = policies[key] = HostPolicy(zone.id, zone.account_id, trust, cas)
        hosts[hostname] = policy
    return ZoneConfig(
        zone.id, zone.account_id, zone.name, zone.rules, zone.settings, hosts,
        tuple(policies.values()), zone,
    )


def _revocations(store: Store) -> dict[str, frozenset[int]]:
    """Pending revocations count: the edge acts on a revocation as soon as it hears of it."""
    revoked: dict[str, set[int]] = {}
    for cert in store.client_certificates.values():
        if cert.status is not ClientCertificateStatus.ACTIVE:
            revoked.setdefault(cert.managed_ca_id, set()).add(cert.serial)
    return {ca_id: frozenset(serials) for ca_id, serials in revoked.items()}


def build_snapshot(store: Store, previous: EdgeConfig | None = None) -> EdgeConfig:
    """The snapshot of `store`, reusing every zone part of `previous` whose zone is unchanged."""
    reusable = {} if previous is None else {z.id: z for z in previous.zones.values()}
    # Trust sets by fingerprint key and (CAs, trust set) by CA-id key: CA records never change,
    # so what a previous build worked out still holds.
    interned: dict = {} if previous is None else dict(previous.trust_sets)
    zones = {}
    for zone in store.zones.values():
        part = reusable.get(zone.id)
        if part is None or part.source is not zone:
            part = _zone_config(store, zone, interned)
        zones[zone.name] = part
    in_use = {
        policy.trust.key: policy.trust
        for part in zones.values()
        for policy in part.policies
    }
    return EdgeConfig(store.version, zones, _revocations(store), in_use)
