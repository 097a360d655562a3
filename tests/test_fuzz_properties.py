"""Properties of certificate validation over generated chains (edge.fuzz), and robustness of the
parsers that take customer input.

Run quick under the `ci` Hypothesis profile (the default); for a long run:
    HYPOTHESIS_PROFILE=fuzz python -m pytest tests/test_fuzz_properties.py
The pure-oracle properties cost a few ms per example, so they take 4x the profile's examples;
the ones through a real edge node cost ~25 ms per example (two handshakes on a MockClock) and
take the profile's count.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import math
import re
import ssl
from pathlib import Path

import pytest
import trio
import trio.testing
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import assume, given, note, settings
from hypothesis import strategies as st

from edge.clients import client_context, visit
from edge.control import commands as c
from edge.control.errors import ApiError
from edge.control.records import Action, Rule
from edge.control.store import apply, new_store
from edge.deployment import Deployment
from edge.events import Decision, TlsOutcome
from edge.fuzz import strategies as cs
from edge.fuzz.chains import (
    MAX_DEPTH,
    ChainSpec,
    applicable,
    build_case,
    expected_reason,
    knob_values,
    targets,
    warm_pool,
)
from edge.fuzz.oracle import (
    FAMILIES,
    UNCLASSIFIED,
    compare,
    edge_anchor_order,
    edge_verdict,
    load_case,
    pyca_verdict,
    replay,
    save_case,
)
from edge.node.identity import EdgeIdentity
from edge.node.origin import Origin
from edge.node.reasons import Reason
from edge.node.trust import server_context
from edge.node.verify import verify
from edge.pki import openssl, upload
from edge.rules import FIELD_TYPES, MAX_DEPTH as RULES_MAX_DEPTH, RuleSyntaxError, compile_expression
import tls_pairs
from edge_world import RecordingCollector

DOCS = Path(__file__).resolve().parent.parent / "docs" / "validation-differences.md"

# Cheap properties (pure functions, ~5 ms an example) run 4x the profile's examples.
cheap = settings(max_examples=4 * settings.default.max_examples)

warm_pool()  # every pooled key made once, so no example pays for an RSA key generation


# --- 1 and 5: through a real edge node ------------------------------------------------------

LOG_HOST = "log.example.com"
BLOCK_HOST = "block.example.com"
UNVERIFIED = "not cf.tls_client_auth.cert_verified"
RULES = (
    Rule(f'http.host eq "{LOG_HOST}" and {UNVERIFIED}', Action.LOG, "rehearse"),
    Rule(f'http.host eq "{BLOCK_HOST}" and {UNVERIFIED}', Action.BLOCK, "enforce"),
)


@functools.cache
def identity() -> EdgeIdentity:
    """The edge's server identity, shared by every example (a trustme CA costs ~10 ms)."""
    return EdgeIdentity(names=("example.com", "*.example.com"))


def anchors_pem(case) -> str:
    return "".join(
        x509.load_der_x509_certificate(d).public_bytes(serialization.Encoding.PEM).decode()
        for d in case.anchors
    )


def uploadable(case) -> bool:
    """Can a tenant upload these anchors as a CA (ca: true) at all? The control plane refuses
    Ed25519 signatures and CA certificates without BasicConstraints cA=TRUE, so no hostname can
    trust such anchors."""
    try:
        upload.check_bundle(upload.parse_bundle(anchors_pem(case)), ca=True)
    except upload.UploadRejected:
        return False
    return True


class EdgeRun:
    """One deployment: zone example.com, the case's anchors on a log and a block hostname, a log
    rule and a block rule on `not cf.tls_client_auth.cert_verified`, one node, a recording
    origin; simulated time starts at the case's validation time."""

    def __init__(self, case, hosts) -> None:
        self.case, self.hosts = case, hosts
        self.results = {}
        self.collector = RecordingCollector()
        self.origin = Origin(record=True)

    async def run(self) -> EdgeRun:
        openssl.ERR_clear_error()  # nothing a previous example left on OpenSSL's queue
        async with trio.open_nursery() as nursery:
            deployment = Deployment(start=self.case.at, collector=self.collector,
                                    identity=identity())
            await deployment.start_in(nursery)
            plane = deployment.plane
            account = await plane.submit(c.CreateAccount("acme"))
            zone = await plane.submit(c.CreateZone(account.id, "example.com"))
            ca = await plane.submit(c.UploadCaCertificate(account.id, anchors_pem(self.case)))
            await plane.submit(c.PutHostnameAssociations(zone.id, list(self.hosts), ca.id))
            await plane.submit(c.PutCustomRules(zone.id, RULES))
            await deployment.add_node("n1", origin=self.origin)
            await deployment.settle()
            credential = self.case.credential()
            for host in self.hosts:
                context = client_context(identity().configure_trust, credential)
                self.results[host] = await visit(
                    lambda: deployment.network.connect("n1"), context, sni=host, paths=("/",)
                )
            await trio.sleep(1)  # let the node and the collector account for everything
            nursery.cancel_scope.cancel()
        openssl.ERR_clear_error()
        return self

    def connection(self, host):
        return self.collector.connection(self.results[host].conn_id)

    def requests(self, host):
        return self.collector.requests(self.results[host].conn_id)

    def reached_origin(self, host) -> bool:
        return any(r.conn_id == self.results[host].conn_id for r in self.origin.received)


