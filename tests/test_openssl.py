"""edge.pki.openssl: pointers and self-check, verify callback, chain capture, validation time,
standalone verify. Agreement with handshakes on x509-limbo: test_limbo_equivalence.py."""

from __future__ import annotations

import copy
import ctypes
import gc
import pickle
import ssl
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import tls_pairs as tp
from edge.node import identity
from edge.pki import openssl

NOW = datetime.now(timezone.utc)


@pytest.fixture(scope="module")
def pki() -> dict[str, object]:
    root = trustme.CA()
    inter = root.create_child_ca()
    return {
        "root": root,
        "inter": inter,
        "leaf": inter.issue_cert("client@tenant-a.test"),  # chain: leaf, inter
        "short": root.issue_cert(
            "short@tenant-a.test", not_before=NOW - timedelta(days=1), not_after=NOW + timedelta(days=2)
        ),
        "other_ca": (other := trustme.CA()),
        "other": other.issue_cert("client@tenant-b.test"),
    }


def _same(a: openssl.Verdict | None, b: openssl.Verdict) -> bool:
    """Same (ok, code, depth); on success also the same chain (hence the same anchor)."""
    assert a is not None
    return (a.ok, a.code, a.depth) == (b.ok, b.code, b.depth) and (not a.ok or a.chain == b.chain)


# ------------------------------------------------------------------ pointers and self-check


def test_pointers_agree_with_openssl() -> None:
    ctx = tp.server_context(None)
    conn = ctx.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_side=True)
    s = openssl.ssl_pointer(conn)
    assert openssl.SSL_get_SSL_CTX(s) == openssl.ssl_ctx_pointer(ctx)
    assert openssl.SSL_is_server(s) == 1
    ctx.options |= ssl.OP_NO_TICKET
    assert openssl.SSL_CTX_get_options(openssl.ssl_ctx_pointer(ctx)) == int(ctx.options)


def test_library_is_the_one_ssl_uses() -> None:
    assert openssl.OpenSSL_version_num() == ssl.OPENSSL_VERSION_NUMBER
    lines = Path("/proc/self/maps").read_text().splitlines()
    for lib in ("/libssl.so", "/libcrypto.so"):
        assert len({line.split()[-1] for line in lines if lib in line}) == 1, lib


def test_self_check_runs_and_catches_wrong_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    openssl._self_check()  # passes on this interpreter (it also ran at import)
    # alpn_protocols (NULL) and check_hostname/hostflags (small ints) sit where a
    # shifted layout would read: the check must refuse them without dereferencing.
    for wrong in (openssl._HEAD + 8, openssl._HEAD + 32):
        monkeypatch.setattr(openssl, "_CTX_OFFSET", wrong)
        with pytest.raises(RuntimeError, match=r"^edge\.pki\.openssl: .*SSL_CTX"):
            openssl._self_check()
    monkeypatch.setattr(openssl, "_CTX_OFFSET", openssl._HEAD)
    monkeypatch.setattr(openssl, "_SSL_OFFSET", openssl._HEAD)  # the (NULL) Socket weakref slot
    with pytest.raises(RuntimeError, match=r"SSL\*"):
        openssl._self_check()


