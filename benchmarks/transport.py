"""The simulator's in-memory transport: edge.net.pipe against trio.testing's memory streams.

    python benchmarks/transport.py [--seconds 2] [--rounds 5]

Runs the edge-inmemory path of `edge bench` with each transport, alternating rounds, and prints
medians and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import trio.testing

import edge.net
from edge.bench import inprocess
from edge.bench.material import make


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    transports = {"edge.net.pipe": edge.net.pipe, "trio.testing": trio.testing.memory_stream_pair}
    runs: dict[str, list[float]] = {name: [] for name in transports}
    with tempfile.TemporaryDirectory() as folder:
        material = make(Path(folder))
        for _ in range(args.rounds):
            for name, transport in transports.items():
                edge.net.pipe = transport
                runs[name].append(inprocess.edge_inmemory_rate(material, args.seconds))
    medians = {name: statistics.median(values) for name, values in runs.items()}
    for name, values in runs.items():
        print(f"{name:<14} {medians[name]:6.0f} handshakes/s  {[round(v) for v in values]}")
    print(f"ratio pipe / trio.testing = {medians['edge.net.pipe'] / medians['trio.testing']:.2f}")


if __name__ == "__main__":
    main()