def through_edge(case, hosts=(LOG_HOST, BLOCK_HOST)) -> EdgeRun:
    return trio.run(EdgeRun(case, hosts).run, clock=trio.testing.MockClock(autojump_threshold=0))


def _rfc9440(ders) -> str:
    return ",".join(":" + base64.b64encode(d).decode() + ":" for d in ders)


@given(case=cs.chains())
def test_handshake_verdict_equals_standalone_verify(case):
    """DESIGN.md hard point 4 over generated chains: the verdict of a real handshake at an edge
    node (SNI -> trust set, verify callback, simulated time) is the standalone verify's."""
    assume(uploadable(case))
    note(case.describe())
    run = through_edge(case, hosts=(LOG_HOST,))
    assert run.results[LOG_HOST].outcome is TlsOutcome.OK  # never fails on the certificate
    event = run.connection(LOG_HOST)
    assert (event.outcome, event.error) == (TlsOutcome.OK, "")
    assert math.floor(event.at.timestamp()) == math.floor(case.at.timestamp())
    fields = event.verdict.fields
    assert fields.cert_rfc9440 == _rfc9440([case.leaf])  # the client sent what the case says
    assert fields.cert_chain_rfc9440 == _rfc9440(case.intermediates)
    anchors = edge_anchor_order(case.anchors)  # the order the node's trust set loads them in
    verdict, reason = verify(case.leaf, case.intermediates, anchors, event.at)
    assert event.verdict.reason is reason
    assert (event.verdict.openssl_code, event.verdict.depth) == (verdict.code, verdict.depth)
    assert event.verdict.verified is verdict.ok


def same_dn_roots_out_of_the_nodes_order():
    """Two tenants' roots with one DN on a hostname, uploaded issuer first, and a leaf without
    AKI under the root that a node loads SECOND (trust sets are in fingerprint order)."""
    tenant, other = build_case(
        ChainSpec(deviations=(("chain.anchor", "plus_other_same_dn"),))
    ).anchors
    if edge_anchor_order([tenant, other])[0] == other:  # the tenant's root comes second
        deviations = (("chain.anchor", "plus_other_same_dn"), ("leaf.aki", "absent"))
    else:  # the other tenant's root comes second: issue under it, upload it first
        deviations = (
            ("chain.issuer", "other_tenant_same_dn"), ("chain.anchor", "plus_other_first"),
            ("leaf.aki", "absent"),
        )
    return build_case(ChainSpec(deviations=deviations))


def test_the_node_verifies_same_dn_anchors_in_fingerprint_order_not_upload_order():
    case = same_dn_roots_out_of_the_nodes_order()
    event = through_edge(case, hosts=(LOG_HOST,)).connection(LOG_HOST)
    assert event.verdict.reason is Reason.BAD_SIGNATURE  # OpenSSL took the other root
    assert edge_verdict(case).reason is Reason.BAD_SIGNATURE
    assert pyca_verdict(case).verified is False  # pyca refuses the leaf without AKI anyway


def test_standalone_verify_in_upload_order_equals_the_handshake():
    case = same_dn_roots_out_of_the_nodes_order()
    event = through_edge(case, hosts=(LOG_HOST,)).connection(LOG_HOST)
    upload_order, _ = verify(case.leaf, case.intermediates, case.anchors, event.at)
    assert upload_order.ok is event.verdict.verified


