"""OpenSSL through ctypes: the only place in edge that touches OpenSSL beyond the ``ssl`` module.

Why this exists (DESIGN.md, "Hard points" 1-4): Python 3.11's ``ssl`` aborts the
handshake when a client certificate fails verification, offers no verify
callback, exposes only the peer's leaf, and always validates against the wall
clock. A Cloudflare-style edge must finish the handshake, record OpenSSL's
verdict per depth, see the chain the client sent, and validate at *simulated*
time. This module does exactly that, through ctypes, on the very libssl and
libcrypto that CPython's ``_ssl`` extension links, and nothing more.

How it stays honest:

* Symbols are resolved through a ``dlopen(RTLD_NOLOAD)`` handle on the
  ``_ssl`` extension itself, so ``dlsym`` searches ``_ssl``'s own dependency
  scope: we can only ever get the libssl/libcrypto that ``_ssl`` uses, never
  load a second copy (cryptography's statically linked OpenSSL is invisible).
* ``SSL_CTX*``/``SSL*`` are read from CPython's object layout
  (``Modules/_ssl.c``: ``PySSLContext { PyObject_HEAD; SSL_CTX *ctx; ...}``,
  ``PySSLSocket { PyObject_HEAD; PyObject *Socket; SSL *ssl; ...}``). At import
  :func:`_self_check` reads settings back through OpenSSL and compares them
  with the Python-level values for two different configurations; any mismatch
  raises ``RuntimeError`` naming what differed, before anything can misbehave.
* :func:`verify` replays exactly what OpenSSL's ``ssl_verify_cert_chain``
  (ssl/ssl_cert.c, 3.0) does for a server checking a client certificate:
  ``X509_STORE_CTX_init(store, leaf, [leaf, *sent])``, auth level = the
  context's security level, ``X509_STORE_CTX_set_default("ssl_client")``
  (purpose sslclient, trust sslclient, depth from "default" = 100), then
  ``X509_VERIFY_PARAM_set1`` with the context's own parameters. The store's
  parameters (where Python keeps ``verify_flags``) are copied from the
  context too. Tests check that it agrees with real handshakes.

Verdict convention (used by both :func:`verify` and
:attr:`PeerVerification.verdict`): the FIRST error OpenSSL reports is the
verdict - it is what OpenSSL would have stopped on without our callback. After a
handshake with the callback, ``SSL_get_verify_result`` holds the LAST reported
error instead (verification continues past each error); both are exposed.
``Verdict.chain`` is the chain OpenSSL built (leaf first, trust anchor last on
success), so a caller can tell which anchor a chain verified to.

Single-threaded use is assumed (one Trio thread). Not thread-safe.
"""

from __future__ import annotations

import ctypes
import math
import os
import ssl
import sys
import weakref
from ctypes import POINTER, byref, c_char_p, c_int, c_long, c_uint64, c_ulong, c_void_p
from datetime import datetime
from typing import NamedTuple, Sequence, Union

import _ssl

__all__ = [
    "Verdict",
    "PeerVerification",
    "ssl_ctx_pointer",
    "ssl_pointer",
    "install_verify_callback",
    "has_verify_callback",
    "sync_verify_with_context",
    "set_verify_depth",
    "set_any_purpose",
    "add_crls",
    "disable_session_cache",
    "ServerCredential",
    "session_cache_mode",
    "get_verify_depth",
    "track",
    "set_verify_time",
    "peer_verification",
    "verify",
    "verify_error_string",
    "pending_records",
    "X509_V_FLAG_NO_CHECK_TIME",
]

AtTime = Union[datetime, int, float, None]
"""A validation time: aware datetime or POSIX seconds; ``None`` = do not check time."""

X509_V_OK = 0
X509_V_ERR_UNSPECIFIED = 1
X509_V_FLAG_USE_CHECK_TIME = 0x2
X509_V_FLAG_NO_CHECK_TIME = 0x200000

# --------------------------------------------------------------------------- #
# Binding to the libssl/libcrypto that _ssl links                              #
# --------------------------------------------------------------------------- #


def _open_ssl_scope() -> ctypes.CDLL:
    """Handle whose dlsym scope is ``_ssl`` plus the libraries it links.

    RTLD_NOLOAD: fails instead of loading anything if ``_ssl`` is not loaded.
    """
    path = getattr(_ssl, "__file__", None)
    if not path:
        raise RuntimeError("edge.pki.openssl: _ssl is built into the interpreter; cannot find its libssl")
    return ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_NOW)


_lib = _open_ssl_scope()


