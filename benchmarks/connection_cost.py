"""What one simulated connection costs in counts that do not depend on how busy the machine is.

`edge bench` measures rates, which move by +-10 % between runs on a shared machine; a change
worth a few percent hides in that noise. These counts do not move: Trio task steps (scheduler
passes) per connection, and Python function calls per connection (cProfile), over the same path
as the edge-inmemory row (16 concurrent clients, one GET each, the bench's certificates).

    python benchmarks/connection_cost.py                  # 640 connections
    python benchmarks/connection_cost.py --top 20         # and the most called functions
"""

from __future__ import annotations

import argparse
import cProfile
import collections
import pstats
import tempfile
from pathlib import Path

import trio

from edge.bench import material
from edge.bench.material import HOST, edge_deployment
from edge.clients import visit

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


async def _measure(bench: material.Material, count: int, top: int) -> None:
    context = bench.client_context()
    async with trio.open_nursery() as nursery:
        deployment = await edge_deployment(bench, nursery, "n1")
        await _connections(deployment, context, CONCURRENCY)  # warm: contexts, caches
        steps = _Steps()
        trio.lowlevel.add_instrument(steps)
        await _connections(deployment, context, count)
        trio.lowlevel.remove_instrument(steps)
        profile = cProfile.Profile()
        profile.enable()
        await _connections(deployment, context, count)
        profile.disable()
        nursery.cancel_scope.cancel()
    done = count // CONCURRENCY * CONCURRENCY
    print(f"task steps per connection: {sum(steps.by_task.values()) / done:.2f}")
    for name, n in steps.by_task.most_common(6):
        print(f"  {n / done:5.2f} {name}")
    stats = pstats.Stats(profile).stats  # (file, line, name) -> (cc, calls, tt, ct, callers)
    print(f"python calls per connection: {sum(v[1] for v in stats.values()) / done:.0f}")
    for (file, line, name), v in sorted(stats.items(), key=lambda kv: -kv[1][1])[:top]:
        print(f"  {v[1] / done:6.1f} {name} ({Path(file).name}:{line})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=640)
    parser.add_argument("--top", type=int, default=0, help="list the N most called functions")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        trio.run(_measure, material.make(Path(folder)), args.connections, args.top)


if __name__ == "__main__":
    main()