def test_wrong_types_are_refused() -> None:
    with pytest.raises(TypeError):
        openssl.ssl_ctx_pointer(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        openssl.ssl_pointer(ssl.MemoryBIO())  # type: ignore[arg-type]


# ------------------------------------------------------------------ callback and handshakes


def test_callback_survives_verify_mode_changes(pki: dict) -> None:
    ctx = tp.server_context(tp.pem(pki["root"].cert_pem))
    assert openssl.has_verify_callback(ctx)
    for mode in (ssl.CERT_REQUIRED, ssl.CERT_NONE, ssl.CERT_OPTIONAL):
        ctx.verify_mode = mode
        assert openssl.has_verify_callback(ctx), mode
    # and it still does its job: an untrusted client completes the handshake
    hs = tp.handshake(tp.leaf_client(pki["other"]), ctx)
    assert hs.server_error is None and hs.verification.handshake_done
    assert hs.verification.verdict.code == 20  # unable to get local issuer certificate


def test_without_callback_handshake_aborts(pki: dict) -> None:
    ctx = tp.server_context(tp.pem(pki["root"].cert_pem), callback=False)
    assert not openssl.has_verify_callback(ctx)
    hs = tp.handshake(tp.leaf_client(pki["other"]), ctx)
    assert isinstance(hs.server_error, ssl.SSLCertVerificationError)


def test_valid_chain_and_captured_certificates(pki: dict) -> None:
    ctx = tp.server_context(tp.pem(pki["root"].cert_pem))
    hs = tp.handshake(tp.leaf_client(pki["leaf"]), ctx)
    pv = hs.verification
    assert hs.server_error is None and pv.handshake_done and not pv.resumed
    assert pv.errors == () and pv.verify_result == 0
    assert pv.leaf_der == tp.der(pki["leaf"].cert_chain_pems[0])
    assert pv.chain_der == (tp.der(pki["inter"].cert_pem),)  # intermediates only, as sent
    assert pv.verified_chain_der == (pv.leaf_der, tp.der(pki["inter"].cert_pem), tp.der(pki["root"].cert_pem))
    assert pv.verdict == openssl.Verdict(True, 0, "ok", -1, pv.verified_chain_der)
    for der in (pv.leaf_der, *pv.chain_der):
        x509.load_der_x509_certificate(der)  # usable by cryptography


def test_untrusted_chain_completes_with_verdict_and_leaf(pki: dict) -> None:
    ctx = tp.server_context(tp.pem(pki["root"].cert_pem))
    hs = tp.handshake(tp.leaf_client(pki["other"]), ctx)
    pv = hs.verification
    assert hs.server_error is None and pv.handshake_done
    assert pv.leaf_der == tp.der(pki["other"].cert_chain_pems[0])  # getpeercert(True) works
    assert pv.errors[0] == (0, 20)
    assert pv.verify_result != 0  # the OpenSSL verdict is still there (its LAST error)
    alone = openssl.verify(pv.leaf_der, pv.chain_der, [tp.der(pki["root"].cert_pem)], None)
    assert pv.verdict[:4] == alone[:4] == (False, 20, openssl.verify_error_string(20), 0)
    assert hs.server.getpeercert()  # NB: the dict form is returned for unverified peers too


def test_no_client_certificate(pki: dict) -> None:
    ctx = tp.server_context(tp.pem(pki["root"].cert_pem))
    hs = tp.handshake(tp.client_context(None, None), ctx)
    assert hs.server_error is None and hs.verification.handshake_done
    assert hs.verification.leaf_der is None and hs.verification.verdict is None


def test_callback_never_raises_into_c(pki: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken(dict):
        def get(self, *a: object) -> None:
            raise RuntimeError("boom")

    monkeypatch.setattr(openssl, "_records", Broken())
    before = openssl._callback_faults
    ctx = tp.server_context(tp.pem(pki["root"].cert_pem))
    hs = tp.handshake(tp.leaf_client(pki["other"]), ctx)
    assert hs.server_error is None and hs.verification.handshake_done
    assert openssl._callback_faults > before


def test_resumed_session_reports_stored_result(pki: dict) -> None:
    ctx = tp.server_context(tp.pem(pki["root"].cert_pem))
    cctx = tp.leaf_client(pki["other"])
    first = tp.handshake(cctx, ctx)
    second = tp.handshake(cctx, ctx, session=first.client_session())
    full, resumed = first.verification, second.verification
    assert not full.resumed and full.verdict[:2] == (False, 20) and full.errors
    assert resumed.resumed and resumed.errors == () and resumed.chain_der == ()
    # only the session's stored result survives: the LAST error of the full handshake
    assert full.verify_result == 21 != full.verdict.code
    assert resumed.verdict == openssl.Verdict(False, 21, openssl.verify_error_string(21), -1)


def test_sni_context_switch_needs_sync(pki: dict) -> None:
    """OpenSSL's SSL_set_SSL_CTX keeps the ORIGINAL context's verify mode."""
    base = tp.server_context(None)
    base.verify_mode = ssl.CERT_NONE  # hostnames without an association
    assoc = tp.server_context(tp.pem(pki["root"].cert_pem))
    results = {}
    for sync in (False, True):

        def sni(conn: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext, sync: bool = sync) -> None:
            conn.context = assoc
            if sync:
                openssl.sync_verify_with_context(conn)

        base.sni_callback = sni
        hs = tp.handshake(tp.leaf_client(pki["leaf"]), base, server_hostname="api.tenant-a.test")
        assert hs.server_error is None
        results[sync] = hs.verification
    assert results[False].leaf_der is None  # no certificate was even requested
    assert results[True].verdict is not None and results[True].verdict.ok  # assoc's trust store used


# ------------------------------------------------------------------ validation time


@pytest.mark.parametrize(
    ("offset_days", "code"),
    [(5, 10), (-2, 9), (0, 0)],  # expired, not yet valid, fine
)
def test_validation_time(pki: dict, offset_days: int, code: int) -> None:
    at = NOW + timedelta(days=offset_days)
    ctx = tp.server_context(tp.pem(pki["root"].cert_pem))
    hs = tp.handshake(tp.leaf_client(pki["short"]), ctx, at_time=at)
    pv = hs.verification
    assert hs.server_error is None and pv.handshake_done
    assert pv.verdict.code == code and pv.verify_result == code
    assert _same(pv.verdict, openssl.verify(pv.leaf_der, (), [tp.der(pki["root"].cert_pem)], at.timestamp()))
    assert pv.verdict.depth == (0 if code else -1)


def test_no_time_check(pki: dict) -> None:
    ctx = tp.server_context(tp.pem(pki["root"].cert_pem))
    leaf = tp.der(pki["short"].cert_chain_pems[0])
    roots = [tp.der(pki["root"].cert_pem)]
    far = NOW + timedelta(days=3650)
    assert openssl.verify(leaf, (), roots, far).code == 10
    assert openssl.verify(leaf, (), roots, None).ok
    conn = ctx.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_side=True)
    openssl.set_verify_time(conn, far)
    openssl.set_verify_time(conn, None)  # switching back must drop USE_CHECK_TIME too
    flags = openssl.X509_VERIFY_PARAM_get_flags(openssl.SSL_get0_param(openssl.ssl_pointer(conn)))
    assert flags & openssl.X509_V_FLAG_NO_CHECK_TIME and not flags & openssl.X509_V_FLAG_USE_CHECK_TIME
    hs = tp.handshake(tp.leaf_client(pki["short"]), ctx, at_time=None)
    assert hs.server_error is None and hs.verification.verdict.ok
    hs = tp.handshake(tp.leaf_client(pki["short"]), ctx, at_time=far)
    assert hs.verification.verdict.code == 10


def test_naive_datetime_refused(pki: dict) -> None:
    with pytest.raises(ValueError, match="aware"):
        openssl.verify(tp.der(pki["short"].cert_chain_pems[0]), (), [], datetime(2030, 1, 1))


# ------------------------------------------------------------------ standalone verify


def test_verify_matches_handshake_store_and_settings(pki: dict) -> None:
    ctx = tp.server_context(tp.pem(pki["root"].cert_pem))
    leaf, inter = tp.der(pki["leaf"].cert_chain_pems[0]), tp.der(pki["inter"].cert_pem)
    assert openssl.verify(leaf, [inter], ctx, None).ok  # the context's own store
    assert openssl.verify(leaf, [inter], [tp.der(pki["root"].cert_pem)], None).ok
    assert openssl.verify(leaf, [], ctx, None)[:2] == (False, 20)
    # verify_flags live on the context's store parameters: `like` must carry them
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    assert openssl.verify(leaf, [inter], [inter], None).code == 2  # plain template: no partial chains
    assert openssl.verify(leaf, [inter], [inter], None, like=ctx).ok


def test_verify_returns_chain_to_the_anchor(pki: dict) -> None:
    """Verdict.chain: leaf first, anchor last, so a caller can tell WHICH anchor was used."""
    root_a, root_b = tp.der(pki["root"].cert_pem), tp.der(pki["other_ca"].cert_pem)
    leaf_a, inter = tp.der(pki["leaf"].cert_chain_pems[0]), tp.der(pki["inter"].cert_pem)
    leaf_b = tp.der(pki["other"].cert_chain_pems[0])
    both = [root_b, root_a]
    assert openssl.verify(leaf_a, [inter], both, None).chain == (leaf_a, inter, root_a)
    assert openssl.verify(leaf_b, [], both, None).chain == (leaf_b, root_b)
    ctx = tp.server_context(tp.pem(pki["root"].cert_pem) + tp.pem(pki["other_ca"].cert_pem))
    assert openssl.verify(leaf_b, [], ctx, None).chain == (leaf_b, root_b)  # the context's store
    # the handshake's verdict carries the chain OpenSSL verified, the same one
    pv = tp.handshake(tp.leaf_client(pki["leaf"]), ctx).verification
    assert pv.verdict.chain == pv.verified_chain_der == (leaf_a, inter, root_a)
    # on failure: what was built before the first error (here just the leaf)
    failed = openssl.verify(leaf_b, [], [root_a], None)
    assert not failed.ok and failed.chain == (leaf_b,)


def test_verify_rejects_garbage_and_leaves_error_queue_clean() -> None:
    with pytest.raises(ValueError, match=r"^edge\.pki\.openssl: not a DER"):
        openssl.verify(b"not a certificate", (), (), None)
    # a stale error left on OpenSSL's queue would be misreported by _ssl later
    assert openssl._fn("ERR_peek_error", ctypes.c_ulong)() == 0


# ------------------------------------------------------------------ lifecycle


def test_records_are_cleaned_up(pki: dict) -> None:
    ctx = tp.server_context(tp.pem(pki["root"].cert_pem))
    bad, good = tp.leaf_client(pki["other"]), tp.leaf_client(pki["leaf"])
    leaf, inter = tp.der(pki["leaf"].cert_chain_pems[0]), tp.der(pki["inter"].cert_pem)
    roots = [tp.der(pki["root"].cert_pem)]
    faults = openssl._callback_faults
    for i in range(40):  # includes failed verifications, which leave records until collected
        hs = tp.handshake(bad if i % 2 else good, ctx, at_time=time.time())
        assert hs.verification.verdict.ok == (i % 2 == 0)
        assert openssl.verify(leaf, [inter], roots, None).ok
        assert openssl.verify(leaf, [inter], ctx, time.time()).ok
    del hs
    gc.collect()
    assert openssl.pending_records() == 0
    assert openssl._callback_faults == faults

    # callback records without peer_verification are dropped with the connection
    server = ctx.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_side=True)
    openssl.track(server)
    assert openssl.pending_records() == 1
    del server
    gc.collect()
    assert openssl.pending_records() == 0