def _fn(name: str, restype: object, *argtypes: object) -> ctypes._CFuncPtr:  # type: ignore[name-defined]
    f = getattr(_lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


_VERIFY_CB = ctypes.CFUNCTYPE(c_int, c_int, c_void_p)  # int (*)(int, X509_STORE_CTX *)

OpenSSL_version_num = _fn("OpenSSL_version_num", c_ulong)
# libssl
SSL_CTX_get_verify_mode = _fn("SSL_CTX_get_verify_mode", c_int, c_void_p)
SSL_CTX_get_options = _fn("SSL_CTX_get_options", c_uint64, c_void_p)
SSL_CTX_set_verify = _fn("SSL_CTX_set_verify", None, c_void_p, c_int, _VERIFY_CB)
SSL_CTX_get_verify_callback = _fn("SSL_CTX_get_verify_callback", c_void_p, c_void_p)
SSL_CTX_get_security_level = _fn("SSL_CTX_get_security_level", c_int, c_void_p)
SSL_CTX_set_verify_depth = _fn("SSL_CTX_set_verify_depth", None, c_void_p, c_int)
SSL_CTX_ctrl = _fn("SSL_CTX_ctrl", c_long, c_void_p, c_int, c_long, c_void_p)
SSL_CTX_set_purpose = _fn("SSL_CTX_set_purpose", c_int, c_void_p, c_int)
SSL_CTX_use_certificate = _fn("SSL_CTX_use_certificate", c_int, c_void_p, c_void_p)
SSL_CTX_use_PrivateKey = _fn("SSL_CTX_use_PrivateKey", c_int, c_void_p, c_void_p)
SSL_CTX_check_private_key = _fn("SSL_CTX_check_private_key", c_int, c_void_p)
d2i_X509_CRL = _fn("d2i_X509_CRL", c_void_p, c_void_p, POINTER(c_void_p), c_long)
X509_STORE_add_crl = _fn("X509_STORE_add_crl", c_int, c_void_p, c_void_p)
X509_CRL_free = _fn("X509_CRL_free", None, c_void_p)
SSL_CTX_get_verify_depth = _fn("SSL_CTX_get_verify_depth", c_int, c_void_p)
SSL_CTX_get0_param = _fn("SSL_CTX_get0_param", c_void_p, c_void_p)
SSL_CTX_get_cert_store = _fn("SSL_CTX_get_cert_store", c_void_p, c_void_p)
SSL_get_SSL_CTX = _fn("SSL_get_SSL_CTX", c_void_p, c_void_p)
SSL_is_server = _fn("SSL_is_server", c_int, c_void_p)
SSL_get_verify_mode = _fn("SSL_get_verify_mode", c_int, c_void_p)
SSL_get_verify_callback = _fn("SSL_get_verify_callback", c_void_p, c_void_p)
SSL_set_verify = _fn("SSL_set_verify", None, c_void_p, c_int, _VERIFY_CB)
SSL_get0_param = _fn("SSL_get0_param", c_void_p, c_void_p)
SSL_is_init_finished = _fn("SSL_is_init_finished", c_int, c_void_p)
SSL_get_verify_result = _fn("SSL_get_verify_result", c_long, c_void_p)
SSL_get_peer_cert_chain = _fn("SSL_get_peer_cert_chain", c_void_p, c_void_p)
SSL_get0_verified_chain = _fn("SSL_get0_verified_chain", c_void_p, c_void_p)
SSL_get_ex_data_X509_STORE_CTX_idx = _fn("SSL_get_ex_data_X509_STORE_CTX_idx", c_int)
# libcrypto
X509_STORE_CTX_get_ex_data = _fn("X509_STORE_CTX_get_ex_data", c_void_p, c_void_p, c_int)
X509_STORE_CTX_get_error = _fn("X509_STORE_CTX_get_error", c_int, c_void_p)
X509_STORE_CTX_get_error_depth = _fn("X509_STORE_CTX_get_error_depth", c_int, c_void_p)
X509_STORE_CTX_get0_chain = _fn("X509_STORE_CTX_get0_chain", c_void_p, c_void_p)
X509_STORE_new = _fn("X509_STORE_new", c_void_p)
X509_STORE_free = _fn("X509_STORE_free", None, c_void_p)
X509_STORE_add_cert = _fn("X509_STORE_add_cert", c_int, c_void_p, c_void_p)
X509_STORE_get0_param = _fn("X509_STORE_get0_param", c_void_p, c_void_p)
X509_STORE_CTX_new = _fn("X509_STORE_CTX_new", c_void_p)
X509_STORE_CTX_free = _fn("X509_STORE_CTX_free", None, c_void_p)
X509_STORE_CTX_init = _fn("X509_STORE_CTX_init", c_int, c_void_p, c_void_p, c_void_p, c_void_p)
X509_STORE_CTX_get0_param = _fn("X509_STORE_CTX_get0_param", c_void_p, c_void_p)
X509_STORE_CTX_set_default = _fn("X509_STORE_CTX_set_default", c_int, c_void_p, c_char_p)
X509_VERIFY_PARAM_set1 = _fn("X509_VERIFY_PARAM_set1", c_int, c_void_p, c_void_p)
X509_VERIFY_PARAM_set_auth_level = _fn("X509_VERIFY_PARAM_set_auth_level", None, c_void_p, c_int)
X509_VERIFY_PARAM_set_time = _fn("X509_VERIFY_PARAM_set_time", None, c_void_p, c_long)  # time_t (LP64)
X509_VERIFY_PARAM_set_flags = _fn("X509_VERIFY_PARAM_set_flags", c_int, c_void_p, c_ulong)
X509_VERIFY_PARAM_clear_flags = _fn("X509_VERIFY_PARAM_clear_flags", c_int, c_void_p, c_ulong)
X509_VERIFY_PARAM_get_flags = _fn("X509_VERIFY_PARAM_get_flags", c_ulong, c_void_p)
X509_verify_cert = _fn("X509_verify_cert", c_int, c_void_p)
X509_verify_cert_error_string = _fn("X509_verify_cert_error_string", c_char_p, c_long)
d2i_X509 = _fn("d2i_X509", c_void_p, c_void_p, POINTER(c_void_p), c_long)
i2d_X509 = _fn("i2d_X509", c_int, c_void_p, POINTER(c_void_p))
X509_free = _fn("X509_free", None, c_void_p)
d2i_AutoPrivateKey = _fn("d2i_AutoPrivateKey", c_void_p, c_void_p, POINTER(c_void_p), c_long)
EVP_PKEY_free = _fn("EVP_PKEY_free", None, c_void_p)
OPENSSL_sk_new_null = _fn("OPENSSL_sk_new_null", c_void_p)
OPENSSL_sk_push = _fn("OPENSSL_sk_push", c_int, c_void_p, c_void_p)
OPENSSL_sk_num = _fn("OPENSSL_sk_num", c_int, c_void_p)
OPENSSL_sk_value = _fn("OPENSSL_sk_value", c_void_p, c_void_p, c_int)
OPENSSL_sk_free = _fn("OPENSSL_sk_free", None, c_void_p)
ERR_clear_error = _fn("ERR_clear_error", None)
ERR_get_error = _fn("ERR_get_error", c_ulong)
ERR_reason_error_string = _fn("ERR_reason_error_string", c_char_p, c_ulong)

if OpenSSL_version_num() != ssl.OPENSSL_VERSION_NUMBER:
    raise RuntimeError(
        f"edge.pki.openssl: libssl reached through _ssl reports version {OpenSSL_version_num():#x}, "
        f"ssl.OPENSSL_VERSION_NUMBER is {ssl.OPENSSL_VERSION_NUMBER:#x}"
    )

_SSL_EX_IDX: int = SSL_get_ex_data_X509_STORE_CTX_idx()

# --------------------------------------------------------------------------- #
# Pointers behind Python objects                                              #
# --------------------------------------------------------------------------- #

_HEAD = object.__basicsize__  # sizeof(PyObject_HEAD): 16 on 64-bit release builds
_PTR = ctypes.sizeof(c_void_p)
_CTX_OFFSET = _HEAD  # PySSLContext.ctx
_SSL_OFFSET = _HEAD + _PTR  # PySSLSocket.ssl (after PyObject *Socket)


def ssl_ctx_pointer(context: ssl.SSLContext) -> int:
    """Address of the ``SSL_CTX`` behind *context* (valid while it lives)."""
    if not isinstance(context, _ssl._SSLContext):
        raise TypeError(f"expected ssl.SSLContext, got {type(context).__name__}")
    return c_void_p.from_address(id(context) + _CTX_OFFSET).value or 0


def ssl_pointer(conn: ssl.SSLObject | ssl.SSLSocket) -> int:
    """Address of the ``SSL`` behind an ``SSLObject``/``SSLSocket`` (valid while it lives)."""
    inner = getattr(conn, "_sslobj", None)
    if type(inner) is not _ssl._SSLSocket:
        raise TypeError(f"expected a wrapped SSLObject/SSLSocket, got {type(conn).__name__}")
    return c_void_p.from_address(id(inner) + _SSL_OFFSET).value or 0


# Python's CERT_* values -> OpenSSL SSL_VERIFY_* bits (CERT_REQUIRED adds FAIL_IF_NO_PEER_CERT).
_MODE_BITS = {ssl.CERT_NONE: 0, ssl.CERT_OPTIONAL: 1, ssl.CERT_REQUIRED: 3}


def _readable(addr: int) -> bool:
    """Is *addr* inside a readable mapping? Guards the self-check against
    dereferencing NULL or a small integer if the layout ever shifts."""
    if not addr or addr % 8:
        return False
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                lo, _, hi = line.split(" ", 1)[0].partition("-")
                if int(lo, 16) <= addr < int(hi, 16):
                    return line.split()[1].startswith("r")
    except OSError:
        return True  # no /proc: cannot tell, rely on the read-back checks
    return False


def _self_check() -> None:
    """Prove the layout assumptions on this interpreter, or fail loudly.

    Two contexts with different verify modes and options must read back the
    same through OpenSSL as through Python, and an SSLObject's SSL must point
    back at its context and agree on server side and verify mode.
    """
    problems: list[str] = []
    settings = [
        (ssl.CERT_NONE, ssl.OP_NO_TICKET, False),
        (ssl.CERT_REQUIRED, ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE, True),
    ]
    for mode, extra_op, server_side in settings:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server_side else ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = mode
        ctx.options |= extra_op
        p = ssl_ctx_pointer(ctx)
        if not _readable(p):
            problems.append(f"SSL_CTX* candidate {p:#x} is not a readable address")
            break
        if SSL_CTX_get_verify_mode(p) != _MODE_BITS[ctx.verify_mode]:
            problems.append(f"SSL_CTX_get_verify_mode {SSL_CTX_get_verify_mode(p)} != {ctx.verify_mode!r}")
        if SSL_CTX_get_options(p) != int(ctx.options):
            problems.append(f"SSL_CTX_get_options {SSL_CTX_get_options(p):#x} != options {int(ctx.options):#x}")
        conn = ctx.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_side=server_side)
        s = ssl_pointer(conn)
        if not _readable(s):
            problems.append(f"SSL* candidate {s:#x} is not a readable address")
        elif SSL_get_SSL_CTX(s) != p:
            problems.append("SSL_get_SSL_CTX(ssl) is not the context's SSL_CTX")
        elif bool(SSL_is_server(s)) != server_side:
            problems.append(f"SSL_is_server {SSL_is_server(s)} != server_side {server_side}")
        elif SSL_get_verify_mode(s) & 3 != _MODE_BITS[mode]:
            problems.append(f"SSL_get_verify_mode {SSL_get_verify_mode(s)} != {mode!r}")
    if problems:
        raise RuntimeError(
            "edge.pki.openssl: CPython _ssl object layout is not what this module assumes "
            f"(Python {sys.version.split()[0]}, {ssl.OPENSSL_VERSION}): " + "; ".join(problems)
        )


