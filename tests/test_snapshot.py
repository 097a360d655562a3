"""EdgeConfig snapshots: trust grouped per distinct CA set, tenants apart, built incrementally."""

from __future__ import annotations

import datetime as dt

import pki_samples as samples
from edge.control import commands as c
from edge.control.snapshot import build_snapshot
from edge.control.store import apply, new_store

NOW = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)


def run(store, *commands):
    results = []
    for command in commands:
        applied = apply(store, command, NOW)
        store = applied.store
        results.append(applied.result)
    return store, results


def two_tenants():
    """Two accounts whose CAs carry the very same subject DN but different keys."""
    store = new_store(now=NOW)
    store, (a, b) = run(store, c.CreateAccount("a"), c.CreateAccount("b"))
    store, (za, zb) = run(store, c.CreateZone(a.id, "a.com"), c.CreateZone(b.id, "b.com"))
    twin_a, twin_b = samples.same_dn_ca_pems()
    store, (ca_a, ca_b) = run(
        store, c.UploadCaCertificate(a.id, twin_a), c.UploadCaCertificate(b.id, twin_b)
    )
    store, _ = run(
        store,
        c.PutHostnameAssociations(za.id, ["api.a.com", "www.a.com"], ca_a.id),
        c.PutHostnameAssociations(zb.id, ["api.b.com"], ca_b.id),
    )
    return store, ca_a, ca_b


def test_hostnames_with_the_same_cas_share_one_trust_set_and_policy():
    store, ca_a, _ = two_tenants()
    snapshot = build_snapshot(store)
    assert snapshot.version == store.version
    assert snapshot.host("api.a.com") is snapshot.host("WWW.a.com")
    assert snapshot.host("api.a.com").trust.key == ca_a.fingerprints
    assert len(snapshot.trust_sets) == 2
    assert snapshot.host("other.a.com") is None and snapshot.zone_for("other.a.com").name == "a.com"
    assert snapshot.zone_for("a.org") is None


def test_tenants_with_identical_ca_names_never_share_trust():
    store, ca_a, ca_b = two_tenants()
    snapshot = build_snapshot(store)
    a_policy, b_policy = snapshot.host("api.a.com"), snapshot.host("api.b.com")
    assert a_policy.trust.key != b_policy.trust.key
    assert {ca.ca_id for ca in a_policy.cas} == {ca_a.id}
    assert a_policy.ca_with_fingerprint(ca_b.fingerprints[0]) is None
    assert a_policy.ca_with_fingerprint(ca_a.fingerprints[0]).ca_id == ca_a.id


def test_managed_and_byoca_on_one_hostname_make_one_trust_set_of_both():
    store, ca_a, _ = two_tenants()
    zone_id = store.zone_names["a.com"]
    store, _ = run(store, c.PutHostnameAssociations(zone_id, ["api.a.com"]))
    policy = build_snapshot(store).host("api.a.com")
    managed = store.managed_ca_for(store.zones[zone_id])
    assert {ca.ca_id for ca in policy.cas} == {ca_a.id, managed.id}
    assert set(policy.trust.key) == {ca_a.fingerprints[0], managed.fingerprint}
    assert [ca.managed for ca in policy.cas].count(True) == 1


def test_revocation_set_holds_pending_and_revoked_serials():
    store, _, _ = two_tenants()
    zone_id = store.zone_names["a.com"]
    store, (one, two, three) = run(
        store, *[c.CreateClientCertificate(zone_id, samples.csr_pem()) for _ in range(3)]
    )
    store, _ = run(
        store,
        c.RevokeClientCertificate(zone_id, one.id),
        c.RevokeClientCertificate(zone_id, two.id),
        c.FinalizeRevocations(),
    )
    store, _ = run(store, c.RevokeClientCertificate(zone_id, three.id))
    store, _ = run(store, c.ReactivateClientCertificate(zone_id, three.id))
    snapshot = build_snapshot(store)
    assert snapshot.is_revoked(one.managed_ca_id, one.serial)
    assert snapshot.is_revoked(two.managed_ca_id, two.serial)
    assert not snapshot.is_revoked(three.managed_ca_id, three.serial)


def test_incremental_build_reuses_unchanged_zones_and_equals_a_full_build():
    store, ca_a, _ = two_tenants()
    first = build_snapshot(store)
    store, _ = run(store, c.PutHostnameAssociations(store.zone_names["a.com"], [], ca_a.id))
    incremental = build_snapshot(store, first)
    assert incremental.zones["b.com"] is first.zones["b.com"]
    assert incremental.zones["a.com"] is not first.zones["a.com"]
    assert incremental == build_snapshot(store)
    assert incremental.host("api.a.com") is None
    assert len(incremental.trust_sets) == 1  # the unused trust set is gone
