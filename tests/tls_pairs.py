"""In-memory mTLS handshakes for tests: server/client contexts and an SSLObject pair over MemoryBIOs.

The server side goes through `edge.pki.openssl` (recording verify callback, `track`, validation
time, `peer_verification`), so a handshake yields what the edge would learn about the client
certificate. Nothing is generated at import: the server certificate is made on first use.
"""

from __future__ import annotations

import functools
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import trustme

from edge.pki import openssl

WALL_CLOCK = object()
"""Default `at_time` of `handshake`: validate at the wall clock (nothing set on the connection)."""


@functools.cache
def server_leaf() -> trustme.LeafCert:
    """The server's own certificate (its issuer is irrelevant: clients here do not verify it)."""
    return trustme.CA(organization_name="edge test server CA").issue_cert("edge.test")


def pem(blob: trustme.Blob) -> str:
    return blob.bytes().decode("ascii")


def der(blob: trustme.Blob) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem(blob))


def server_context(trusted_pem: str | None, *, callback: bool = True) -> ssl.SSLContext:
    """Server context: CERT_OPTIONAL, trusting *trusted_pem*, with the recording callback."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_leaf().configure_cert(ctx)
    if trusted_pem:
        ctx.load_verify_locations(cadata=trusted_pem)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    if callback:
        openssl.install_verify_callback(ctx)
    return ctx


def client_context(chain_pem: str | None, key_pem: str | None, *, max_tls12: bool = False) -> ssl.SSLContext:
    """Client context presenting *chain_pem* (leaf first), not verifying the server.

    Security level 0 so that odd test keys load; the SERVER keeps its defaults.
    Raises `ssl.SSLError` when OpenSSL refuses the certificate or key.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    if max_tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if chain_pem:
        with tempfile.TemporaryDirectory() as d:  # load_cert_chain only reads files
            cert, key = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
            Path(cert).write_text(chain_pem)
            Path(key).write_text(key_pem or "")
            ctx.load_cert_chain(cert, key)
    return ctx


def leaf_client(leaf: trustme.LeafCert, *, max_tls12: bool = False) -> ssl.SSLContext:
    """Client context presenting a trustme leaf with its chain."""
    chain = "".join(pem(b) for b in leaf.cert_chain_pems)
    return client_context(chain, pem(leaf.private_key_pem), max_tls12=max_tls12)


def _pump(src: ssl.MemoryBIO, dst: ssl.MemoryBIO) -> bool:
    data = src.read()
    if data:
        dst.write(data)
    return bool(data)


@dataclass
class Handshake:
    """Outcome of `handshake`: both ends, what the server learnt, and the errors raised."""

    client: ssl.SSLObject
    server: ssl.SSLObject
    verification: openssl.PeerVerification
    server_error: ssl.SSLError | None
    client_error: ssl.SSLError | None
    _bios: tuple[ssl.MemoryBIO, ssl.MemoryBIO, ssl.MemoryBIO, ssl.MemoryBIO]

    def client_session(self) -> ssl.SSLSession | None:
        """The client's session after the server's TLS 1.3 tickets reached it (for resumption)."""
        c_in, c_out, s_in, s_out = self._bios
        self.server.write(b"x")  # flushes the tickets ahead of one byte of application data
        _pump(s_out, c_in)
        self.client.read()
        return self.client.session


def handshake(
    client_ctx: ssl.SSLContext,
    server_ctx: ssl.SSLContext,
    *,
    at_time: object = WALL_CLOCK,
    server_hostname: str | None = None,
    session: ssl.SSLSession | None = None,
    before: Callable[[ssl.SSLObject], None] | None = None,
) -> Handshake:
    """Run one handshake over MemoryBIOs until both ends are done or stuck.

    The server connection is `track`ed (with *at_time* unless WALL_CLOCK; `None` = no time
    check) and `peer_verification` is collected at the end, also after a failed handshake.
    *before* runs on the server connection before the first flight.
    """
    bios = c_in, c_out, s_in, s_out = tuple(ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_side=False, server_hostname=server_hostname)
    if session is not None:
        client.session = session
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    if at_time is WALL_CLOCK:
        openssl.track(server)
    else:
        openssl.track(server, at_time)  # type: ignore[arg-type]
    if before:
        before(server)
    done_c = done_s = False
    client_error = server_error = None
    for _ in range(50):
        if not done_c:
            try:
                client.do_handshake()
                done_c = True
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as e:  # typically the server's alert; server_error tells why
                client_error, done_c = e, True
        moved = _pump(c_out, s_in)
        if not done_s:
            try:
                server.do_handshake()
                done_s = True
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as e:
                server_error, done_s = e, True
        moved |= _pump(s_out, c_in)
        if done_s and done_c and not moved:
            break
    else:
        raise AssertionError("handshake neither finished nor failed in 50 rounds")
    return Handshake(client, server, openssl.peer_verification(server), server_error, client_error, bios)
