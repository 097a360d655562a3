"""What the machine's cores give: the raw loop in N processes at once, summed.

A CPU-only yardstick for the workers row: N edge processes can scale no further than N raw
loops do on the same machine (shared machines sometimes throttle a core), and on a machine the
load generator shares they scale less still.
"""

from __future__ import annotations

import multiprocessing

from edge.bench.inprocess import membio_rate
from edge.bench.material import Material

_spawn = multiprocessing.get_context("spawn")


def _loop(material: Material, seconds: float, ready, out) -> None:
    server, client = material.server_context(), material.client_context()
    ready.wait()  # all at once, so every process shares the machine for the whole round
    out.put(membio_rate(server, client, seconds))


def parallel_membio_rate(material: Material, seconds: float, processes: int) -> float:
    """Handshakes per second of `processes` raw loops running at the same time."""
    out, ready = _spawn.Queue(), _spawn.Barrier(processes, timeout=120)
    loops = [_spawn.Process(target=_loop, args=(material, seconds, ready, out), daemon=True)
             for _ in range(processes)]
    for loop in loops:
        loop.start()
    try:
        return sum(out.get(timeout=seconds + 240) for _ in loops)
    finally:
        for loop in loops:
            loop.join(10)
            if loop.is_alive():
                loop.kill()