@given(case=cs.chains())
def test_log_never_blocks_and_block_never_lets_an_unverified_request_through(case):
    assume(uploadable(case))
    note(case.describe())
    run = through_edge(case)
    verified = run.connection(LOG_HOST).verdict.verified
    assert run.connection(BLOCK_HOST).verdict.verified is verified  # same trust, same verdict
    if verified:
        assert run.results[BLOCK_HOST].statuses == (200,) and run.reached_origin(BLOCK_HOST)
    else:  # safety: nothing unverified reaches the origin
        assert not run.reached_origin(BLOCK_HOST)
        assert run.results[BLOCK_HOST].statuses in ((403,), ())
        assert {e.decision for e in run.requests(BLOCK_HOST)} <= {Decision.BLOCK}
    assert run.results[LOG_HOST].statuses == (200,)  # log mode never blocks
    assert run.reached_origin(LOG_HOST)
    (logged,) = run.requests(LOG_HOST)
    assert logged.decision is (Decision.ALLOW if verified else Decision.LOG)
    assert logged.would_block is (not verified)
    (enforced,) = run.requests(BLOCK_HOST)
    assert enforced.decision is (Decision.ALLOW if verified else Decision.BLOCK)
    assert run.results[BLOCK_HOST].statuses == ((200,) if verified else (403,))


def test_a_bad_signature_leaves_no_error_for_the_next_read():
    good_case = build_case(ChainSpec())
    bad_case = build_case(ChainSpec(deviations=(("chain.issuer", "impostor"), ("leaf.aki", "absent"))))

    def server(case):
        return server_context(
            tls_pairs.server_leaf().configure_cert, trust_ders=edge_anchor_order(case.anchors)
        )

    def client(case):
        credential = case.credential()
        return tls_pairs.client_context(
            credential.cert_chain_pem().decode(), credential.key_pem().decode()
        )

    openssl.ERR_clear_error()
    good = tls_pairs.handshake(client(good_case), server(good_case), at_time=good_case.at)
    bad = tls_pairs.handshake(client(bad_case), server(bad_case), at_time=bad_case.at)
    assert good.verification.verdict.ok and bad.verification.verdict.code == 7
    try:
        with pytest.raises(ssl.SSLWantReadError):  # nothing to read yet, and nothing wrong
            good.server.read(1)
    finally:
        openssl.ERR_clear_error()


# --- 2: tenant isolation ----------------------------------------------------------------------


@cheap
@given(case=cs.foreign_chains())
def test_a_chain_under_another_tenants_ca_never_verifies(case):
    """Whatever the names (the other tenant's CA and intermediates may carry byte-for-byte the
    tenant's DNs; a signer may carry the issuer's name), a chain not issued under an anchor's key
    never verifies: neither at the edge nor for pyca."""
    note(case.describe())
    assert case.foreign
    assert not edge_verdict(case).verified
    assert not pyca_verdict(case).verified


@given(case=cs.foreign_chains(force={"chain.issuer": ("other_tenant_same_dn",)}, max_deviations=1))
def test_identical_dn_tenants_stay_apart_at_a_real_edge(case):
    assume(uploadable(case))
    run = through_edge(case)
    for host in (LOG_HOST, BLOCK_HOST):
        assert not run.connection(host).verdict.verified
        assert run.connection(host).verdict.ca_id is None
    assert not run.reached_origin(BLOCK_HOST)


# --- 3: the generator's model -----------------------------------------------------------------


@cheap
@given(case=cs.chains(max_deviations=1))
def test_the_edge_gives_the_reason_the_model_expects(case):
    assume(case.expected is not None)
    note(case.describe())
    assert edge_verdict(case).reason is case.expected


def test_the_model_knows_every_single_deviation_at_every_depth():
    """Exhaustive over one deviation (about 600 chains): the model has an answer for each, and it
    is the edge's."""
    wrong = []
    for depth in range(1, MAX_DEPTH + 1):
        for target in targets(depth):
            for value in knob_values(target):
                if not applicable(depth, target, value):
                    continue
                case = build_case(ChainSpec(depth=depth, deviations=((target, value),)))
                assert case.expected is not None, case.describe()
                if edge_verdict(case).reason is not case.expected:
                    wrong.append((case.describe(), case.expected, edge_verdict(case).reason))
    assert wrong == []


def test_a_chain_longer_than_the_edges_limit_is_too_deep():
    case = build_case(ChainSpec(depth=MAX_DEPTH + 1))
    assert case.expected is Reason.CHAIN_TOO_DEEP
    assert edge_verdict(case).reason is Reason.CHAIN_TOO_DEEP
    assert expected_reason(case.spec, max_chain_depth=MAX_DEPTH) is Reason.OK
    assert edge_verdict(case, max_chain_depth=MAX_DEPTH).reason is Reason.OK


