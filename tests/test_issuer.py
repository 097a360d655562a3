"""The test-PKI builder: keys, names, authorities, leaves and credentials, checked structurally."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl

import attrs
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edge.pki import upload
from edge.pki.issuer import (
    DEFAULT_NOT_AFTER,
    DEFAULT_NOT_BEFORE,
    Authority,
    Credential,
    KeyPool,
    default_pool,
    general_name,
    key_type_of,
    make_name,
    public_key_der,
    self_signed,
)

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH


def ext(certificate: x509.Certificate, kind):
    return certificate.extensions.get_extension_for_class(kind)


def has_ext(certificate: x509.Certificate, kind) -> bool:
    try:
        ext(certificate, kind)
    except x509.ExtensionNotFound:
        return False
    return True


@pytest.fixture(scope="module")
def root() -> Authority:
    return Authority.root(
        {"CN": "Corp Root", "O": "Corp"},
        not_before=NOW - dt.timedelta(days=365),
        not_after=NOW + dt.timedelta(days=3650),
    )


# --- keys -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key_type", "check"),
    [
        ("ec", lambda k: isinstance(k, ec.EllipticCurvePrivateKey) and k.curve.key_size == 256),
        ("ec384", lambda k: isinstance(k, ec.EllipticCurvePrivateKey) and k.curve.key_size == 384),
        ("rsa", lambda k: isinstance(k, rsa.RSAPrivateKey) and k.key_size == 2048),
        ("ed25519", lambda k: isinstance(k, ed25519.Ed25519PrivateKey)),
    ],
)
def test_pool_makes_each_key_type(key_type, check):
    key = default_pool().key(key_type, index=0)
    assert check(key)
    assert key_type_of(key) == key_type


def test_pool_round_robin_is_deterministic_and_bounded():
    pool = KeyPool(size=3)
    drawn = [public_key_der(pool.key("ec")) for _ in range(6)]
    assert drawn[:3] == drawn[3:]
    assert len(set(drawn)) == 3
    assert pool.key("ec", index=4) is pool.key("ec", index=1)


def test_pool_exclude_skips_a_key_and_refuses_when_nothing_is_left():
    pool = KeyPool(size=2)
    first = pool.key("ec", index=0)
    for _ in range(4):
        assert public_key_der(pool.key("ec", exclude=[first])) != public_key_der(first)
    with pytest.raises(ValueError, match="excluded"):
        pool.key("ec", exclude=[first, pool.key("ec", index=1)])


def test_pool_rejects_bad_arguments():
    with pytest.raises(ValueError, match="at least 2"):
        KeyPool(size=1)
    with pytest.raises(ValueError, match="unknown key type"):
        KeyPool().key("dsa")


# --- names ----------------------------------------------------------------------------------


def test_make_name_keeps_dict_order_and_repeats_lists():
    name = make_name({"C": "US", "O": "Corp", "OU": ["a", "b"], "CN": "x"})
    assert [a.oid for a in name] == [
        NameOID.COUNTRY_NAME,
        NameOID.ORGANIZATION_NAME,
        NameOID.ORGANIZATIONAL_UNIT_NAME,
        NameOID.ORGANIZATIONAL_UNIT_NAME,
        NameOID.COMMON_NAME,
    ]
    assert make_name("solo") == x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "solo")])
    assert make_name(name) is name
    with pytest.raises(ValueError, match="DN attribute"):
        make_name({"XX": "y"})


def test_general_name_classifies_strings():
    assert general_name("a.example") == x509.DNSName("a.example")
    assert general_name("me@example.com") == x509.RFC822Name("me@example.com")
    assert general_name("spiffe://t/x") == x509.UniformResourceIdentifier("spiffe://t/x")
    assert general_name("10.0.0.1") == x509.IPAddress(ipaddress.ip_address("10.0.0.1"))


# --- authorities ----------------------------------------------------------------------------


def test_root_is_a_self_signed_ca(root):
    cert = root.certificate
    assert cert.subject == cert.issuer == make_name({"CN": "Corp Root", "O": "Corp"})
    assert root.is_root and root.chain == ()
    cert.verify_directly_issued_by(cert)
    constraints = ext(cert, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length is None
    usage = ext(cert, x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.digital_signature
    ski = ext(cert, x509.SubjectKeyIdentifier).value.digest
    assert ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier == ski
    assert cert.not_valid_before_utc == NOW - dt.timedelta(days=365)
    assert cert.not_valid_after_utc == NOW + dt.timedelta(days=3650)


def test_root_pem_is_accepted_as_a_ca_upload(root):
    bundle = upload.parse_bundle(root.certificate_pem)
    upload.check_bundle(bundle, ca=True)
    assert bundle.first == root.certificate
    assert root.certificate_der == bundle.ders[0]


def test_root_defaults_and_path_length():
    ca = Authority.root(path_length=0)
    assert ext(ca.certificate, x509.BasicConstraints).value.path_length == 0
    assert ca.certificate.not_valid_before_utc == DEFAULT_NOT_BEFORE
    assert ca.certificate.not_valid_after_utc == DEFAULT_NOT_AFTER


def test_sub_ca_chain_and_linkage(root):
    mid = root.sub_ca("Corp Issuing 1")
    low = mid.sub_ca("Corp Issuing 2", path_length=0)
    assert mid.certificate.issuer == root.subject
    mid.certificate.verify_directly_issued_by(root.certificate)
    low.certificate.verify_directly_issued_by(mid.certificate)
    assert low.chain == (low.certificate, mid.certificate)
    assert mid.chain == (mid.certificate,)
    parent_ski = ext(root.certificate, x509.SubjectKeyIdentifier).value.digest
    assert ext(mid.certificate, x509.AuthorityKeyIdentifier).value.key_identifier == parent_ski
    assert mid.certificate.not_valid_after_utc == root.certificate.not_valid_after_utc
    assert ext(low.certificate, x509.BasicConstraints).value.path_length == 0
    assert public_key_der(mid.key) != public_key_der(root.key)
    credential = low.issue()
    assert credential.chain == (low.certificate, mid.certificate)
    credential.leaf.verify_directly_issued_by(low.certificate)


def test_authority_equality_follows_the_certificate(root):
    twin = Authority(root.certificate, root.key)
    assert twin == root and hash(twin) == hash(root)
    assert root.sub_ca("x") != root


# --- leaves ---------------------------------------------------------------------------------


def test_leaf_defaults(root):
    credential = root.issue()
    leaf = credential.leaf
    leaf.verify_directly_issued_by(root.certificate)
    assert leaf.subject == make_name("client")
    assert credential.chain == ()
    constraints = ext(leaf, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca is False
    usage = ext(leaf, x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign and not usage.key_encipherment
    assert list(ext(leaf, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not has_ext(leaf, x509.SubjectAlternativeName)
    assert has_ext(leaf, x509.SubjectKeyIdentifier) and has_ext(leaf, x509.AuthorityKeyIdentifier)
    assert leaf.not_valid_after_utc == root.certificate.not_valid_after_utc
    assert public_key_der(credential.key) != public_key_der(root.key)


@pytest.mark.parametrize(
    ("eku", "oids"),
    [
        (["clientAuth"], [ExtendedKeyUsageOID.CLIENT_AUTH]),
        (["serverAuth"], [ExtendedKeyUsageOID.SERVER_AUTH]),
        (["clientAuth", "serverAuth"], [CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]),
        (["any"], [ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE]),
    ],
)
def test_leaf_eku_choices(root, eku, oids):
    assert list(ext(root.issue(eku=eku).leaf, x509.ExtendedKeyUsage).value) == oids


def test_leaf_knobs_remove_extensions(root):
    leaf = root.issue(eku=None, key_usage=None, ca=None, ski=False, aki=False).leaf
    for kind in (x509.ExtendedKeyUsage, x509.KeyUsage, x509.BasicConstraints,
                 x509.SubjectKeyIdentifier, x509.AuthorityKeyIdentifier):
        assert not has_ext(leaf, kind), kind
    leaf.verify_directly_issued_by(root.certificate)


def test_leaf_knobs_set_values(root):
    credential = root.issue(
        {"CN": "svc", "O": "Corp"},
        sans=["svc.example", "svc@example.com", "spiffe://corp/svc"],
        not_before=NOW,
        not_after=NOW + dt.timedelta(hours=1),
        key_usage=["digitalSignature", "keyEncipherment"],
        ca=True,
        serial=4242,
    )
    leaf = credential.leaf
    assert leaf.serial_number == 4242
    assert leaf.subject == make_name({"CN": "svc", "O": "Corp"})
    assert leaf.not_valid_before_utc == NOW
    assert leaf.not_valid_after_utc == NOW + dt.timedelta(hours=1)
    assert ext(leaf, x509.BasicConstraints).value.ca is True
    assert ext(leaf, x509.KeyUsage).value.key_encipherment
    sans = ext(leaf, x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["svc.example"]
    assert sans.get_values_for_type(x509.RFC822Name) == ["svc@example.com"]
    assert sans.get_values_for_type(x509.UniformResourceIdentifier) == ["spiffe://corp/svc"]


def test_random_serials_differ(root):
    assert root.issue().leaf.serial_number != root.issue().leaf.serial_number


@pytest.mark.parametrize("key_type", ["ec", "ec384", "rsa", "ed25519"])
def test_each_key_type_issues_and_signs(key_type):
    ca = Authority.root(f"{key_type} root", key_type=key_type)
    credential = ca.issue(key_type=key_type)
    assert key_type_of(ca.key) == key_type == key_type_of(credential.key)
    credential.leaf.verify_directly_issued_by(ca.certificate)
    expected_hash = {"ec": hashes.SHA256, "ec384": hashes.SHA384, "rsa": hashes.SHA256}
    algorithm = credential.leaf.signature_hash_algorithm
    if key_type == "ed25519":
        assert algorithm is None
    else:
        assert isinstance(algorithm, expected_hash[key_type])


def test_naive_datetimes_are_refused(root):
    with pytest.raises(ValueError, match="timezone-aware"):
        root.issue(not_before=dt.datetime(2026, 1, 1))


def test_self_signed_leaf():
    credential = self_signed({"CN": "me"}, sans=["me.example"])
    leaf = credential.leaf
    assert leaf.issuer == leaf.subject
    leaf.verify_directly_issued_by(leaf)
    assert ext(leaf, x509.BasicConstraints).value.ca is False
    assert credential.chain == ()


def test_wrong_issuer_does_not_verify(root):
    other = Authority.root("Other Root", exclude_keys=[root.key])
    with pytest.raises((ValueError, InvalidSignature)):
        other.issue().leaf.verify_directly_issued_by(root.certificate)


# --- credentials ----------------------------------------------------------------------------


def test_credential_pems_and_der(root):
    credential = root.sub_ca("Mid").issue()
    certificates = x509.load_pem_x509_certificates(credential.cert_chain_pem())
    assert certificates == [credential.leaf, *credential.chain]
    key = serialization.load_pem_private_key(credential.key_pem(), password=None)
    assert public_key_der(key) == public_key_der(credential.key)
    assert x509.load_der_x509_certificate(credential.leaf_der) == credential.leaf
    assert credential.leaf_pem.startswith(b"-----BEGIN CERTIFICATE-----")


def test_credential_write(root, tmp_path):
    credential = root.issue()
    cert_path, key_path = credential.write(tmp_path, stem="c1")
    assert cert_path.read_bytes() == credential.cert_chain_pem()
    assert key_path.read_bytes() == credential.key_pem()
    assert key_path.stat().st_mode & 0o777 == 0o600


def test_credential_configure_loads_and_checks_the_key(root):
    credential = root.issue()
    credential.configure(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    mismatched = attrs.evolve(credential, key=root.key)
    with pytest.raises(ssl.SSLError):
        mismatched.configure(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))


def test_credential_equality_ignores_key_object(root):
    credential = root.issue()
    assert Credential(credential.leaf, credential.key) == credential