_self_check()

# --------------------------------------------------------------------------- #
# The verify callback                                                         #
# --------------------------------------------------------------------------- #

_records: dict[int, list[tuple[int, int]]] = {}
"""SSL* address -> [(depth, code), ...] in the order OpenSSL reported them."""

_callback_faults = 0  # exceptions swallowed inside the callback (should stay 0)


def _verify_cb_impl(preverify_ok: int, store_ctx: int | None) -> int:
    """Record each failure OpenSSL reports and always continue.

    Returning 1 makes OpenSSL keep going past each error, so the handshake
    completes (except when X509_verify_cert itself fails internally, e.g.
    X509_V_ERR_UNSPECIFIED on name-constraint blow-up: then it aborts anyway).
    ``SSL_get_verify_result`` ends up with the LAST error. Must never raise into C.
    """
    global _callback_faults
    if preverify_ok:
        return 1
    entry = None
    try:
        # Only connections that `track()` registered are recorded: nothing else can leak.
        entry = _records.get(X509_STORE_CTX_get_ex_data(store_ctx, _SSL_EX_IDX) or 0)
        if entry is not None:
            depth = X509_STORE_CTX_get_error_depth(store_ctx)
            entry.append((depth, X509_STORE_CTX_get_error(store_ctx)))
        # The failed check may have left errors on this thread's OpenSSL queue; the handshake
        # goes on, so they would surface later as an SSLError on some other connection.
        ERR_clear_error()
    except BaseException:  # noqa: BLE001 - nothing may propagate into OpenSSL
        _callback_faults += 1
        try:
            if entry is not None:  # the verdict must not look cleaner than it was
                entry.append((-1, X509_V_ERR_UNSPECIFIED))
        except BaseException:  # noqa: BLE001
            pass
    return 1