# --- 4: differential against pyca/cryptography ------------------------------------------------


@pytest.fixture(scope="module")
def findings(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz-findings")


@cheap
@given(case=cs.chains())
def test_edge_and_pyca_agree_except_in_documented_families(case, findings):
    comparison = compare(case)
    note(f"{case.describe()}: edge {comparison.edge}, pyca {comparison.pyca}")
    if comparison.family == UNCLASSIFIED:
        saved = save_case(findings / f"case-{abs(hash(case.leaf)):x}", comparison)
        pytest.fail(f"unclassified disagreement, saved to {saved}: {case.describe()}")
    assert comparison.family is None or comparison.family in FAMILIES
    if case.foreign:
        assert not comparison.edge.verified and not comparison.pyca.verified
    assert not comparison.pyca.crashed, comparison.pyca.error


@cheap
@given(case=cs.valid_chains())
def test_valid_chains_verify_everywhere(case):
    comparison = compare(case)
    assert comparison.edge.verified and comparison.pyca.verified, case.describe()


@pytest.mark.parametrize("name", list(FAMILIES))
def test_each_family_example_is_classified_as_that_family(name):
    comparison = compare(build_case(FAMILIES[name].example))
    assert comparison.family == name
    stricter = FAMILIES[name].stricter
    assert comparison.edge.verified is (stricter == "pyca")
    assert comparison.pyca.verified is (stricter == "edge")


def test_every_family_is_documented_with_its_example():
    text = DOCS.read_text()
    headings = re.findall(r"^### `([a-z0-9-]+)`", text, flags=re.MULTILINE)
    assert sorted(headings) == sorted(FAMILIES)
    for family in FAMILIES.values():
        assert family.example.describe() in text, family.name


def test_a_saved_case_replays_to_the_same_verdicts(tmp_path):
    comparison = compare(build_case(FAMILIES["no-backtracking"].example))
    directory = save_case(tmp_path / "case", comparison)
    assert sorted(p.name for p in directory.iterdir()) == [
        "anchors.pem", "case.json", "intermediates.pem", "leaf.key", "leaf.pem",
    ]
    loaded = load_case(directory)
    assert (loaded.anchors, loaded.leaf, loaded.intermediates, loaded.at) == (
        comparison.case.anchors, comparison.case.leaf, comparison.case.intermediates,
        comparison.case.at,
    )
    again = replay(directory)
    assert (again.edge, again.pyca, again.family) == (
        comparison.edge, comparison.pyca, comparison.family,
    )


def test_an_unexplained_disagreement_is_unclassified():
    """A family is a predicate on the certificates: a disagreement without one stays a finding."""
    case = build_case(ChainSpec(deviations=(("leaf.validity", "na_minus_1s"),)))
    edge, pyca = edge_verdict(case), pyca_verdict(case)
    assert not edge.verified and not pyca.verified
    from edge.fuzz.oracle import PycaResult, classify

    pretend = PycaResult(True, None, (case.leaf, *case.anchors))  # pyca accepting it
    assert classify(case, edge, pretend) == UNCLASSIFIED


# --- 6: customer input never raises anything but its own errors -------------------------------

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)


@functools.cache
def sample_ders() -> tuple[bytes, ...]:
    specs = [
        ChainSpec(), ChainSpec(keys=("rsa", "rsa", "rsa")), ChainSpec(keys=("ed25519",) * 3),
        ChainSpec(depth=2, deviations=(("int1.nc", "permit_leaf"), ("leaf.san", "email"))),
    ]
    ders = []
    for spec in specs:
        case = build_case(spec)
        ders += [case.leaf, *case.anchors, *case.intermediates]
    return tuple(dict.fromkeys(ders))


def _pem_block(der: bytes, label: str = "CERTIFICATE") -> str:
    body = base64.encodebytes(der).decode()
    return f"-----BEGIN {label}-----\n{body}-----END {label}-----\n"


@st.composite
def mutated_ders(draw) -> bytes:
    der = bytearray(draw(st.sampled_from(sample_ders())))
    for _ in range(draw(st.integers(0, 4))):
        action = draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
        position = draw(st.integers(0, max(0, len(der) - 1)))
        if action == "flip" and der:
            der[position] ^= 1 << draw(st.integers(0, 7))
        elif action == "truncate":
            del der[position:]
        elif action == "insert":
            der[position:position] = draw(st.binary(min_size=1, max_size=4))
        elif der:
            del der[position]
    return bytes(der)


