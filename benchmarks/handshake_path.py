"""Full edge path vs a raw stdlib handshake loop, side by side in one process.

    python benchmarks/handshake_path.py [--seconds 3] [--rounds 5] [--concurrency 16]

`stdlib-membio`: client and server SSLObjects over MemoryBIOs, one loop, full mutual TLS 1.3
with the client certificate verified (CERT_REQUIRED), the same certificates as the edge path.
`edge-inmemory`: the simulator's own path: a client connects over the in-memory network, the
edge node does the handshake (verify callback, simulated time, SNI context switch), works out
the verdict, answers one HTTP request, and sends both events to the collector.
Rounds alternate between the two; the figures are medians and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ssl
import statistics
import sys
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from edge.clients import client_context, visit  # noqa: E402
from edge.control import commands as c  # noqa: E402
from edge.deployment import Deployment  # noqa: E402
from edge.node.identity import EdgeIdentity  # noqa: E402
from edge.pki import profiles  # noqa: E402
from edge.pki.issuer import Authority  # noqa: E402

START = dt.datetime.now(dt.timezone.utc)
HOST = "api.example.com"


def raw_contexts(identity: EdgeIdentity, tenant: Authority, credential):
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    identity.configurer(identity.names_for(None))(server)
    server.load_verify_locations(cadata=tenant.certificate_pem)
    server.verify_mode = ssl.CERT_REQUIRED
    server.num_tickets = 0
    client = client_context(identity.configure_trust, credential)
    return server, client


def raw_round(server: ssl.SSLContext, client: ssl.SSLContext, seconds: float) -> float:
    done, deadline = 0, time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        s_in, s_out, c_in, c_out = (ssl.MemoryBIO() for _ in range(4))
        s = server.wrap_bio(s_in, s_out, server_side=True)
        cl = client.wrap_bio(c_in, c_out, server_hostname=HOST)
        pending = {cl, s}
        while pending:
            for obj in (cl, s):
                if obj in pending:
                    try:
                        obj.do_handshake()
                        pending.discard(obj)
                    except ssl.SSLWantReadError:
                        pass
            c_in.write(s_out.read())
            s_in.write(c_out.read())
        assert s.getpeercert() is not None
        done += 1
    return done / (time.perf_counter() - started)


async def edge_round(deployment: Deployment, context, seconds: float, concurrency: int) -> float:
    done = 0
    deadline = trio.current_time() + seconds
    started = time.perf_counter()

    async def worker() -> None:
        nonlocal done
        while trio.current_time() < deadline:
            result = await visit(lambda: deployment.network.connect("n1"), context, sni=HOST)
            assert result.statuses == (200,), result
            done += 1

    async with trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(worker)
    return done / (time.perf_counter() - started)


async def main(args) -> None:
    identity = EdgeIdentity(names=("example.com", "*.example.com"))
    tenant = Authority.root({"CN": "Bench Root"})
    credential = profiles.issue(profiles.Profile.VALID, tenant, now=START)
    server, client = raw_contexts(identity, tenant, credential)
    async with trio.open_nursery() as nursery:
        deployment = Deployment(start=START, identity=identity)
        await deployment.start_in(nursery)
        account = await deployment.plane.submit(c.CreateAccount("bench"))
        zone = await deployment.plane.submit(c.CreateZone(account.id, "example.com"))
        ca = await deployment.plane.submit(c.UploadCaCertificate(account.id, tenant.certificate_pem))
        await deployment.plane.submit(c.PutHostnameAssociations(zone.id, [HOST], ca.id))
        await deployment.add_node("n1")
        await deployment.settle()
        raw, edge = [], []
        for _ in range(args.rounds):
            raw.append(raw_round(server, client, args.seconds))
            edge.append(await edge_round(deployment, client, args.seconds, args.concurrency))
        nursery.cancel_scope.cancel()
    raw_median, edge_median = statistics.median(raw), statistics.median(edge)
    print(f"{'path':<16}{'handshakes/s (median)':>24}{'rounds':>40}")
    print(f"{'stdlib-membio':<16}{raw_median:>24.0f}    {[round(x) for x in raw]}")
    print(f"{'edge-inmemory':<16}{edge_median:>24.0f}    {[round(x) for x in edge]}")
    print(f"ratio edge-inmemory / stdlib-membio = {edge_median / raw_median:.2f}")
    counted = deployment.collector.totals.count("connections", outcome="ok")
    print(f"collector counted {counted} connections")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per path, alternating")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent edge clients")
    trio.run(main, parser.parse_args())
