"""The x509-limbo conformance harness (edge.conformance): exact figures on the client-relevant file,
the strict profile's guarantees, and every result kind on a small synthetic file.

The limbo file is third-party data outside this repository: `$EDGE_CONFORMANCE_FILE`, else
`../shared/conformance/limbo-client-relevant.json` next to the repository root. Tests that need it
are skipped when it is absent; the frozen results below are for the file whose sha256 is
`LIMBO_SHA256` and are skipped for any other file.

This module is also imported by the harness's worker processes (for `slow_or_crashing`), so it
does nothing at import time beyond definitions.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from rich.console import Console

from edge import conformance
from edge.conformance import FAILURE, HANG, SKIPPED, SUCCESS, Outcome
from edge.node.trust import DEFAULT_MAX_CHAIN_DEPTH
from edge.pki.issuer import Authority

REPO_ROOT = Path(__file__).resolve().parent.parent
LIMBO = Path(
    os.environ.get("EDGE_CONFORMANCE_FILE")
    or REPO_ROOT.parent / "shared" / "conformance" / "limbo-client-relevant.json"
)
LIMBO_SHA256 = "f64bb33d7f5444fb783d9c7844cea8702aae9c370205ceb381206c0f0169de53"

needs_limbo = pytest.mark.skipif(
    not LIMBO.is_file(),
    reason=f"x509-limbo conformance file not found at {LIMBO} (third-party data outside the "
    "repository; set EDGE_CONFORMANCE_FILE to its path)",
)

# The edge profile on the client-relevant file: every case whose actual result differs from the
# expected one, with the actual result we measured (OpenSSL 3.0.19). Every other case runs and
# passes. Reference (conformance/README.md): 116/155, CLIENT 9/10.
EDGE_NOT_PASSING = {
    # skipped: a key_usage constraint (as x509-limbo's OpenSSL harness does)
    "webpki::cryptographydotio-chain": SKIPPED,
    "webpki::cryptographydotio-chain-missing-intermediate": SKIPPED,
    # valid chains OpenSSL rejects: no backtracking to an alternate chain, notAfter exclusive,
    # self-issued intermediates counted against the depth
    "cve::cve-2024-0567": FAILURE,
    "pathlen::max-chain-depth-1-self-issued": FAILURE,
    "rfc5280::nc::nc-forbids-alternate-chain-ica": FAILURE,
    "rfc5280::nc::nc-forbids-same-chain-ica": FAILURE,
    "rfc5280::validity::notafter-exact": FAILURE,
    "rfc5280::validity::notafter-fractional": FAILURE,
    "rfc5280::root-and-intermediate-swapped": FAILURE,
    # false accepts: name constraints on malformed SANs and in end-entity certificates
    "cve::cve-2025-61727": SUCCESS,
    "rfc5280::nc::permitted-dns-match-noncritical": SUCCESS,
    "rfc5280::nc::invalid-dnsname-leading-period": SUCCESS,
    "rfc5280::nc::not-allowed-in-ee-noncritical": SUCCESS,
    "rfc5280::nc::not-allowed-in-ee-critical": SUCCESS,
    "rfc5280::nc::nc-permits-invalid-dns-san": SUCCESS,
    "rfc5280::nc::nc-permits-invalid-email-san": SUCCESS,
    "rfc5280::nc::nc-forbids-dnsname-wildcard-san": SUCCESS,
    "webpki::nc::intermediate-permitted-excluded-subtrees-both-null": SUCCESS,
    "webpki::nc::intermediate-permitted-excluded-subtrees-both-empty-sequences": SUCCESS,
    # false accepts: AKI/SKI/BasicConstraints rules, CA as leaf, extension encoding
    "rfc5280::aki::leaf-missing-aki": SUCCESS,
    "rfc5280::aki::intermediate-missing-aki": SUCCESS,
    "rfc5280::ski::root-missing-ski": SUCCESS,
    "rfc5280::ski::intermediate-missing-ski": SUCCESS,
    "webpki::aki::root-with-aki-missing-keyidentifier": SUCCESS,
    "rfc5280::root-missing-basic-constraints": SUCCESS,
    "rfc5280::root-non-critical-basic-constraints": SUCCESS,
    "rfc5280::leaf-ku-keycertsign": SUCCESS,
    "rfc5280::pc::ica-noncritical-pc": SUCCESS,
    "rfc5280::san::noncritical-with-empty-subject": SUCCESS,
    "rfc5280::san::underscore-dns": SUCCESS,
    "webpki::malformed-aia": SUCCESS,
    "webpki::v1-cert": SUCCESS,
    "webpki::ee-basicconstraints-ca": SUCCESS,
    "webpki::ca-as-leaf": SUCCESS,
    # false accepts: serial numbers and CA/B key rules
    "rfc5280::serial::too-long": SUCCESS,
    "rfc5280::serial::zero": SUCCESS,
    "webpki::forbidden-dsa-root": SUCCESS,
    "webpki::forbidden-dsa-leaf": SUCCESS,
    "webpki::forbidden-rsa-not-divisible-by-8-in-root": SUCCESS,
    "webpki::forbidden-rsa-key-not-divisible-by-8-in-leaf": SUCCESS,
    # false accept: a CRL without cRLNumber
    "crl::crlnumber-missing": SUCCESS,
}

PYCA_REFERENCE_PASSES = 123  # pyca/cryptography 50 alone (conformance/README.md), out of 137


def _limbo_sha256() -> str:
    return hashlib.sha256(LIMBO.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def edge_report() -> conformance.Report:
    return conformance.run(LIMBO, profile="edge")


@pytest.fixture(scope="module")
def strict_report() -> conformance.Report:
    return conformance.run(LIMBO, profile="strict")


# --------------------------------------------------------------------------- #
# The client-relevant file                                                    #
# --------------------------------------------------------------------------- #


@needs_limbo
def test_edge_profile_exact_results(edge_report: conformance.Report) -> None:
    if _limbo_sha256() != LIMBO_SHA256:
        pytest.skip(f"{LIMBO} is not the file the frozen results were measured on")
    not_passing = {r.id: r.actual for r in edge_report.results if not r.passed}
    assert not_passing == EDGE_NOT_PASSING
    passing = {r.id for r in edge_report.results if r.passed}
    assert passing == {r.id for r in edge_report.results} - set(EDGE_NOT_PASSING)
    # the README's reference for OpenSSL 3.0.19 as Python 3.11's ssl uses it
    assert edge_report.score() == (116, 155)
    assert edge_report.score("CLIENT") == (9, 10)
    assert not edge_report.hangs
    assert [r.id for r in edge_report.false_accepts] == [
        i for i in (r.id for r in edge_report.results) if EDGE_NOT_PASSING.get(i) == SUCCESS
    ]


@needs_limbo
def test_harness_context_is_the_edge_context() -> None:
    """Without the purpose change and CRLs, the harness's own context gives exactly
    `edge.node.verify`'s verdicts (same code, depth and chain) on every case of the file."""
    from edge.node import verify as node_verify
    from edge.pki import openssl

    der = conformance._pem_der
    for case in conformance.load_cases(LIMBO):
        leaf = der(case["peer_certificate"])
        sent = [der(p) for p in case["untrusted_intermediates"]]
        anchors = [der(p) for p in case["trusted_certs"]]
        depth = case["max_chain_depth"]
        depth = DEFAULT_MAX_CHAIN_DEPTH if depth is None else depth
        at = conformance._when(case)
        ours = openssl.verify(
            leaf, sent, conformance._edge_context(anchors, depth, any_purpose=False, crls=()), at)
        edge, _ = node_verify.verify(leaf, sent, anchors, at, max_chain_depth=depth)
        assert (ours.ok, ours.code, ours.depth, ours.chain) == (
            edge.ok, edge.code, edge.depth, edge.chain), case["id"]