_VERIFY_CALLBACK = _VERIFY_CB(_verify_cb_impl)
# One module-level thunk for the life of the process: OpenSSL keeps raw
# pointers to it in every SSL_CTX/SSL. The extra reference means it is never
# freed, not even when this module's globals are cleared at shutdown.
ctypes.pythonapi.Py_IncRef(ctypes.py_object(_VERIFY_CALLBACK))
_VERIFY_CALLBACK_ADDR: int = ctypes.cast(_VERIFY_CALLBACK, c_void_p).value  # type: ignore[assignment]


def install_verify_callback(context: ssl.SSLContext) -> None:
    """Install the recording callback on *context*, keeping its verify mode.

    Affects connections created afterwards (OpenSSL copies mode and callback
    into each SSL at ``SSL_new``). CPython 3.11 keeps the callback when
    ``verify_mode`` is changed later. With ``CERT_NONE`` it is never called.
    """
    p = ssl_ctx_pointer(context)
    SSL_CTX_set_verify(p, SSL_CTX_get_verify_mode(p), _VERIFY_CALLBACK)


def has_verify_callback(context: ssl.SSLContext) -> bool:
    """True if *context*'s SSL_CTX currently has our callback."""
    return SSL_CTX_get_verify_callback(ssl_ctx_pointer(context)) == _VERIFY_CALLBACK_ADDR


