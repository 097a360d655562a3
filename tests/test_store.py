"""The control-plane store, rule by rule, bad inputs included. No event loop here."""

from __future__ import annotations

import copy
import datetime as dt
import re

import pytest

import pki_samples as samples
from edge.control import commands as c
from edge.control import errors
from edge.control.errors import ApiError
from edge.control.records import (Action, ClientCertificateStatus, ForwardingOptions,
                                  ManagedCaScope, Plan, Rule, ZoneSettings)
from edge.control.store import Settings, Store, apply, new_store

NOW = dt.datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=dt.timezone.utc)
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


class World:
    """A store driven through `apply`, remembering the last result."""

    def __init__(self, settings: Settings = Settings()) -> None:
        self.store: Store = new_store(settings, now=NOW)

    def do(self, command):
        applied = apply(self.store, command, NOW)
        self.store = applied.store
        return applied.result

    def refused(self, command, code: int) -> ApiError:
        """Assert the command is refused with `code` and leaves the store exactly as it was."""
        before = self.store
        deep_copy = copy.deepcopy(before)
        with pytest.raises(ApiError) as caught:
            apply(before, command, NOW)
        assert caught.value.code == code, caught.value
        assert self.store is before and before == deep_copy
        return caught.value


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
def tenant(world):
    account = world.do(c.CreateAccount("acme", Plan.ENTERPRISE))
    zone = world.do(c.CreateZone(account.id, "example.com"))
    return account, zone


# --- accounts and zones ---------------------------------------------------------------------


def test_accounts_and_zones_get_uuid_ids_and_are_listed(world, tenant):
    account, zone = tenant
    assert UUID.match(account.id) and UUID.match(zone.id)
    assert world.do(c.ListAccounts()) == (account,)
    assert world.do(c.ListZones(name="EXAMPLE.com")) == (zone,)
    assert world.do(c.ListZones(name="other.com")) == ()


def test_zone_names_are_unique_and_must_be_hostnames(world, tenant):
    account, _ = tenant
    world.refused(c.CreateZone(account.id, "example.com"), errors.ZONE_EXISTS)
    world.refused(c.CreateZone(account.id, "not a name"), errors.INVALID_HOSTNAME)
    world.refused(c.CreateZone("missing", "other.com"), errors.ACCOUNT_NOT_FOUND)


def test_unknown_plan_is_refused_naming_the_field(world):
    err = world.refused(c.CreateAccount("x", "platinum"), errors.INVALID_REQUEST)
    assert "plan" in err.message and "enterprise" in err.message


def test_same_commands_and_seed_give_the_same_ids():
    first, again, reseeded = World(), World(), World(Settings(seed=7))
    ids = [world.do(c.CreateAccount("a")).id for world in (first, again, reseeded)]
    assert ids[0] == ids[1] != ids[2]


# --- account CA store -----------------------------------------------------------------------


def test_upload_returns_cloudflare_result_object(world, tenant):
    account, _ = tenant
    record = world.do(
        c.UploadCaCertificate(account.id, samples.ca_pem(0) + "\n\n\n", name="devices")
    )
    shown = record.to_api()
    cert = samples.trustme_ca(0)
    assert UUID.match(shown["id"])
    assert shown["ca"] is True and shown["name"] == "devices" and shown["type"] == "custom"
    assert shown["issuer"].startswith("OU=Testing CA #") and shown["issuer"].endswith(
        ",O=Tenant CA 0"
    )
    from cryptography import x509

    parsed = x509.load_pem_x509_certificate(cert.cert_pem.bytes())
    assert shown["serial_number"] == str(parsed.serial_number)
    assert shown["signature"] == "ECDSAWithSHA256"
    assert shown["expires_on"] == "3000-01-01T00:00:00Z"
    assert shown["uploaded_on"] == "2026-03-01T12:00:00.123456Z"
    assert shown["certificates"] == samples.ca_pem(0)  # trailing newlines normalised
    assert "private_key" not in shown


def test_bundle_upload_keeps_every_certificate(world, tenant):
    account, _ = tenant
    bundle = samples.ca_pem(0) + "subject=comment line\n" + samples.ca_pem(1)
    record = world.do(c.UploadCaCertificate(account.id, bundle))
    assert len(record.ders) == 2 and len(set(record.fingerprints)) == 2


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("garbage", id="garbage"),
        pytest.param("", id="empty"),
        pytest.param(b"\xff\xfe\x00binary", id="binary"),
        pytest.param("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", id="bad-der"),
        pytest.param(samples.private_key_pem(), id="private-key"),
        pytest.param(samples.public_key_pem(), id="public-key"),
        pytest.param(samples.csr_pem(), id="csr"),
        pytest.param(samples.ca_pem(0) + samples.private_key_pem(), id="cert-plus-key"),
    ],
)
def test_anything_but_certificates_is_unparseable(world, tenant, text):
    account, _ = tenant
    err = world.refused(c.UploadCaCertificate(account.id, text), errors.UNPARSEABLE_CERTIFICATE)
    assert err.message == "Unable to parse certificate"