@needs_limbo
def test_edge_profile_whole_run_is_quick(edge_report: conformance.Report) -> None:
    assert edge_report.seconds < 10
    assert max(r.seconds for r in edge_report.results) < 1


@needs_limbo
def test_strict_profile_passes_more_and_never_accepts_what_the_edge_rejects(
    edge_report: conformance.Report, strict_report: conformance.Report
) -> None:
    passed, ran = strict_report.score()
    assert passed > PYCA_REFERENCE_PASSES
    assert passed > edge_report.score()[0]
    assert ran == edge_report.score()[1]
    edge = edge_report.by_id()
    for r in strict_report.results:
        assert r.edge_actual == (edge[r.id].actual if r.ran else None), r.id
        if edge[r.id].actual != SUCCESS:
            assert r.actual != SUCCESS, f"strict accepts {r.id}, which the edge rejects"
    assert len(strict_report.false_accepts) < len(edge_report.false_accepts)
    assert strict_report.stricter_than_edge  # it does reject something the edge accepts
    assert not strict_report.hangs


@needs_limbo
def test_limbo_json_output(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    console = Console(record=True, width=200)
    assert conformance.main(LIMBO, profile="edge", json_path=out, console=console) == 0
    data = json.loads(out.read_text())
    assert data["version"] == 1 and data["harness"].startswith("edge-edge")
    results = data["results"]
    assert len(results) == len(json.loads(LIMBO.read_text())["testcases"])
    assert all(set(r) == {"id", "actual_result", "context"} for r in results)
    assert {r["actual_result"] for r in results} <= {SUCCESS, FAILURE, SKIPPED, HANG}
    text = console.export_text()
    assert "false accepts" in text and "rfc5280::nc::nc-permits-invalid-email-san" in text
    assert "116/155" in text


# --------------------------------------------------------------------------- #
# A synthetic file                                                            #
# --------------------------------------------------------------------------- #

UTC = dt.timezone.utc
T0 = dt.datetime(2025, 1, 1, tzinfo=UTC)


def _pem(cert: x509.Certificate) -> str:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _case(case_id: str, expected: str, leaf, *, anchors, sent=(), **extra: Any) -> dict[str, Any]:
    case = {
        "id": case_id, "conflicts_with": [], "features": [], "importance": "undetermined",
        "description": "synthetic", "validation_kind": "CLIENT",
        "trusted_certs": [_pem(a) for a in anchors],
        "untrusted_intermediates": [_pem(c) for c in sent],
        "peer_certificate": _pem(leaf), "peer_certificate_key": None,
        "validation_time": None, "signature_algorithms": [], "key_usage": [],
        "extended_key_usage": ["clientAuth"], "expected_result": expected,
        "expected_peer_name": None, "expected_peer_names": [], "max_chain_depth": None, "crls": [],
    }
    case.update(extra)
    return case


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = Authority.root("Synthetic Root", not_before=T0, not_after=T0 + dt.timedelta(days=3650))
    other = Authority.root("Someone Else's Root", not_before=T0,
                           not_after=T0 + dt.timedelta(days=3650), exclude_keys=[root.key])
    sub = root.sub_ca("Synthetic Intermediate")
    good = root.issue("good", sans=["good@example.com"]).leaf
    stranger = other.issue("stranger").leaf
    server_only = root.issue("server-only", eku=("serverAuth",)).leaf
    expired = root.issue("expired", not_after=T0 + dt.timedelta(days=30)).leaf
    deep = sub.issue("deep").leaf
    revoked = root.issue("revoked", serial=4242).leaf
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(root.subject)
        .last_update(T0)
        .next_update(T0 + dt.timedelta(days=3000))
        .add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(4242).revocation_date(T0).build())
        .add_extension(x509.CRLNumber(1), critical=False)
        .sign(root.key, hashes.SHA256())
    )
    from cryptography.hazmat.primitives import serialization

    crl_pem = crl.public_bytes(serialization.Encoding.PEM).decode()
    later = (T0 + dt.timedelta(days=60)).isoformat()
    anchors = [root.certificate]
    cases = [
        _case("synthetic::good", SUCCESS, good, anchors=anchors,
              expected_peer_names=[{"kind": "RFC822", "value": "good@example.com"}]),
        _case("synthetic::wrong-peer-name", FAILURE, good, anchors=anchors,
              expected_peer_names=[{"kind": "RFC822", "value": "bad@example.com"}]),
        _case("synthetic::unknown-ca", FAILURE, stranger, anchors=anchors),
        # serverAuth-only leaf: the client-auth purpose refuses it, no purpose check accepts it
        _case("synthetic::server-leaf-client-purpose", FAILURE, server_only, anchors=anchors),
        _case("synthetic::server-leaf-no-purpose", SUCCESS, server_only, anchors=anchors,
              extended_key_usage=[], validation_kind="SERVER"),
        _case("synthetic::expired-at-time", FAILURE, expired, anchors=anchors, validation_time=later),
        _case("synthetic::expired-no-time", SUCCESS, expired, anchors=anchors),
        _case("synthetic::depth-0", FAILURE, deep, anchors=anchors, sent=[sub.certificate],
              max_chain_depth=0, features=["max-chain-depth"]),
        _case("synthetic::depth-1", SUCCESS, deep, anchors=anchors, sent=[sub.certificate],
              max_chain_depth=1, features=["max-chain-depth"]),
        _case("synthetic::revoked", FAILURE, revoked, anchors=anchors, crls=[crl_pem],
              features=["has-crl"]),
        _case("synthetic::not-revoked", SUCCESS, good, anchors=anchors, crls=[crl_pem],
              features=["has-crl"]),
        _case("synthetic::key-usage", SUCCESS, good, anchors=anchors, key_usage=["digitalSignature"]),
        _case("synthetic::unknown-feature", SUCCESS, good, anchors=anchors, features=["telepathy"]),
        _case("synthetic::server-name", SUCCESS, good, anchors=anchors,
              expected_peer_name={"kind": "DNS", "value": "example.com"}),
        _case("synthetic::server-eku", SUCCESS, good, anchors=anchors,
              extended_key_usage=["serverAuth"]),
    ]
    path = tmp_path_factory.mktemp("limbo") / "synthetic.json"
    path.write_text(json.dumps({"version": 1, "testcases": cases}))
    return path


