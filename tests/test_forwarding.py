"""Which certificate headers reach the origin, and that a client can never forge one."""

from __future__ import annotations

import base64
import functools
import hashlib
import itertools

import attrs
import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given
from hypothesis import strategies as st

from edge.node import forwarding
from edge.node.forwarding import ForwardingOptions, origin_headers
from edge.node.reasons import Reason
from edge.node.verdict import NOT_REQUESTED, ClientAuthFields, Verdict, certificate_fields
from edge.pki.issuer import Authority

LEAF_SERIAL = 0x0A1B2C
ISSUER_SERIAL = 0x7F00
ALL_ON = ForwardingOptions(managed_transform=True, access_headers=True, rfc9440=True)


# --- certificates and verdicts ----------------------------------------------------------------


@functools.cache
def _pki():
    root = Authority.root({"O": "Tenant", "CN": "Tenant Root"})
    issuing = root.sub_ca({"CN": "Tenant Issuing"}, serial=ISSUER_SERIAL)
    alice = issuing.issue({"CN": "alice", "O": "Example"}, serial=LEAF_SERIAL)
    return root, issuing, alice


def _der(certificate) -> bytes:
    return certificate.public_bytes(Encoding.DER)


@functools.cache
def _big_leaf_der() -> bytes:
    root = _pki()[0]
    sans = [f"host-{n:04d}.a-rather-long-subdomain.example.com" for n in range(300)]
    der = root.issue("big", sans=sans).leaf_der
    assert len(der) > 10 * 1024
    return der


def _verdict(
    leaf_der: bytes, sent: tuple[bytes, ...], *, verified: bool, revoked: bool = False
) -> Verdict:
    fields = certificate_fields(leaf_der, sent, (), verified=verified, revoked=revoked)
    if not verified:
        return Verdict(True, True, False, False, Reason.UNKNOWN_CA, 20,
                       "unable to get local issuer certificate", 0, None, fields)
    reason = Reason.REVOKED if revoked else Reason.OK
    return Verdict(True, True, True, revoked, reason, 0, "ok", -1, "ca-1", fields)


def _alice_verdict(kind: str) -> Verdict:
    _, issuing, alice = _pki()
    sent = (_der(issuing.certificate),)
    if kind == "verified":
        return _verdict(alice.leaf_der, sent, verified=True)
    if kind == "unverified":
        return _verdict(alice.leaf_der, sent, verified=False)
    if kind == "revoked":
        return _verdict(alice.leaf_der, sent, verified=True, revoked=True)
    assert kind == "none"
    return attrs.evolve(NOT_REQUESTED, requested=True)


KINDS = ("verified", "unverified", "revoked", "none")


def _b64(der: bytes) -> str:
    return base64.b64encode(der).decode("ascii")


def _names(headers) -> list[str]:
    return [name.lower() for name, _ in headers]


# --- the header list ------------------------------------------------------------------------


def test_managed_transform_list_is_cloudflares_17_headers():
    names = [name for name, _ in forwarding.MANAGED_TRANSFORM_HEADERS]
    assert len(names) == len(set(names)) == 17
    assert all(name.startswith("cf-cert-") and name == name.lower() for name in names)
    assert {"cf-cert-sha256", "cf-cert-sha1"} <= set(names)
    fields = attrs.fields_dict(ClientAuthFields)
    assert {attribute for _, attribute in forwarding.MANAGED_TRANSFORM_HEADERS} <= set(fields)


def test_defaults_forward_nothing():
    assert ForwardingOptions() == forwarding.NO_FORWARDING
    assert not any(attrs.astuple(ForwardingOptions()))
    client = [("Host", "api.example.com"), ("Accept", "*/*")]
    assert origin_headers(client, _alice_verdict("verified"), ForwardingOptions()) == tuple(client)


# --- every option against every verdict ------------------------------------------------------