bundle_texts = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300),
    st.lists(mutated_ders(), min_size=1, max_size=3).map(
        lambda ders: "".join(_pem_block(d) for d in ders)
    ),
    st.tuples(
        st.sampled_from(["CERTIFICATE", "PRIVATE KEY", "X509 CRL", "CERTIFICATE REQUEST", "x"]),
        st.binary(max_size=200), st.text(max_size=20),
    ).map(lambda t: t[2] + _pem_block(t[1], t[0]) + t[2]),
)


# A CERTIFICATE block whose version is not v1-v3 makes cryptography raise x509.InvalidVersion
# (no ValueError): parse_bundle must refuse it like any other unparseable certificate.


def unknown_version_pem() -> str:
    der = bytearray(build_case(ChainSpec()).leaf)
    version = der.index(b"\xa0\x03\x02\x01\x02")  # [0] EXPLICIT INTEGER 2 (v3)
    der[version + 4] = 3  # "v4"
    return _pem_block(bytes(der))


def test_a_certificate_with_an_unknown_version_is_rejected():
    with pytest.raises(upload.UploadRejected):
        upload.parse_bundle(unknown_version_pem())


@cheap
@given(data=bundle_texts, ca=st.booleans())
def test_upload_validation_only_raises_upload_rejected(data, ca):
    try:
        bundle = upload.parse_bundle(data)
        upload.check_bundle(bundle, ca=ca)
    except upload.UploadRejected as err:
        assert str(err)


@cheap
@given(data=bundle_texts, ca=st.booleans())
def test_the_store_answers_any_upload_with_a_record_or_an_api_error(data, ca):
    """What the control plane does with the upload after validation (fingerprints, DNs, serial,
    signature name, expiry) must not raise either: a stray exception would be an API 500."""
    created = apply(new_store(now=NOW), c.CreateAccount("acme"), NOW)
    try:
        apply(created.store, c.UploadCaCertificate(created.result.id, data, ca=ca), NOW)
    except ApiError:
        pass


FIELDS = sorted(FIELD_TYPES)
LITERALS = st.one_of(
    st.text(max_size=12).map(lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'),
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(["true", "false", "10.0.0.0/8", "::1", "192.0.2.1", '""']),
)
OPERATORS = st.sampled_from(
    ["eq", "ne", "==", "!=", "lt", "le", "gt", "ge", "contains", "matches", "~", "in", "wildcard"]
)


def expressions(depth: int = 0):
    field = st.sampled_from(FIELDS)
    comparison = st.one_of(
        field,
        st.tuples(field, OPERATORS, LITERALS).map(" ".join),
        st.tuples(field, st.lists(LITERALS, max_size=3)).map(
            lambda t: f"{t[0]} in {{{' '.join(t[1])}}}"
        ),
    )
    if depth >= 3:
        return comparison
    inner = st.deferred(lambda: expressions(depth + 1))
    return st.one_of(
        comparison,
        inner.map(lambda e: f"not {e}"),
        inner.map(lambda e: f"({e})"),
        st.tuples(inner, st.sampled_from(["and", "or", "xor", "&&", "||"]), inner).map(" ".join),
    )


@cheap
@given(text=st.one_of(
    st.text(max_size=300),
    expressions(),
    st.integers(1, 3 * RULES_MAX_DEPTH).map(lambda n: "(" * n + "ssl" + ")" * n),
    st.text(alphabet="()!nota ", max_size=400),
    st.tuples(st.sampled_from(FIELDS), st.text(max_size=40)).map(
        lambda t: f'{t[0]} matches "{t[1]}"'
    ),
))
def test_the_rules_compiler_only_raises_rule_syntax_error(text):
    try:
        expression = compile_expression(text)
    except RuleSyntaxError as err:
        assert 1 <= err.column <= len(text) + 1
    else:
        assert expression.evaluate({}) in (True, False)


# --- the runner behind `edge fuzz` --------------------------------------------------------------


def test_a_short_fuzz_run_tallies_every_example_and_finds_nothing(tmp_path):
    from edge.fuzz.runner import AGREE, run

    report = run(40, seed=1, save_dir=tmp_path)
    assert report.examples == sum(report.counts.values()) == 40
    assert set(report.counts) <= {AGREE, *FAMILIES}
    assert report.ok and list(tmp_path.iterdir()) == []
    assert report.chains_per_second > 0