def test_synthetic_results(synthetic: Path) -> None:
    report = conformance.run(synthetic, profile="edge")
    actual = {r.id: r.actual for r in report.results}
    assert actual == {
        "synthetic::good": SUCCESS,
        "synthetic::wrong-peer-name": FAILURE,
        "synthetic::unknown-ca": FAILURE,
        "synthetic::server-leaf-client-purpose": FAILURE,
        "synthetic::server-leaf-no-purpose": SUCCESS,
        "synthetic::expired-at-time": FAILURE,
        "synthetic::expired-no-time": SUCCESS,
        "synthetic::depth-0": FAILURE,
        "synthetic::depth-1": SUCCESS,
        "synthetic::revoked": FAILURE,
        "synthetic::not-revoked": SUCCESS,
        "synthetic::key-usage": SKIPPED,
        "synthetic::unknown-feature": SKIPPED,
        "synthetic::server-name": SKIPPED,
        "synthetic::server-eku": SKIPPED,
    }
    context = {r.id: r.context for r in report.results}
    assert "unsuitable certificate purpose" in context["synthetic::server-leaf-client-purpose"]
    assert "certificate has expired" in context["synthetic::expired-at-time"]
    assert "chain too long" in context["synthetic::depth-0"]
    assert "certificate revoked" in context["synthetic::revoked"]
    assert "bad@example.com" in context["synthetic::wrong-peer-name"]
    assert "telepathy" in context["synthetic::unknown-feature"]
    assert "key_usage" in context["synthetic::key-usage"]
    assert report.score() == (11, 11)
    assert report.false_accepts == ()