def test_leaf_with_ca_true_is_refused_but_accepted_with_ca_false(world, tenant):
    account, _ = tenant
    err = world.refused(
        c.UploadCaCertificate(account.id, samples.leaf_pem(), ca=True), errors.CERTIFICATE_REJECTED
    )
    assert "CA:TRUE" in err.message
    assert world.do(c.UploadCaCertificate(account.id, samples.leaf_pem(), ca=False)).ca is False


@pytest.mark.parametrize(
    "make", [samples.ed25519_ca_pem, samples.rsa_pss_ca_pem], ids=["ed25519", "rsa-pss"]
)
def test_disallowed_signature_algorithms_are_refused(world, tenant, make):
    account, _ = tenant
    err = world.refused(c.UploadCaCertificate(account.id, make()), errors.CERTIFICATE_REJECTED)
    assert "signature algorithm" in err.message


def test_rsa_with_sha384_is_allowed_and_named_the_go_way(world, tenant):
    account, _ = tenant
    record = world.do(c.UploadCaCertificate(account.id, samples.rsa_sha384_ca_pem()))
    assert record.signature == "SHA384WithRSA" and record.serial_number == "1234567"


def test_sixth_ca_hits_the_enterprise_quota(world, tenant):
    account, _ = tenant
    for index in range(5):
        world.do(c.UploadCaCertificate(account.id, samples.ca_pem(index)))
    err = world.refused(c.UploadCaCertificate(account.id, samples.ca_pem(5)), 1489)
    assert err.message == "Hit maximum CA cert allocation."


def test_quota_is_per_account(world, tenant):
    account, _ = tenant
    other = world.do(c.CreateAccount("other"))
    for index in range(5):
        world.do(c.UploadCaCertificate(account.id, samples.ca_pem(index)))
    assert world.do(c.UploadCaCertificate(other.id, samples.ca_pem(0))).account_id == other.id


def test_non_enterprise_plans_cannot_upload(world):
    account = world.do(c.CreateAccount("small", Plan.PRO))
    world.refused(c.UploadCaCertificate(account.id, samples.ca_pem(0)), errors.PLAN_NOT_ENTITLED)


def test_delete_is_refused_while_associated_and_allowed_after_clearing(world, tenant):
    account, zone = tenant
    ca = world.do(c.UploadCaCertificate(account.id, samples.ca_pem(0)))
    world.do(c.PutHostnameAssociations(zone.id, ["api.example.com"], ca.id))
    err = world.refused(c.DeleteCaCertificate(account.id, ca.id), errors.CERTIFICATE_IN_USE)
    assert "example.com" in err.message
    assoc = world.do(c.ListCaAssociations(account.id, ca.id))
    assert [a.to_api() for a in assoc] == [{"service": "mtls", "status": "active"}]
    world.do(c.PutHostnameAssociations(zone.id, [], ca.id))
    assert world.do(c.ListCaAssociations(account.id, ca.id)) == ()
    assert world.do(c.DeleteCaCertificate(account.id, ca.id)).id == ca.id
    world.refused(c.GetCaCertificate(account.id, ca.id), errors.CERTIFICATE_NOT_FOUND)


def test_uploads_are_immutable_and_a_change_is_a_new_id(world, tenant):
    account, _ = tenant
    first = world.do(c.UploadCaCertificate(account.id, samples.ca_pem(0), name="a"))
    second = world.do(c.UploadCaCertificate(account.id, samples.ca_pem(0), name="a"))
    assert first.id != second.id
    assert world.do(c.GetCaCertificate(account.id, first.id)) == first
    assert {r.id for r in world.do(c.ListCaCertificates(account.id))} == {first.id, second.id}


def test_another_accounts_ca_is_not_found(world, tenant):
    account, zone = tenant
    other = world.do(c.CreateAccount("other"))
    theirs = world.do(c.UploadCaCertificate(other.id, samples.ca_pem(1)))
    world.refused(c.GetCaCertificate(account.id, theirs.id), errors.CERTIFICATE_NOT_FOUND)
    world.refused(c.DeleteCaCertificate(account.id, theirs.id), errors.CERTIFICATE_NOT_FOUND)
    world.refused(
        c.PutHostnameAssociations(zone.id, ["api.example.com"], theirs.id),
        errors.CERTIFICATE_NOT_FOUND,
    )


