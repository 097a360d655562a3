"""Per-call costs of edge.pki.openssl (the ctypes shim), against plain-ssl references.

This is a benchmark, not a test (the test suite asserts no timings):

    python benchmarks/openssl_shim_costs.py              # medians of 7 runs per call
    python benchmarks/openssl_shim_costs.py --repeat 15

Each figure is the median over --repeat runs of the per-call time (a run = n calls in a row),
in microseconds. The "(reference)" rows are the same work without the shim.
"""

from __future__ import annotations

import argparse
import os
import platform
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import trustme

from edge.pki import openssl


def per_call_us(fn: Callable[[], object], n: int, repeat: int) -> float:
    """Median over *repeat* runs of *n* calls, in microseconds per call."""
    fn()  # warm up
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - t) / n)
    return statistics.median(runs) * 1e6


def server_context(server: trustme.LeafCert, trusted_pem: str, *, callback: bool) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.configure_cert(ctx)
    ctx.load_verify_locations(cadata=trusted_pem)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    if callback:
        openssl.install_verify_callback(ctx)
    return ctx


def client_context(chain_pem: str, key_pem: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with tempfile.TemporaryDirectory() as d:
        cert, key = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
        Path(cert).write_text(chain_pem)
        Path(key).write_text(key_pem)
        ctx.load_cert_chain(cert, key)
    return ctx


def lean_handshake(cctx: ssl.SSLContext, sctx: ssl.SSLContext, at_time: float | None, shimmed: bool) -> None:
    """A minimal MemoryBIO mTLS handshake, with or without the per-connection shim calls."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = cctx.wrap_bio(c_in, c_out, server_side=False)
    server = sctx.wrap_bio(s_in, s_out, server_side=True)
    if shimmed:
        openssl.track(server, at_time)
    for _ in range(3):
        for conn, src, dst in ((client, c_out, s_in), (server, s_out, c_in)):
            try:
                conn.do_handshake()
            except ssl.SSLWantReadError:
                pass
            dst.write(src.read())
    if shimmed:
        if not openssl.peer_verification(server).handshake_done:
            raise RuntimeError("handshake did not finish")
    elif not server.getpeercert(True):
        raise RuntimeError("handshake did not finish")


def timings(repeat: int) -> dict[str, float]:
    ca = trustme.CA()
    leaf = ca.issue_cert("client@example.test")
    server_cert = trustme.CA().issue_cert("edge.test")
    chain_pem = "".join(b.bytes().decode() for b in leaf.cert_chain_pems)
    key_pem = leaf.private_key_pem.bytes().decode()
    trusted_pem = ca.cert_pem.bytes().decode()
    sctx = server_context(server_cert, trusted_pem, callback=True)
    plain = server_context(server_cert, trusted_pem, callback=False)
    cctx = client_context(chain_pem, key_pem)
    server = sctx.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_side=True)
    leaf_der = ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())
    ca_der = ssl.PEM_cert_to_DER_cert(trusted_pem)
    now = time.time()

    def new_conn() -> ssl.SSLObject:
        return sctx.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_side=True)

    def handshaken() -> ssl.SSLObject:
        c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
        client = cctx.wrap_bio(c_in, c_out, server_side=False)
        conn = sctx.wrap_bio(s_in, s_out, server_side=True)
        openssl.track(conn, now)
        for _ in range(3):
            for c, src, dst in ((client, c_out, s_in), (conn, s_out, c_in)):
                try:
                    c.do_handshake()
                except ssl.SSLWantReadError:
                    pass
                dst.write(src.read())
        return conn

    done = handshaken()
    r = repeat
    return {
        "ssl_ctx_pointer": per_call_us(lambda: openssl.ssl_ctx_pointer(sctx), 20000, r),
        "ssl_pointer": per_call_us(lambda: openssl.ssl_pointer(server), 20000, r),
        "install_verify_callback": per_call_us(lambda: openssl.install_verify_callback(sctx), 20000, r),
        "set_verify_time": per_call_us(lambda: openssl.set_verify_time(server, now), 20000, r),
        "sync_verify_with_context": per_call_us(lambda: openssl.sync_verify_with_context(server), 20000, r),
        "wrap_bio alone (reference)": per_call_us(new_conn, 5000, r),
        "wrap_bio + track(conn, at_time)": per_call_us(lambda: openssl.track(new_conn(), now), 5000, r),
        "verify, leaf + 1 DER root": per_call_us(lambda: openssl.verify(leaf_der, [], [ca_der], now), 1000, r),
        "verify, leaf + context's store": per_call_us(lambda: openssl.verify(leaf_der, [], sctx, now), 1000, r),
        "peer_verification (after a handshake)": per_call_us(lambda: openssl.peer_verification(done), 5000, r),
        "handshake, callback + track + peer_verification": per_call_us(
            lambda: lean_handshake(cctx, sctx, now, shimmed=True), 200, r
        ),
        "handshake, plain ssl (reference)": per_call_us(
            lambda: lean_handshake(cctx, plain, None, shimmed=False), 200, r
        ),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Median per-call costs of edge.pki.openssl.")
    parser.add_argument("--repeat", type=int, default=7, help="runs per call; the median is printed")
    args = parser.parse_args(argv)
    print(f"Python {sys.version.split()[0]}, {ssl.OPENSSL_VERSION}, {platform.machine()}, "
          f"{os.cpu_count()} CPUs; median of {args.repeat} runs")
    for name, us in timings(args.repeat).items():
        print(f"{name:50s} {us:10.2f} us")


if __name__ == "__main__":
    main()
