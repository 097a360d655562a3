"""Verification outside a handshake, with exactly the settings of the edge's own contexts.

For audits, the fuzzer's oracle and the conformance harness: the verdict must be the one a real
handshake at the edge would give, so the context comes from `trust.server_context` (same depth,
same flags, same trust loading) and the chain goes through OpenSSL's X509_verify_cert with the
ssl_client purpose, as the handshake does.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import ssl
from collections.abc import Sequence

from edge.node.reasons import Reason, reason_for_code
from edge.node.trust import DEFAULT_MAX_CHAIN_DEPTH, server_context
from edge.pki import openssl


def no_server_certificate(context: ssl.SSLContext) -> None:
    """A verifying context never serves, so it needs no certificate of its own."""


@functools.lru_cache(maxsize=256)
def _verifier(trust_ders: tuple[bytes, ...], max_chain_depth: int) -> ssl.SSLContext:
    return server_context(
        no_server_certificate, trust_ders=trust_ders, max_chain_depth=max_chain_depth
    )


def verify(
    leaf_der: bytes,
    intermediates: Sequence[bytes],
    trust_ders: Sequence[bytes],
    at: dt.datetime | None,
    *,
    max_chain_depth: int = DEFAULT_MAX_CHAIN_DEPTH,
) -> tuple[openssl.Verdict, Reason]:
    """OpenSSL's verdict on the chain at time `at` (None: do not check validity periods),
    and its normalised reason."""
    # The order a node loads a trust set in (by fingerprint, as TrustSet keeps it): OpenSSL's
    # choice among anchors with one subject name depends on it.
    ordered = tuple(sorted(trust_ders, key=lambda der: hashlib.sha256(der).hexdigest()))
    context = _verifier(ordered, max_chain_depth)
    verdict = openssl.verify(leaf_der, tuple(intermediates), context, at)
    return verdict, reason_for_code(verdict.code)
