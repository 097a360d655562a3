"""How fast could the simulator's path be with no transport at all? The ceiling of edge-inmemory.

Each connection here does the node's own work, through the node's own code (its TLS setup with
the SNI and verify callbacks at simulated time, the verdict, the HTTP request through the rules
to an answer, both events) and the client's (a GET, its answer), but in one synchronous loop
that hands the bytes between the two SSLObjects as the raw stdlib-membio loop does: no tasks,
no pipe, no timeouts. Its ratio to that raw loop, measured side by side in one process, is what
any design that keeps this per-connection work can reach; edge-inmemory's ratio is what the
Trio design (a client task and a node task per connection) reaches. The gap between them is
what the transport and scheduling cost, and the collector's counting (the events here are built,
not sent). Rounds are noisy on a shared machine: use the default six or more.

    python benchmarks/inline_ceiling.py --rounds 6

Uses the node's private methods on purpose: it is a measurement of them.
"""

from __future__ import annotations

import argparse
import ssl
import statistics
import tempfile
import time
from pathlib import Path

import trio

from edge import http
from edge.bench import material
from edge.bench.inprocess import edge_inmemory_rate, membio_rate, pump_handshakes
from edge.bench.material import HOST, edge_deployment
from edge.events import TlsOutcome
from edge.net import Accepted

REQUEST = http.request("GET", "/", [("host", HOST)])


async def _node(bench: material.Material):
    """The bench's configured node, its tasks stopped: only its synchronous methods are used."""
    async with trio.open_nursery() as nursery:
        deployment = await edge_deployment(bench, nursery, "n1")
        nursery.cancel_scope.cancel()
    node = deployment.nodes["n1"]
    node._clock = lambda: deployment.start  # no Trio clock outside a run
    return node


def _connection(node, context: ssl.SSLContext, number: int) -> list:
    state, channel = node._open(Accepted(None, f"n1#{number}"))
    server, server_bios = channel.ssl_object, (channel._incoming, channel._outgoing)
    client_bios = (ssl.MemoryBIO(), ssl.MemoryBIO())
    client = context.wrap_bio(*client_bios, server_hostname=HOST)
    pump_handshakes(client, server, client_bios, server_bios)  # as the raw loop does
    verdict = node._verdict(state, server)
    client.write(REQUEST)
    server_bios[0].write(client_bios[1].read())
    requests = http.RequestReader(max_head=node.settings.max_request_bytes,
                                  max_body=node.settings.max_body_bytes)
    requests.receive(server.read(65536))
    answer, event = node._decide(state, server, verdict, requests.next_request(), False)
    state.requests += 1
    server.write(answer)
    client_bios[0].write(server_bios[1].read())
    responses = http.ResponseReader()
    responses.receive(client.read(65536))
    if responses.next_response().status != 200:
        raise RuntimeError("the request was not answered 200")
    for end in (client, server):
        try:
            end.unwrap()
        except ssl.SSLError:
            pass
    return [event, node._connection_event(state, TlsOutcome.OK, verdict, 0.0, "")]


def inline_rate(node, context: ssl.SSLContext, seconds: float) -> float:
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        _connection(node, context, done)
        done += 1
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        bench = material.make(Path(folder))
        node = trio.run(_node, bench)
        server, client = bench.server_context(), bench.client_context()
        membio_rate(server, client, 0.5)  # warm up
        inline, trio_path = [], []
        for _ in range(args.rounds):
            base = membio_rate(server, client, args.seconds)
            inline.append(inline_rate(node, client, args.seconds) / base)
            base = membio_rate(server, client, args.seconds)
            trio_path.append(edge_inmemory_rate(bench, args.seconds) / base)
    print(f"no transport (ceiling): x{statistics.median(inline):.2f} of stdlib-membio "
          f"(rounds {', '.join(f'{r:.2f}' for r in inline)})")
    print(f"edge-inmemory (Trio):   x{statistics.median(trio_path):.2f} of stdlib-membio "
          f"(rounds {', '.join(f'{r:.2f}' for r in trio_path)})")


if __name__ == "__main__":
    main()