SSL_CTRL_SET_SESS_CACHE_MODE = 44  # SSL_CTX_set_session_cache_mode() is this macro
SSL_CTRL_GET_SESS_CACHE_MODE = 45
SSL_SESS_CACHE_OFF = 0


def disable_session_cache(context: ssl.SSLContext) -> None:
    """No server-side session cache: no resumption by session id (TLS 1.2).

    OpenSSL does not verify a resumed session's client certificate again, so a resumed
    connection would carry the verdict of the trust of its first handshake. With tickets off as
    well, every connection does a full handshake and is verified under its own snapshot.
    """
    SSL_CTX_ctrl(ssl_ctx_pointer(context), SSL_CTRL_SET_SESS_CACHE_MODE, SSL_SESS_CACHE_OFF, None)


def session_cache_mode(context: ssl.SSLContext) -> int:
    return SSL_CTX_ctrl(ssl_ctx_pointer(context), SSL_CTRL_GET_SESS_CACHE_MODE, 0, None)


SSL_CTRL_CHAIN = 88  # SSL_CTX_clear_chain_certs() is SSL_CTX_ctrl(ctx, 88, 0, NULL)
SSL_CTRL_CHAIN_CERT = 89  # SSL_CTX_add1_chain_cert() is SSL_CTX_ctrl(ctx, 89, 1, x509)


class ServerCredential:
    """A server certificate, its chain and its private key, decoded by OpenSSL once and then
    installed into any number of contexts by reference.

    Why: ``SSLContext.load_cert_chain`` reads a file and decodes the PEM key and chain again
    for every context (the call alone: 1.3 ms for a one-name certificate, 2.7 ms for one with
    2,000 names, measured here), and an edge node builds a context per trust set of its snapshot, all
    presenting the same certificate. Installing decoded objects is a reference count each.

    ``chain_der``: the certificate first, then what it should be sent with (intermediates);
    ``key_der``: its private key (PKCS#8 or traditional DER). ValueError when OpenSSL cannot
    decode them; ``configure`` raises ValueError with OpenSSL's reason where
    ``load_cert_chain`` would refuse (a key that does not match, a key too small for the
    context's security level). It holds pointers: it cannot be copied or pickled (a worker
    process builds its own from the DER).
    """

    def __init__(self, chain_der: Sequence[bytes], key_der: bytes) -> None:
        if not chain_der:
            raise ValueError("edge.pki.openssl: a server credential needs a certificate")
        certs: list[int] = []
        try:
            for der in chain_der:
                certs.append(_load_x509(der))
            key = _load_private_key(key_der)
        except BaseException:
            for x in certs:
                X509_free(x)
            raise
        self._certs = tuple(certs)
        self._key = key
        weakref.finalize(self, _free_credential, self._certs, key)

    def configure(self, context: ssl.SSLContext) -> None:
        """Make *context* present this certificate and chain (replacing any it had), as
        ``load_cert_chain`` would."""
        ctx = ssl_ctx_pointer(context)
        leaf, *chain = self._certs
        # each call takes its own references
        _check(SSL_CTX_use_certificate(ctx, leaf), "the certificate")
        _check(SSL_CTX_ctrl(ctx, SSL_CTRL_CHAIN, 0, None), "clearing the chain")
        for x in chain:
            _check(SSL_CTX_ctrl(ctx, SSL_CTRL_CHAIN_CERT, 1, x), "a chain certificate")
        _check(SSL_CTX_use_PrivateKey(ctx, self._key), "the private key")
        _check(SSL_CTX_check_private_key(ctx), "the private key against the certificate")

    def __reduce__(self):
        raise TypeError("a ServerCredential holds OpenSSL pointers: build one per process")


def _check(result: int, what: str) -> None:
    """ValueError naming OpenSSL's reason unless `result` is 1; the error queue left empty."""
    if result == 1:
        return
    reason = ERR_reason_error_string(ERR_get_error())
    ERR_clear_error()
    text = reason.decode("ascii", "replace") if reason else "refused"
    raise ValueError(f"edge.pki.openssl: OpenSSL refused {what}: {text}")