# --- hostname associations ------------------------------------------------------------------


def test_put_replaces_the_list_and_empty_clears_it(world, tenant):
    account, zone = tenant
    ca = world.do(c.UploadCaCertificate(account.id, samples.ca_pem(0)))
    world.do(c.PutHostnameAssociations(zone.id, ["a.example.com", "b.example.com"], ca.id))
    world.do(c.PutHostnameAssociations(zone.id, ["C.example.com", "c.example.com"], ca.id))
    assert world.do(c.GetHostnameAssociations(zone.id, ca.id)) == ("c.example.com",)
    world.do(c.PutHostnameAssociations(zone.id, [], ca.id))
    assert world.do(c.GetHostnameAssociations(zone.id, ca.id)) == ()


def test_association_to_unknown_ca_id_is_refused(world, tenant):
    _, zone = tenant
    world.refused(
        c.PutHostnameAssociations(zone.id, ["a.example.com"], "00000000-0000-4000-8000-000000000000"),
        errors.CERTIFICATE_NOT_FOUND,
    )


def test_association_of_a_ca_false_upload_is_refused(world, tenant):
    account, zone = tenant
    leaf = world.do(c.UploadCaCertificate(account.id, samples.leaf_pem(), ca=False))
    world.refused(
        c.PutHostnameAssociations(zone.id, ["a.example.com"], leaf.id), errors.CERTIFICATE_NOT_CA
    )


@pytest.mark.parametrize(
    "hostname, code",
    [
        ("api.other.com", errors.HOSTNAME_NOT_IN_ZONE),
        ("notexample.com", errors.HOSTNAME_NOT_IN_ZONE),
        ("*.example.com", errors.INVALID_HOSTNAME),
        ("bad_label.example.com", errors.INVALID_HOSTNAME),
        ("-x.example.com", errors.INVALID_HOSTNAME),
    ],
)
def test_bad_hostnames_are_refused_naming_the_index(world, tenant, hostname, code):
    _, zone = tenant
    err = world.refused(
        c.PutHostnameAssociations(zone.id, ["ok.example.com", hostname]), code
    )
    assert "hostnames[1]" in err.message


def test_a_hostname_belongs_to_its_most_specific_zone(world, tenant):
    account, zone = tenant
    inner = world.do(c.CreateZone(account.id, "eu.example.com"))
    world.refused(
        c.PutHostnameAssociations(zone.id, ["api.eu.example.com"]), errors.HOSTNAME_NOT_IN_ZONE
    )
    assert world.do(c.PutHostnameAssociations(inner.id, ["api.eu.example.com"]))


def test_omitted_ca_id_means_the_managed_ca(world, tenant):
    _, zone = tenant
    world.do(c.PutHostnameAssociations(zone.id, ["api.example.com"]))
    managed = world.store.managed_ca_for(world.store.zones[zone.id])
    assert world.store.zones[zone.id].associations == {managed.id: ("api.example.com",)}
    assert world.do(c.GetHostnameAssociations(zone.id)) == ("api.example.com",)


def test_several_cas_per_hostname_and_one_byoca_across_zones(world, tenant):
    account, zone = tenant
    other_zone = world.do(c.CreateZone(account.id, "example.net"))
    ca = world.do(c.UploadCaCertificate(account.id, samples.ca_pem(0)))
    world.do(c.PutHostnameAssociations(zone.id, ["api.example.com"], ca.id))
    world.do(c.PutHostnameAssociations(zone.id, ["api.example.com"]))
    world.do(c.PutHostnameAssociations(other_zone.id, ["api.example.net"], ca.id))
    assert len(world.store.zones[zone.id].associations) == 2
    used_in = {a.zone_id for a in world.do(c.ListCaAssociations(account.id, ca.id))}
    assert used_in == {zone.id, other_zone.id}


@pytest.mark.parametrize(
    "scope, shared_between_accounts, shared_between_zones",
    [
        (ManagedCaScope.ACCOUNT, False, True),
        (ManagedCaScope.ZONE, False, False),
        (ManagedCaScope.SHARED, True, True),
    ],
)
def test_managed_ca_scope_is_a_setting(scope, shared_between_accounts, shared_between_zones):
    world = World(Settings(managed_ca_scope=scope))
    a = world.do(c.CreateAccount("a"))
    b = world.do(c.CreateAccount("b"))
    a1 = world.do(c.CreateZone(a.id, "a1.com"))
    a2 = world.do(c.CreateZone(a.id, "a2.com"))
    b1 = world.do(c.CreateZone(b.id, "b1.com"))
    ca = world.store.managed_ca_for
    zones = world.store.zones
    assert (ca(zones[a1.id]) == ca(zones[a2.id])) is shared_between_zones
    assert (ca(zones[a1.id]) == ca(zones[b1.id])) is shared_between_accounts


