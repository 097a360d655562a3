"""A real mTLS handshake and the standalone `edge.pki.openssl.verify` reach the same verdict.

DESIGN.md, hard point 4: a verdict outside a handshake (audits, fuzzing oracle, conformance
harness) must be the verdict the handshake gives. For every x509-limbo case with a
`peer_certificate_key`, the client presents the case's chain to a server trusting the case's
anchors, validating at the case's time, and the first error the verify callback saw must equal
`verify()`'s (ok, code, depth) - both with DER anchors and with the server context's own store;
on success both must also have built the same chain (same anchor).

The limbo file is third-party data outside this repository: `$EDGE_CONFORMANCE_FILE`, else
`../shared/conformance/limbo-client-relevant.json` next to the repository root.
"""

from __future__ import annotations

import json
import os
import ssl
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import tls_pairs as tp
from edge.pki import openssl

REPO_ROOT = Path(__file__).resolve().parent.parent
LIMBO = Path(
    os.environ.get("EDGE_CONFORMANCE_FILE")
    or REPO_ROOT.parent / "shared" / "conformance" / "limbo-client-relevant.json"
)

# Cases no handshake can carry: OpenSSL's CLIENT refuses to load the leaf
# (SSL_CTX_use_certificate -> X509V3 INVALID_CERTIFICATE), so there is nothing to compare.
# Marked xfail(strict): if a case here ever becomes comparable, the test fails (XPASS) so the list
# gets updated; any OTHER case that cannot be compared fails outright.
NOT_COMPARABLE = {
    "rfc5280::san::malformed": "client cannot load the leaf: malformed subjectAltName",
    "rfc5280::duplicate-extensions": "client cannot load the leaf: duplicate extensions",
}


class HandshakeImpossible(Exception):
    """The client side cannot take part in a handshake with this case's chain."""


def _load_cases() -> list[dict[str, Any]]:
    if not LIMBO.is_file():
        pytest.skip(
            f"x509-limbo conformance file not found at {LIMBO} (third-party data outside the "
            "repository; set EDGE_CONFORMANCE_FILE to its path)",
            allow_module_level=True,
        )
    return [c for c in json.loads(LIMBO.read_text())["testcases"] if c["peer_certificate_key"]]


CASES = _load_cases()


def _param(case: dict[str, Any]) -> Any:
    reason = NOT_COMPARABLE.get(case["id"])
    marks = [pytest.mark.xfail(raises=HandshakeImpossible, strict=True, reason=reason)] if reason else []
    return pytest.param(case, id=case["id"], marks=marks)


def _when(case: dict[str, Any]) -> datetime | None:
    vt = case["validation_time"]
    return None if vt is None else datetime.fromisoformat(vt.replace("Z", "+00:00"))


def test_known_not_comparable_cases_exist() -> None:
    """NOT_COMPARABLE names real cases (a renamed case would otherwise vanish from the check)."""
    assert len(CASES) > 100
    assert set(NOT_COMPARABLE) <= {c["id"] for c in CASES}


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_handshake_and_standalone_verify_agree(case: dict[str, Any]) -> None:
    at = _when(case)
    der = ssl.PEM_cert_to_DER_cert
    leaf = der(case["peer_certificate"])
    sent = [der(p) for p in case["untrusted_intermediates"]]
    sctx = tp.server_context("".join(case["trusted_certs"]))
    standalone = openssl.verify(leaf, sent, [der(p) for p in case["trusted_certs"]], at)
    standalone_ctx = openssl.verify(leaf, sent, sctx, at)

    chain_pem = case["peer_certificate"] + "".join(case["untrusted_intermediates"])
    attempts = []
    # TLS 1.3 first; then TLS 1.2, for leaves a TLS 1.3 client cannot sign with (DSA) or
    # whose curve TLS 1.3 does not offer (P-192): 1.2 still sends the certificate.
    for max_tls12 in (False, True):
        try:
            cctx = tp.client_context(chain_pem, case["peer_certificate_key"], max_tls12=max_tls12)
        except ssl.SSLError as e:
            raise HandshakeImpossible(f"{case['id']}: client cannot load the chain: {e}") from e
        hs = tp.handshake(cctx, sctx, at_time=at)
        pv = hs.verification
        if pv.errors or pv.leaf_der is not None:
            break  # the server verified the certificate (the handshake may still fail later)
        attempts.append(f"TLS {'1.2' if max_tls12 else '1.3'}: {hs.server_error or 'no certificate sent'}")
    else:
        raise HandshakeImpossible(f"{case['id']}: no handshake carried the certificate: {attempts}")

    hand = pv.verdict
    assert hand is not None
    got = {
        "handshake": (hand.ok, hand.code, hand.depth),
        "verify(DER anchors)": (standalone.ok, standalone.code, standalone.depth),
        "verify(server context)": (standalone_ctx.ok, standalone_ctx.code, standalone_ctx.depth),
    }
    assert len(set(got.values())) == 1, f"{case['id']}: {got} {hs.server_error or ''}"
    if hand.ok:
        assert hand.chain == standalone.chain == standalone_ctx.chain, f"{case['id']}: different chains"
    # SSL_get_verify_result is the LAST error reported: 0 exactly when there was none
    assert (pv.verify_result == 0) == hand.ok, f"{case['id']}: verify_result {pv.verify_result}"