def _free_credential(certs: tuple[int, ...], key: int) -> None:
    """Drop the credential's own references; contexts keep theirs."""
    for x in certs:
        X509_free(x)
    EVP_PKEY_free(key)


X509_PURPOSE_ANY = 7


def set_any_purpose(context: ssl.SSLContext) -> None:
    """Check no purpose (EKU) at all: for conformance cases that ask for none. The edge itself
    always checks the client-auth purpose."""
    if SSL_CTX_set_purpose(ssl_ctx_pointer(context), X509_PURPOSE_ANY) != 1:
        ERR_clear_error()
        raise RuntimeError("edge.pki.openssl: SSL_CTX_set_purpose(X509_PURPOSE_ANY) failed")


def add_crls(context: ssl.SSLContext, crl_ders: Sequence[bytes]) -> None:
    """Load CRLs into the context's store and check them on the whole chain (conformance
    cases carry CRLs; the edge takes none). ValueError for a CRL OpenSSL cannot parse."""
    store = SSL_CTX_get_cert_store(ssl_ctx_pointer(context))
    for der in crl_ders:
        crl = _decode(d2i_X509_CRL, der, "CRL")
        added = X509_STORE_add_crl(store, crl)  # takes its own reference
        X509_CRL_free(crl)
        if not added:
            ERR_clear_error()
            raise RuntimeError("edge.pki.openssl: X509_STORE_add_crl failed")
    context.verify_flags |= ssl.VERIFY_CRL_CHECK_CHAIN


def set_verify_depth(context: ssl.SSLContext, depth: int) -> None:
    """Allow at most `depth` CA certificates above the leaf (OpenSSL's verify depth).

    The stdlib has no setter. Connections copy the context's parameters when they are created,
    so every context a connection may switch to should carry the same depth; the standalone
    `verify(like=context)` copies it too.
    """
    if depth < 0:
        raise ValueError(f"verify depth must be >= 0, got {depth}")
    SSL_CTX_set_verify_depth(ssl_ctx_pointer(context), depth)


def get_verify_depth(context: ssl.SSLContext) -> int:
    return SSL_CTX_get_verify_depth(ssl_ctx_pointer(context))


def sync_verify_with_context(conn: ssl.SSLObject) -> None:
    """Give a connection the verify mode of its *current* context, with our callback.

    Needed after switching ``conn.context`` in an SNI callback: OpenSSL's
    ``SSL_set_SSL_CTX`` swaps certificate and trust store but keeps the verify
    mode and callback the SSL got from its ORIGINAL context, so whether a
    client certificate is requested would otherwise not follow the hostname.
    """
    s = ssl_pointer(conn)
    SSL_set_verify(s, SSL_CTX_get_verify_mode(SSL_get_SSL_CTX(s)), _VERIFY_CALLBACK)


# --------------------------------------------------------------------------- #
# Per-connection functions                                                    #
# --------------------------------------------------------------------------- #


def _time_t(at_time: datetime | int | float) -> int:
    if isinstance(at_time, datetime):
        if at_time.tzinfo is None:
            raise ValueError("validation time must be timezone-aware")
        return math.floor(at_time.timestamp())
    return math.floor(at_time)


def _apply_time(param: int, at_time: AtTime) -> None:
    """``None``: skip validity-period checks; otherwise check at that instant."""
    if at_time is None:
        X509_VERIFY_PARAM_clear_flags(param, X509_V_FLAG_USE_CHECK_TIME)  # it would win
        X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_NO_CHECK_TIME)
    else:
        X509_VERIFY_PARAM_clear_flags(param, X509_V_FLAG_NO_CHECK_TIME)
        X509_VERIFY_PARAM_set_time(param, _time_t(at_time))  # sets USE_CHECK_TIME


def set_verify_time(conn: ssl.SSLObject, at_time: AtTime) -> None:
    """Validate this connection's peer chain at *at_time* (call before the handshake).

    Sets the time on the connection's own ``X509_VERIFY_PARAM``
    (``SSL_get0_param``), which OpenSSL copies over the store defaults when it
    verifies; ``None`` turns validity-period checks off (X509_V_FLAG_NO_CHECK_TIME).
    """
    _apply_time(SSL_get0_param(ssl_pointer(conn)), at_time)


_WALL_CLOCK: object = object()


def track(conn: ssl.SSLObject, at_time: AtTime | object = _WALL_CLOCK) -> None:
    """Start recording for a new server connection; call after ``wrap_bio``, before the handshake.

    Clears anything left under this SSL address, registers cleanup when
    *conn* is collected (so nothing leaks even if :func:`peer_verification`
    is never called), and optionally sets the validation time.
    """
    addr = ssl_pointer(conn)
    _records[addr] = []
    # Runs before the SSL is freed (the SSLObject owns it), so the address
    # cannot have been reused by another connection yet.
    weakref.finalize(conn, _records.pop, addr, None)
    if at_time is not _WALL_CLOCK:
        _apply_time(SSL_get0_param(addr), at_time)  # type: ignore[arg-type]


