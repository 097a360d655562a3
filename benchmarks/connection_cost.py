"""What one connection costs in counts that do not depend on how busy the machine is.

`edge bench` measures rates, which move by +-10 % between runs on a shared machine; a change
worth a few percent hides in that noise. These counts do not move: Trio task steps (scheduler
passes) per connection, and Python function calls per connection (cProfile). By default over
the edge-inmemory row's path (16 concurrent clients, one GET each, the bench's certificates);
with --tcp, the edge-tcp row's server side (the bench's asyncio load generator in a process of
its own, for --seconds), where the counts are the server's only.

    python benchmarks/connection_cost.py                  # 640 simulated connections
    python benchmarks/connection_cost.py --top 20         # and the most called functions
    python benchmarks/connection_cost.py --tcp
"""

from __future__ import annotations

import argparse
import cProfile
import collections
import pstats
import tempfile
from pathlib import Path

import trio

from edge.bench import material, tcp
from edge.bench.material import HOST, edge_deployment
from edge.clients import visit
from edge.net import TcpListener

CONCURRENCY = 16


class _Steps(trio.abc.Instrument):
    def __init__(self) -> None:
        self.by_task: collections.Counter[str] = collections.Counter()

    def before_task_step(self, task) -> None:
        self.by_task[task.name.rsplit(".", 1)[-1]] += 1


async def _connections(deployment, context, count: int) -> None:
    async def client() -> None:
        for _ in range(count // CONCURRENCY):
            result = await visit(lambda: deployment.network.connect("n1"), context, sni=HOST)
            if result.statuses != (200,):
                raise RuntimeError(f"unexpected answer {result}")

    async with trio.open_nursery() as clients:
        for _ in range(CONCURRENCY):
            clients.start_soon(client)


async def _loaded(bench: material.Material, port: int, seconds: float) -> int:
    """Drive the edge on `port` from the load generator process; the handshakes it made."""
    out = tcp._spawn.Queue()
    load = tcp._spawn.Process(target=tcp.load_process,
                              args=(bench, port, seconds, CONCURRENCY, out), daemon=True)
    load.start()
    while load.is_alive():
        await trio.sleep(0.1)
    ok, failed, _, _ = out.get()
    if failed:
        raise RuntimeError(f"{failed} handshakes failed")
    return ok


async def _measure(bench: material.Material, count: int, top: int, tcp_seconds: float) -> None:
    context = bench.client_context()
    async with trio.open_nursery() as nursery:
        deployment = await edge_deployment(bench, nursery, "n1")
        if tcp_seconds:
            port = tcp.free_port()
            listener = TcpListener(tcp._reuse_port_socket(port))
            await nursery.start(deployment.nodes["n1"].serve, listener)

            async def run() -> int:
                return await _loaded(bench, port, tcp_seconds)
        else:
            async def run() -> int:
                await _connections(deployment, context, count)
                return count // CONCURRENCY * CONCURRENCY

        await _connections(deployment, context, CONCURRENCY)  # warm: contexts, caches
        steps = _Steps()
        trio.lowlevel.add_instrument(steps)
        stepped = await run()
        trio.lowlevel.remove_instrument(steps)
        profile = cProfile.Profile()
        profile.enable()
        done = await run()
        profile.disable()
        nursery.cancel_scope.cancel()
    print(f"task steps per connection: {sum(steps.by_task.values()) / stepped:.2f}")
    for name, n in steps.by_task.most_common(6):
        print(f"  {n / stepped:5.2f} {name}")
    stats = pstats.Stats(profile).stats  # (file, line, name) -> (cc, calls, tt, ct, callers)
    print(f"python calls per connection: {sum(v[1] for v in stats.values()) / done:.0f}")
    for (file, line, name), v in sorted(stats.items(), key=lambda kv: -kv[1][1])[:top]:
        print(f"  {v[1] / done:6.1f} {name} ({Path(file).name}:{line})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=640)
    parser.add_argument("--top", type=int, default=0, help="list the N most called functions")
    parser.add_argument("--tcp", action="store_true", help="the edge-tcp server side instead")
    parser.add_argument("--seconds", type=float, default=3.0, help="of load, with --tcp")
    args = parser.parse_args()
    if args.connections < CONCURRENCY:
        parser.error(f"--connections: at least {CONCURRENCY} (one per concurrent client)")
    with tempfile.TemporaryDirectory() as folder:
        trio.run(_measure, material.make(Path(folder)), args.connections, args.top,
                 args.seconds if args.tcp else 0.0)


if __name__ == "__main__":
    main()