# --- managed CA client certificates -----------------------------------------------------------


def test_client_certificate_is_issued_from_csr_by_the_managed_ca(world, tenant):
    _, zone = tenant
    from cryptography import x509

    record = world.do(c.CreateClientCertificate(zone.id, samples.csr_pem("device-7"), 30))
    issued = x509.load_pem_x509_certificate(record.certificate.encode())
    authority = world.store.managed_ca_for(world.store.zones[zone.id])
    ca_cert = x509.load_der_x509_certificate(authority.material.certificate_der)
    issued.verify_directly_issued_by(ca_cert)
    assert record.status is ClientCertificateStatus.ACTIVE
    assert record.common_name == "device-7" and record.managed_ca_id == authority.id
    assert issued.not_valid_after_utc - issued.not_valid_before_utc == dt.timedelta(days=30)
    assert record.to_api()["expires_on"] == "2026-03-31T12:00:00Z"


@pytest.mark.parametrize("days", [0, -1, 36501, "30", True])
def test_validity_days_out_of_range_is_refused(world, tenant, days):
    _, zone = tenant
    err = world.refused(
        c.CreateClientCertificate(zone.id, samples.csr_pem(), days), errors.INVALID_VALIDITY
    )
    assert "validity_days" in err.message


def test_garbage_csr_is_refused(world, tenant):
    _, zone = tenant
    world.refused(c.CreateClientCertificate(zone.id, samples.ca_pem(0)), errors.INVALID_CSR)


def test_revoke_then_finalize_then_reactivate_transitions(world, tenant):
    _, zone = tenant
    cert = world.do(c.CreateClientCertificate(zone.id, samples.csr_pem()))
    world.refused(c.ReactivateClientCertificate(zone.id, cert.id), errors.INVALID_STATUS_CHANGE)
    pending = world.do(c.RevokeClientCertificate(zone.id, cert.id))
    assert pending.status is ClientCertificateStatus.PENDING_REVOCATION
    world.refused(c.RevokeClientCertificate(zone.id, cert.id), errors.INVALID_STATUS_CHANGE)
    assert world.do(c.ReactivateClientCertificate(zone.id, cert.id)).status.value == "active"
    world.do(c.RevokeClientCertificate(zone.id, cert.id))
    (done,) = world.do(c.FinalizeRevocations())
    assert done.status is ClientCertificateStatus.REVOKED
    world.refused(c.ReactivateClientCertificate(zone.id, cert.id), errors.INVALID_STATUS_CHANGE)
    listed = world.do(c.ListClientCertificates(zone.id, ClientCertificateStatus.REVOKED))
    assert [r.id for r in listed] == [cert.id]  # the record stays


def test_client_certificate_quota_is_per_zone_and_revoking_frees_a_slot():
    world = World(Settings(client_certificate_quota=2))
    account = world.do(c.CreateAccount("a"))
    zone = world.do(c.CreateZone(account.id, "a.com"))
    other = world.do(c.CreateZone(account.id, "b.com"))
    first = world.do(c.CreateClientCertificate(zone.id, samples.csr_pem()))
    world.do(c.CreateClientCertificate(zone.id, samples.csr_pem()))
    world.refused(c.CreateClientCertificate(zone.id, samples.csr_pem()), errors.CLIENT_CERTIFICATE_QUOTA)
    world.do(c.CreateClientCertificate(other.id, samples.csr_pem()))
    world.do(c.RevokeClientCertificate(zone.id, first.id))
    world.refused(c.CreateClientCertificate(zone.id, samples.csr_pem()), errors.CLIENT_CERTIFICATE_QUOTA)
    world.do(c.FinalizeRevocations(zone.id))
    assert world.do(c.CreateClientCertificate(zone.id, samples.csr_pem()))


def test_default_client_certificate_quota_is_100():
    assert Settings().client_certificate_quota == 100


def test_client_certificate_of_another_zone_is_not_found(world, tenant):
    account, zone = tenant
    other = world.do(c.CreateZone(account.id, "example.net"))
    cert = world.do(c.CreateClientCertificate(zone.id, samples.csr_pem()))
    world.refused(c.RevokeClientCertificate(other.id, cert.id), errors.CLIENT_CERTIFICATE_NOT_FOUND)