def pending_records() -> int:
    """Number of connections with recorded state (for leak tests and monitoring)."""
    return len(_records)


class Verdict(NamedTuple):
    """OpenSSL's verdict on a chain: first error reported, or success.

    ``code`` is 0 (X509_V_OK) and ``depth`` -1 when ``ok``; ``depth`` is also
    -1 when unknown (resumed session). ``chain``: DER of the chain OpenSSL
    built, leaf first and the trust anchor last when ``ok`` (which anchor it
    verified to); on failure whatever part was built (may be empty; a
    handshake continues past errors, so there it can differ from what
    :func:`verify` built for the same chain); empty when not known (resumed
    session, handshake that did not finish).
    """

    ok: bool
    code: int
    message: str
    depth: int
    chain: tuple[bytes, ...] = ()


def verify_error_string(code: int) -> str:
    """OpenSSL's text for an X509_V_ERR_* code (X509_verify_cert_error_string)."""
    s = X509_verify_cert_error_string(code)
    return s.decode("ascii", "replace") if s else f"error {code}"


_OK = Verdict(True, X509_V_OK, "ok", -1)


def _verdict(code: int, depth: int, chain: tuple[bytes, ...] = ()) -> Verdict:
    if code == X509_V_OK:
        return _OK._replace(chain=chain) if chain else _OK
    return Verdict(False, code, verify_error_string(code), depth, chain)


def _der(x509: int) -> bytes:
    n = i2d_X509(x509, None)
    if n <= 0:
        raise RuntimeError("edge.pki.openssl: i2d_X509 failed")
    buf = ctypes.create_string_buffer(n)
    p = c_void_p(ctypes.addressof(buf))
    i2d_X509(x509, byref(p))
    return buf.raw


def _stack_der(sk: int | None) -> tuple[bytes, ...]:
    """DER of each X509 in a borrowed STACK_OF(X509) (no refcounts taken)."""
    if not sk:
        return ()
    return tuple(_der(OPENSSL_sk_value(sk, i)) for i in range(OPENSSL_sk_num(sk)))


class PeerVerification(NamedTuple):
    """What a server connection learned about the client certificate.

    ``leaf_der``: the certificate the client presented (``None``: none, or
    the handshake did not finish). ``chain_der``: what the client sent after
    its leaf (server side of ``SSL_get_peer_cert_chain``).
    ``verified_chain_der``: the path OpenSSL built, leaf first (trust anchor
    last when it got that far). ``errors``: every (depth, code) reported, in
    order. ``verify_result``: ``SSL_get_verify_result`` - the LAST reported
    error, which is often NOT the first (0 if none).

    ``resumed``: on a resumed session OpenSSL does not verify again: no
    callback, no chains, and ``verify_result`` is the one stored in the
    session (decided under the trust of the ORIGINAL handshake).
    """

    handshake_done: bool
    resumed: bool
    leaf_der: bytes | None
    chain_der: tuple[bytes, ...]
    verified_chain_der: tuple[bytes, ...]
    errors: tuple[tuple[int, int], ...]
    verify_result: int

    @property
    def verdict(self) -> Verdict | None:
        """Same convention as :func:`verify` (``chain`` = ``verified_chain_der``);
        ``None`` if no certificate was verified."""
        if self.errors:
            depth, code = self.errors[0]
            return _verdict(code, depth, self.verified_chain_der)
        if self.leaf_der is None:
            return None
        # resumed session (or an error outside the callback): code only, depth unknown (-1)
        return _verdict(self.verify_result, -1, self.verified_chain_der)


def peer_verification(conn: ssl.SSLObject) -> PeerVerification:
    """Collect the client-certificate outcome (pops the records).

    Call after the handshake; also works after a FAILED handshake, where the
    recorded errors say why (e.g. X509_V_ERR_UNSPECIFIED aborts even though
    the callback returns 1).
    """
    s = ssl_pointer(conn)
    done = bool(SSL_is_init_finished(s))
    leaf = conn.getpeercert(binary_form=True) if done else None  # present even if verification "failed"
    return PeerVerification(
        handshake_done=done,
        resumed=done and conn.session_reused,
        leaf_der=leaf,
        chain_der=_stack_der(SSL_get_peer_cert_chain(s)) if leaf else (),
        verified_chain_der=_stack_der(SSL_get0_verified_chain(s)) if leaf else (),
        errors=tuple(_records.pop(s, ())),
        verify_result=SSL_get_verify_result(s),
    )


# --------------------------------------------------------------------------- #
# Standalone verification                                                     #
# --------------------------------------------------------------------------- #