def test_synthetic_strict_agrees_on_clean_chains(synthetic: Path) -> None:
    report = conformance.run(synthetic, profile="strict")
    edge = conformance.run(synthetic, profile="edge").by_id()
    for r in report.results:
        if r.ran:
            assert r.edge_actual == edge[r.id].actual
    # a well-formed chain (with a SAN: pyca refuses client leaves without one) passes strict too
    assert report.by_id()["synthetic::good"].actual == SUCCESS
    assert report.by_id()["synthetic::not-revoked"].actual == SUCCESS


def slow_or_crashing(case: Mapping[str, Any], profile: str) -> Outcome:
    """An evaluator for the worker process: sleeps on `::slow`, dies on `::crash`."""
    if case["id"].endswith("::slow"):
        time.sleep(60)
    if case["id"].endswith("::crash"):
        os._exit(3)
    return conformance.evaluate_case(case, profile)


def test_hang_and_crash_are_reported_and_the_run_goes_on(synthetic: Path, tmp_path: Path) -> None:
    cases = json.loads(synthetic.read_text())["testcases"]
    good = next(c for c in cases if c["id"] == "synthetic::good")
    bad = next(c for c in cases if c["id"] == "synthetic::unknown-ca")
    path = tmp_path / "slow.json"
    path.write_text(json.dumps({"testcases": [
        good,
        {**bad, "id": "synthetic::slow"},
        {**bad, "id": "synthetic::after-slow"},
        {**good, "id": "synthetic::crash"},
        {**good, "id": "synthetic::after-crash"},
    ]}))
    started = time.perf_counter()
    report = conformance.run(path, timeout=1.0, evaluate=slow_or_crashing)
    assert time.perf_counter() - started < 10
    actual = {r.id: r.actual for r in report.results}
    assert actual == {
        "synthetic::good": SUCCESS,
        "synthetic::slow": HANG,
        "synthetic::after-slow": FAILURE,
        "synthetic::crash": FAILURE,
        "synthetic::after-crash": SUCCESS,
    }
    by_id = report.by_id()
    assert "no verdict within 1 s" in by_id["synthetic::slow"].context
    assert "crashed" in by_id["synthetic::crash"].context
    assert 1.0 <= by_id["synthetic::slow"].seconds < 3
    assert report.hangs == (by_id["synthetic::slow"],)
    assert report.score() == (3, 5)  # a HANG runs and fails


