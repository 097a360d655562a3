"""An edge node applying a snapshot of 100,000 hostnames: time and memory per hostname.

    python benchmarks/node_snapshot.py [--zones 1000] [--hostnames 100000]

Builds the store of snapshot_scale.py (same flags), then measures `EdgeNode.apply_snapshot` on
a fresh node: the TLS context per distinct trust set, the edge certificate for every zone, the
rules compiled per zone; then a second snapshot after one association change (what a running
node pays per update). Memory is what tracemalloc sees retained by the node.
"""

from __future__ import annotations

import datetime as dt
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from snapshot_scale import NOW, build_store, make_cas, one_put, parse_args  # noqa: E402

from edge.control.snapshot import build_snapshot  # noqa: E402
from edge.control.store import apply  # noqa: E402
from edge.node.identity import EdgeIdentity  # noqa: E402
from edge.node.node import EdgeNode  # noqa: E402


def new_node(identity: EdgeIdentity) -> EdgeNode:
    send, _receive = trio.open_memory_channel(0)
    return EdgeNode("bench", identity=identity, events=send,
                    clock=lambda: dt.datetime.now(dt.timezone.utc))


def main() -> None:
    args = parse_args(sys.argv[1:])
    store = build_store(args, make_cas(args.accounts, args.cas_per_account), False)[0]
    snapshot = build_snapshot(store)
    identity = EdgeIdentity()
    first, memory = [], 0
    for run in range(3):
        node = new_node(identity)
        tracemalloc.start()
        before = tracemalloc.take_snapshot() if run == 0 else None
        started = time.perf_counter()
        node.apply_snapshot(snapshot)
        first.append(time.perf_counter() - started)
        if run == 0:
            memory = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename"))
        tracemalloc.stop()
    _zone, _host, command = one_put(store, 1)
    changed = build_snapshot(apply(store, command, NOW).store, snapshot)
    started = time.perf_counter()
    node.apply_snapshot(changed)
    update = time.perf_counter() - started
    hosts = snapshot.hostname_count
    print(f"{hosts} hostnames in {len(snapshot.zones)} zones, {len(snapshot.trust_sets)} trust sets")
    print(f"first snapshot on a fresh node: median {statistics.median(first):.3f} s "
          f"{[round(x, 3) for x in first]} (identity certificate cached after the first run)")
    print(f"next snapshot (one association changed): {update * 1000:.1f} ms")
    print(f"node memory retained by the first apply: {memory / hosts:.0f} B per hostname")


if __name__ == "__main__":
    main()