# --- custom rules -----------------------------------------------------------------------------


def test_rules_are_stored_in_order_and_replaced_whole(world, tenant):
    _, zone = tenant
    rules = [
        Rule("not cf.tls_client_auth.cert_verified", Action.LOG, "rehearse"),
        Rule('http.host eq "a.example.com"', "skip"),
    ]
    stored = world.do(c.PutCustomRules(zone.id, rules))
    assert [r.action for r in stored] == [Action.LOG, Action.SKIP]
    assert world.do(c.GetCustomRules(zone.id)) == stored
    world.do(c.PutCustomRules(zone.id, []))
    assert world.do(c.GetCustomRules(zone.id)) == ()


@pytest.mark.parametrize(
    "rule, field",
    [
        (Rule("true", "challenge"), "rules[0].action"),
        (Rule("  ", Action.BLOCK), "rules[0].expression"),
    ],
)
def test_bad_rules_are_refused_naming_the_field(world, tenant, rule, field):
    _, zone = tenant
    err = world.refused(c.PutCustomRules(zone.id, [rule]), errors.INVALID_RULE)
    assert field in err.message


# --- versions -------------------------------------------------------------------------------


def test_each_accepted_change_bumps_the_version_and_reads_do_not(world, tenant):
    account, zone = tenant
    version = world.store.version
    world.do(c.ListCaCertificates(account.id))
    world.do(c.GetHostnameAssociations(zone.id))
    assert world.store.version == version
    world.do(c.PutHostnameAssociations(zone.id, ["a.example.com"]))
    assert world.store.version == version + 1


def test_unknown_command_is_an_api_error(world):
    world.refused(object(), errors.INVALID_REQUEST)


def test_a_zone_cannot_overlap_another_accounts_zone(world, tenant):
    _, zone = tenant
    stranger = world.do(c.CreateAccount("stranger"))
    world.refused(c.CreateZone(stranger.id, "eu.example.com"), errors.ZONE_OVERLAPS)
    world.refused(c.CreateZone(stranger.id, "com.example.com"), errors.ZONE_OVERLAPS)
    world.do(c.CreateZone(stranger.id, "example.org"))


def test_a_sub_zone_may_not_strand_its_parents_associations(world, tenant):
    account, zone = tenant
    world.do(c.PutHostnameAssociations(zone.id, ["api.eu.example.com"]))
    err = world.refused(c.CreateZone(account.id, "eu.example.com"), errors.ZONE_OVERLAPS)
    assert "api.eu.example.com" in err.message
    world.do(c.PutHostnameAssociations(zone.id, []))
    assert world.do(c.CreateZone(account.id, "eu.example.com")).name == "eu.example.com"


def test_unknown_status_filter_and_non_text_csr_are_api_errors(world, tenant):
    _, zone = tenant
    world.refused(c.ListClientCertificates(zone.id, "bogus"), errors.INVALID_REQUEST)
    world.refused(c.CreateClientCertificate(zone.id, None), errors.INVALID_CSR)


def test_non_text_zone_name_filter_is_an_api_error(world):
    world.refused(c.ListZones(name=42), errors.INVALID_REQUEST)


def test_rules_with_a_bad_expression_are_refused_with_the_column(world, tenant):
    _, zone = tenant
    bad = Rule("not cf.tls_client_auth.cert_verified and http.host eq 5", Action.BLOCK)
    err = world.refused(c.PutCustomRules(zone.id, [bad]), errors.INVALID_RULE)
    assert err.message.startswith("rules[0].expression: column ")


# --- zone settings --------------------------------------------------------------------------


def test_set_forwarding_changes_only_the_options_named(world, tenant):
    _, zone = tenant
    world.do(c.PutZoneSettings(zone.id, ZoneSettings(
        forwarding=ForwardingOptions(rfc9440=True), strict_sni_host=True)))
    version = world.store.version
    settings = world.do(c.SetForwarding(zone.id, managed_transform=True))
    assert settings == ZoneSettings(forwarding=ForwardingOptions(
        managed_transform=True, rfc9440=True), strict_sni_host=True)
    assert world.store.version == version + 1
    assert world.do(c.SetForwarding(zone.id)) == settings  # nothing named: a read
    assert world.store.version == version + 1
    world.refused(c.SetForwarding(zone.id, access_headers="yes"), errors.INVALID_REQUEST)
    world.refused(c.SetForwarding("no-such-zone", rfc9440=False), errors.ZONE_NOT_FOUND)
