"""An edge node applying a snapshot of 100,000 hostnames: time and memory per hostname.

    python benchmarks/node_snapshot.py [--zones 1000] [--hostnames 100000] [--repeats 3]

Builds the store of snapshot_scale.py (the same shaping flags), then measures
`EdgeNode.apply_snapshot` on a fresh node: the TLS context per distinct trust set, the edge
certificate for every zone, the rules compiled per zone; then a second snapshot after one
association change (what a running node pays per update). Memory is what the node retains:
Python's objects as tracemalloc sees them, and the process's resident memory, which also counts
what OpenSSL allocates for the contexts (a rough figure: the allocator keeps freed pages).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from snapshot_scale import (  # noqa: E402
    NOW, add_common_arguments, build_store, check_common, make_cas, one_put,
)

from edge.control.snapshot import build_snapshot  # noqa: E402
from edge.control.store import apply  # noqa: E402
from edge.node.identity import EdgeIdentity  # noqa: E402
from edge.node.node import EdgeNode  # noqa: E402


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser, repeats=3,
                         repeats_help="fresh nodes applying the first snapshot")
    return check_common(parser, parser.parse_args(argv))


def new_node(identity: EdgeIdentity) -> EdgeNode:
    send, _receive = trio.open_memory_channel(0)
    return EdgeNode("bench", identity=identity, events=send,
                    clock=lambda: dt.datetime.now(dt.timezone.utc))


def resident_bytes() -> int:
    """The process's resident memory (Linux /proc), 0 where unknown."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def main() -> None:
    args = parse_args(sys.argv[1:])
    store = build_store(args, make_cas(args.accounts, args.cas_per_account), False)[0]
    snapshot = build_snapshot(store)
    identity = EdgeIdentity()
    first, python_bytes, resident = [], 0, 0
    for run in range(args.repeats):
        node = new_node(identity)
        tracemalloc.start()
        before = tracemalloc.take_snapshot() if run == 0 else None
        rss = resident_bytes()
        started = time.perf_counter()
        node.apply_snapshot(snapshot)
        first.append(time.perf_counter() - started)
        if run == 0:
            resident = resident_bytes() - rss
            python_bytes = sum(s.size_diff for s in
                               tracemalloc.take_snapshot().compare_to(before, "filename"))
        tracemalloc.stop()
    _zone, _host, command = one_put(store, 1)
    changed = build_snapshot(apply(store, command, NOW).store, snapshot)
    started = time.perf_counter()
    node.apply_snapshot(changed)
    update = time.perf_counter() - started
    hosts = snapshot.hostname_count
    figures = {
        "hostnames": hosts, "zones": len(snapshot.zones), "trust_sets": len(snapshot.trust_sets),
        "first_apply_s": round(statistics.median(first), 4),
        "first_apply_runs_s": [round(x, 4) for x in first],
        "next_apply_ms": round(update * 1000, 2),
        "python_bytes_per_hostname": round(python_bytes / hosts, 1),
        "resident_bytes_per_hostname": round(resident / hosts, 1),
    }
    print(f"{hosts} hostnames in {figures['zones']} zones, {figures['trust_sets']} trust sets")
    print(f"first snapshot on a fresh node: median {figures['first_apply_s']:.3f} s "
          f"{[round(x, 3) for x in first]} (the first run also issues the edge certificate)")
    print(f"next snapshot (one association changed): {figures['next_apply_ms']:.1f} ms")
    print(f"node memory retained by the first apply: {python_bytes / hosts:.0f} B per hostname "
          f"of Python objects (tracemalloc), {resident / hosts:.0f} B per hostname of resident "
          f"memory (with OpenSSL's contexts)")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