# ------------------------------------------------------------------ server credentials


def _verifying_client(root: trustme.CA) -> ssl.SSLContext:
    """A client that verifies the server's certificate and name against `root` only."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    root.configure_trust(ctx)
    return ctx


def _credential_context(credential: openssl.ServerCredential) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    credential.configure(ctx)
    return ctx


def test_server_credential_presents_its_chain_from_every_context() -> None:
    root = trustme.CA()
    leaf = root.create_child_ca().issue_cert("edge.test")  # chain: leaf, intermediate
    credential = identity.credential(leaf)
    contexts = [_credential_context(credential) for _ in range(3)]
    del credential  # each context holds its own references
    gc.collect()
    for ctx in contexts:
        hs = tp.handshake(_verifying_client(root), ctx, server_hostname="edge.test")
        # the client trusts only the root: it verified because the intermediate was sent
        assert hs.client_error is None and hs.server_error is None
        assert hs.client.getpeercert(binary_form=True) == tp.der(leaf.cert_chain_pems[0])


def test_server_credential_refuses_a_foreign_key_and_garbage() -> None:
    ca = trustme.CA()
    mine, other = identity.credential(ca.issue_cert("a.test")), ca.issue_cert("b.test")
    chain = [tp.der(other.cert_chain_pems[0])]
    foreign = openssl.ServerCredential(chain, _key_der(ca.issue_cert("c.test")))
    with pytest.raises(ValueError, match="refused the private key"):
        _credential_context(foreign)
    with pytest.raises(ValueError, match="not a DER private key"):
        openssl.ServerCredential(chain, b"not a key")
    with pytest.raises(ValueError, match="not a DER X.509"):
        openssl.ServerCredential([b"not a certificate"], _key_der(other))
    with pytest.raises(ValueError, match="needs a certificate"):
        openssl.ServerCredential([], _key_der(other))
    assert openssl._fn("ERR_peek_error", ctypes.c_ulong)() == 0
    _credential_context(mine)  # a good credential still configures after the failures


def test_server_credential_gives_openssls_reason_for_a_weak_key() -> None:
    """Where load_cert_chain refuses a certificate, configure does too, saying why."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "weak.test")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(NOW - timedelta(days=1)).not_valid_after(NOW + timedelta(days=1))
            .sign(key, hashes.SHA256()))
    der_key = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    weak = openssl.ServerCredential([cert.public_bytes(serialization.Encoding.DER)], der_key)
    with pytest.raises(ValueError, match="refused the certificate: ee key too small"):
        _credential_context(weak)
    assert openssl._fn("ERR_peek_error", ctypes.c_ulong)() == 0


def test_server_credential_replaces_the_chain_and_cannot_be_copied() -> None:
    root = trustme.CA()
    with_intermediate = identity.credential(root.create_child_ca().issue_cert("a.test"))
    ctx = _credential_context(with_intermediate)
    with_intermediate.configure(ctx)  # again: one intermediate, not two
    assert _chain_length(ctx) == 1
    identity.credential(root.issue_cert("b.test")).configure(ctx)
    assert _chain_length(ctx) == 0
    for copy_it in (pickle.dumps, copy.copy):
        with pytest.raises(TypeError, match="build one per process"):
            copy_it(with_intermediate)


def _chain_length(ctx: ssl.SSLContext) -> int:
    """The extra certificates a context sends (SSL_CTX_get0_chain_certs, SSL_CTRL 115)."""
    stack = ctypes.c_void_p()
    openssl.SSL_CTX_ctrl(openssl.ssl_ctx_pointer(ctx), 115, 0, ctypes.byref(stack))
    return openssl.OPENSSL_sk_num(stack.value) if stack.value else 0


def _key_der(leaf: trustme.LeafCert) -> bytes:
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), None)
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