_OPTION_SETS = [
    ForwardingOptions(managed_transform=m, access_headers=a, rfc9440=r)
    for m, a, r in itertools.product((False, True), repeat=3)
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("options", _OPTION_SETS, ids=repr)
def test_which_headers_each_option_adds(kind, options):
    verdict = _alice_verdict(kind)
    got = set(_names(forwarding.edge_headers(verdict, options)))
    expected: set[str] = set()
    if options.managed_transform:
        if kind == "none":
            expected |= {"cf-cert-presented", "cf-cert-verified", "cf-cert-revoked"}
        else:
            expected |= {name for name, _ in forwarding.MANAGED_TRANSFORM_HEADERS}
    if options.access_headers and kind == "verified":
        expected |= {"cf-client-cert-der-base64", "cf-client-cert-sha256"}
    if options.rfc9440 and kind == "verified":
        expected |= {"client-cert", "client-cert-chain"}
    assert got == expected


# --- exact values -----------------------------------------------------------------------------


def test_managed_transform_values_for_a_verified_certificate():
    _, issuing, alice = _pki()
    der = alice.leaf_der
    headers = forwarding.edge_headers(
        _alice_verdict("verified"), ForwardingOptions(managed_transform=True)
    )
    got = dict(headers)
    assert len(headers) == len(got) == 17
    assert got == {
        "cf-cert-revoked": "false",
        "cf-cert-verified": "true",
        "cf-cert-presented": "true",
        "cf-cert-issuer-dn": "CN=Tenant Issuing",
        "cf-cert-subject-dn": "O=Example,CN=alice",
        "cf-cert-issuer-dn-rfc2253": "CN=Tenant Issuing",
        "cf-cert-subject-dn-rfc2253": "O=Example,CN=alice",
        "cf-cert-issuer-dn-legacy": "/CN=Tenant Issuing",
        "cf-cert-subject-dn-legacy": "/CN=alice/O=Example",
        "cf-cert-serial": "0A1B2C",
        "cf-cert-issuer-serial": "7F00",
        "cf-cert-sha256": hashlib.sha256(der).hexdigest(),
        "cf-cert-sha1": hashlib.sha1(der).hexdigest(),
        "cf-cert-not-before": "Jan  1 00:00:00 2000 GMT",
        "cf-cert-not-after": "Dec 31 23:59:59 2099 GMT",
        "cf-cert-ski": got["cf-cert-ski"],
        "cf-cert-issuer-ski": got["cf-cert-issuer-ski"],
    }
    assert len(got["cf-cert-ski"]) == 40 and got["cf-cert-ski"] == got["cf-cert-ski"].upper()
    assert got["cf-cert-issuer-ski"] != got["cf-cert-ski"]
    assert [name for name, _ in headers] == [n for n, _ in forwarding.MANAGED_TRANSFORM_HEADERS]


@pytest.mark.parametrize(
    ("kind", "flags"),
    [
        ("unverified", ("true", "false", "false")),
        ("revoked", ("true", "true", "true")),
        ("none", ("false", "false", "false")),
    ],
)
def test_managed_transform_booleans(kind, flags):
    options = ForwardingOptions(managed_transform=True)
    got = dict(forwarding.edge_headers(_alice_verdict(kind), options))
    presented, verified, revoked = flags
    assert (got["cf-cert-presented"], got["cf-cert-verified"], got["cf-cert-revoked"]) == (
        presented, verified, revoked,
    )
    if kind == "none":
        assert len(got) == 3  # empty string fields are not sent, like a Transform Rule
    else:
        assert got["cf-cert-subject-dn"] == "O=Example,CN=alice"  # described even if untrusted


def test_managed_transform_escapes_control_characters_from_the_certificate():
    root = _pki()[0]
    leaf = root.issue({"CN": "evil\r\nClient-Cert: :Zm9yZ2Vk:", "O": "Zürich"}).leaf_der
    verdict = _verdict(leaf, (), verified=False)
    got = dict(forwarding.edge_headers(verdict, ForwardingOptions(managed_transform=True)))
    for value in got.values():
        assert all(" " <= ch <= "~" for ch in value), value
    assert got["cf-cert-subject-dn-legacy"] == (
        "/CN=evil\\u000d\\u000aClient-Cert: :Zm9yZ2Vk:/O=Z\\u00c3\\u00bcrich"
    )


def test_access_headers_exact_values():
    alice = _pki()[2]
    options = ForwardingOptions(access_headers=True)
    got = forwarding.edge_headers(_alice_verdict("verified"), options)
    assert got == (
        ("Cf-Client-Cert-Der-Base64", _b64(alice.leaf_der)),
        ("Cf-Client-Cert-Sha256", hashlib.sha256(alice.leaf_der).hexdigest()),
    )
    assert ":" not in got[0][1]
    assert base64.b64decode(got[0][1], validate=True) == alice.leaf_der
    # Passing the DER gives the same answer.
    assert got == forwarding.access_headers(_alice_verdict("verified"), alice.leaf_der)


@pytest.mark.parametrize("kind", ["unverified", "revoked", "none"])
def test_access_headers_need_an_authenticated_certificate(kind):
    alice = _pki()[2]
    leaf_der = None if kind == "none" else alice.leaf_der
    assert forwarding.access_headers(_alice_verdict(kind), leaf_der) == ()


def test_access_headers_for_a_leaf_above_10_kib_need_the_der():
    big = _big_leaf_der()
    verdict = _verdict(big, (), verified=True)
    assert verdict.fields.cert_rfc9440 == "" and verdict.fields.cert_rfc9440_too_large
    options = ForwardingOptions(access_headers=True)
    assert forwarding.edge_headers(verdict, options) == ()  # never an empty DER header
    assert forwarding.edge_headers(verdict, options, big) == (
        ("Cf-Client-Cert-Der-Base64", _b64(big)),
        ("Cf-Client-Cert-Sha256", hashlib.sha256(big).hexdigest()),
    )


def test_access_headers_refuse_a_der_that_is_not_the_verdicts():
    with pytest.raises(ValueError, match="not the certificate"):
        forwarding.access_headers(_alice_verdict("verified"), _big_leaf_der())


def test_rfc9440_exact_values():
    _, issuing, alice = _pki()
    got = forwarding.edge_headers(_alice_verdict("verified"), ForwardingOptions(rfc9440=True))
    assert got == (
        ("Client-Cert", f":{_b64(alice.leaf_der)}:"),
        ("Client-Cert-Chain", f":{_b64(_der(issuing.certificate))}:"),
    )


def test_rfc9440_chain_keeps_the_clients_order_and_is_left_out_when_empty():
    root, issuing, alice = _pki()
    sent = (_der(issuing.certificate), _der(root.certificate))
    got = dict(forwarding.rfc9440_headers(_verdict(alice.leaf_der, sent, verified=True)))
    assert got["Client-Cert-Chain"] == f":{_b64(sent[0])}:,:{_b64(sent[1])}:"
    direct = root.issue("bob").leaf_der
    only_leaf = forwarding.rfc9440_headers(_verdict(direct, (), verified=True))
    assert _names(only_leaf) == ["client-cert"]


def test_rfc9440_respects_the_size_limits():
    big = _big_leaf_der()
    _, issuing, alice = _pki()
    # Leaf above 10 KiB: no Client-Cert, and so no chain either.
    too_big_leaf = _verdict(big, (_der(issuing.certificate),), verified=True)
    assert forwarding.rfc9440_headers(too_big_leaf) == ()
    # Chain above 16 KiB: the leaf alone.
    too_big_chain = _verdict(alice.leaf_der, (big, big), verified=True)
    assert too_big_chain.fields.cert_chain_rfc9440_too_large
    assert forwarding.rfc9440_headers(too_big_chain) == (
        ("Client-Cert", f":{_b64(alice.leaf_der)}:"),
    )


@pytest.mark.parametrize("kind", ["unverified", "revoked", "none"])
def test_rfc9440_only_for_a_trusted_certificate(kind):
    verdict = _alice_verdict(kind)
    if kind != "none":
        assert verdict.fields.cert_rfc9440  # the field is filled; the header is not
    assert forwarding.rfc9440_headers(verdict) == ()


# --- spoofing -------------------------------------------------------------------------------

_FORGED = [
    ("CLIENT-CERT", ":Zm9yZ2Vk:"),
    ("client-cert-chain", ":Zm9yZ2Vk:"),
    ("Cf-Client-Cert-Der-Base64", "Zm9yZ2Vk"),
    ("cf-client-cert-SHA256", "00" * 32),
    ("Cf-Cert-Verified", "true"),
    ("cf-cert-revoked", "false"),
    ("cf-cert-fingerprint-sha256", "00" * 32),  # the older documented name
    ("cf-cert-anything-new", "x"),
    ("Client_Cert", ":Zm9yZ2Vk:"),  # CGI/WSGI origins read this as CLIENT_CERT
    ("cf_cert_verified", "true"),
    (" client-cert", ":Zm9yZ2Vk:"),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("options", [ForwardingOptions(), ALL_ON], ids=["off", "all-on"])
def test_forged_headers_are_always_removed(kind, options):
    client = [("Host", "api.example.com"), *_FORGED, ("X-Trace", "1")]
    verdict = _alice_verdict(kind)
    out = origin_headers(client, verdict, options)
    assert out[:2] == (("Host", "api.example.com"), ("X-Trace", "1"))
    assert out[2:] == forwarding.edge_headers(verdict, options)
    assert not any(value in {":Zm9yZ2Vk:", "Zm9yZ2Vk", "00" * 32, "x"} for _, value in out)


def test_similar_but_unprotected_names_pass():
    client = [("X-Client-Cert", "a"), ("Client-Certificate", "b"), ("cf-certx", "c"),
              ("cf-ray", "d"), ("Client-Cert-Chain-Extra", "e")]
    assert origin_headers(client, _alice_verdict("verified"), ALL_ON)[:5] == tuple(client)


_PROTECTED = sorted(forwarding.PROTECTED_NAMES) + ["cf-cert-fingerprint-sha1", "cf-cert-x"]


@st.composite
def _case_variant(draw, name: str) -> str:
    chars = [
        "_" if ch == "-" and draw(st.booleans()) else (ch.upper() if draw(st.booleans()) else ch)
        for ch in name
    ]
    return "".join(chars)


_protected_names = st.sampled_from(_PROTECTED).flatmap(_case_variant)
_prefixed_names = st.text("abcXYZ-_019", max_size=12).map(lambda s: "cf-cert-" + s).flatmap(
    _case_variant
)
_other_names = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1,
    max_size=20,
).filter(lambda name: not forwarding.is_protected(name))
_names_mixed = st.one_of(_protected_names, _prefixed_names, _other_names)
_header = st.tuples(_names_mixed, st.text(max_size=30))


@given(
    client=st.lists(_header, max_size=25),
    kind=st.sampled_from(KINDS),
    flags=st.tuples(st.booleans(), st.booleans(), st.booleans()),
)
def test_no_client_header_the_edge_can_set_ever_survives(client, kind, flags):
    options = ForwardingOptions(*flags)
    verdict = _alice_verdict(kind)
    out = origin_headers(client, verdict, options)
    edge = forwarding.edge_headers(verdict, options)
    # Every unprotected client header survives, in order, and comes first.
    kept = [(n, v) for n, v in client if not forwarding.is_protected(n)]
    assert list(out[: len(kept)]) == kept
    assert out[len(kept):] == edge
    # A protected name appears only as the edge set it, and only as often as the edge set it.
    protected_out = [(n, v) for n, v in out if forwarding.is_protected(n)]
    assert protected_out == list(edge)
    for name, _ in client:
        normalised = name.strip(" \t").lower().replace("_", "-")
        if normalised.startswith("cf-cert-") or normalised in forwarding.PROTECTED_NAMES:
            assert name not in [n for n, _ in kept]