def test_a_harness_error_is_raised_not_hidden(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text(json.dumps({"testcases": [{
        "id": "broken::time", "expected_result": SUCCESS, "peer_certificate": "",
        "trusted_certs": [], "validation_time": "not a time",
    }]}))
    with pytest.raises(RuntimeError, match="broken::time"):
        conformance.run(path)


def test_invalid_files_and_options(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    assert conformance.main(missing, profile="edge", json_path=None,
                            console=Console(record=True)) == 2
    not_limbo = tmp_path / "other.json"
    not_limbo.write_text('{"cases": []}')
    with pytest.raises(ValueError, match="testcases"):
        conformance.run(not_limbo)
    with pytest.raises(ValueError, match="profile"):
        conformance.run(not_limbo, profile="lenient")


def test_main_prints_the_table_and_writes_limbo_results(synthetic: Path, tmp_path: Path) -> None:
    out = tmp_path / "strict.json"
    console = Console(record=True, width=200)
    assert conformance.main(synthetic, profile="strict", json_path=out, console=console) == 0
    text = console.export_text()
    assert "synthetic" in text and "skipped" in text
    assert "rejected by strict, accepted by the edge" in text
    data = json.loads(out.read_text())
    assert [r["id"] for r in data["results"]][:2] == ["synthetic::good", "synthetic::wrong-peer-name"]
    assert "pyca/cryptography" in data["harness"]


@needs_limbo
def test_edge_conformance_command_writes_limbo_results(tmp_path):
    from click.testing import CliRunner

    from edge.cli import main

    out = tmp_path / "results.json"
    result = CliRunner().invoke(main, ["conformance", str(LIMBO), "--json", str(out)])
    assert result.exit_code == 0, result.output
    results = json.loads(out.read_text())["results"]
    assert len(results) == 157
    assert {r["actual_result"] for r in results} <= {"SUCCESS", "FAILURE", "SKIPPED", "HANG"}