_default_like: ssl.SSLContext | None = None


def _template(like: ssl.SSLContext | None) -> ssl.SSLContext:
    global _default_like
    if like is not None:
        return like
    if _default_like is None:
        _default_like = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    return _default_like


def _decode(d2i, der: bytes, what: str) -> int:
    """An OpenSSL object decoded from DER by a ``d2i_*`` function (the caller frees it)."""
    p = c_void_p(ctypes.cast(c_char_p(der), c_void_p).value)
    decoded = d2i(None, byref(p), len(der))
    if not decoded:
        ERR_clear_error()
        raise ValueError(f"edge.pki.openssl: not a DER {what}")
    return decoded


def _load_x509(der: bytes) -> int:
    return _decode(d2i_X509, der, "X.509 certificate")


def _load_private_key(der: bytes) -> int:
    return _decode(d2i_AutoPrivateKey, der, "private key")


def _fill_store(store: int, trusted_ders: Sequence[bytes], tmpl: int) -> None:
    """A fresh store like the template context's: its store flags, these anchors."""
    X509_VERIFY_PARAM_set1(X509_STORE_get0_param(store), X509_STORE_get0_param(SSL_CTX_get_cert_store(tmpl)))
    for der in trusted_ders:
        x = _load_x509(der)
        ok = X509_STORE_add_cert(store, x)  # takes its own reference
        X509_free(x)
        if not ok:
            raise RuntimeError("edge.pki.openssl: X509_STORE_add_cert failed")


def verify(
    leaf_der: bytes,
    intermediates_der: Sequence[bytes],
    trusted: Sequence[bytes] | ssl.SSLContext,
    at_time: AtTime,
    *,
    like: ssl.SSLContext | None = None,
) -> Verdict:
    """Verify a client chain outside a handshake, exactly as a server handshake would.

    Mirrors ``ssl_verify_cert_chain`` for a server: untrusted = leaf plus
    *intermediates_der* in the order sent, purpose/trust ``ssl_client``,
    auth level, store flags (``verify_flags``) and SSL_CTX parameters taken from
    *like* (default: *trusted* if it is a context, else a plain
    ``SSLContext(PROTOCOL_TLS_SERVER)``).

    *trusted*: DER trust anchors, or an ``SSLContext`` whose own certificate
    store is used as is (the very store its handshakes use, with that store's
    ``verify_flags`` even when *like* is another context; also saves the
    ~0.14 ms that OpenSSL 3.0 spends parsing each certificate). *at_time*:
    aware datetime or POSIX seconds; ``None`` = no validity-period check.

    The returned ``Verdict.chain`` is the chain OpenSSL built
    (``X509_STORE_CTX_get0_chain``): on success leaf first, trust anchor last.
    """
    if like is None and isinstance(trusted, ssl.SSLContext):
        like = trusted
    tmpl = ssl_ctx_pointer(_template(like))
    certs: list[int] = []
    own_store = not isinstance(trusted, ssl.SSLContext)
    store = X509_STORE_new() if own_store else SSL_CTX_get_cert_store(ssl_ctx_pointer(trusted))
    sk = OPENSSL_sk_new_null()
    sctx = X509_STORE_CTX_new()
    try:
        if not (store and sk and sctx):
            raise MemoryError("edge.pki.openssl: allocation failed")
        if own_store:
            _fill_store(store, trusted, tmpl)  # type: ignore[arg-type]
        for der in (leaf_der, *intermediates_der):
            certs.append(_load_x509(der))
            OPENSSL_sk_push(sk, certs[-1])
        if not X509_STORE_CTX_init(sctx, store, certs[0], sk):
            raise RuntimeError("edge.pki.openssl: X509_STORE_CTX_init failed")
        param = X509_STORE_CTX_get0_param(sctx)
        X509_VERIFY_PARAM_set_auth_level(param, SSL_CTX_get_security_level(tmpl))
        X509_STORE_CTX_set_default(sctx, b"ssl_client")
        X509_VERIFY_PARAM_set1(param, SSL_CTX_get0_param(tmpl))
        _apply_time(param, at_time)
        rc = X509_verify_cert(sctx)
        code = X509_STORE_CTX_get_error(sctx)
        chain = _stack_der(X509_STORE_CTX_get0_chain(sctx))  # borrowed: freed with sctx
        if rc == 1:
            return _verdict(X509_V_OK, -1, chain)
        return _verdict(code or X509_V_ERR_UNSPECIFIED, X509_STORE_CTX_get_error_depth(sctx), chain)
    finally:
        if sctx:
            X509_STORE_CTX_free(sctx)
        if sk:
            OPENSSL_sk_free(sk)
        for x in certs:
            X509_free(x)
        if store and own_store:
            X509_STORE_free(store)
        ERR_clear_error()  # never leave errors for _ssl to misreport later
