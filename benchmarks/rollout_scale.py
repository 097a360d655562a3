"""A one-hour simulated rollout with at least 10,000 requests: how long does it take for real?

    python benchmarks/rollout_scale.py [--clients 100] [--interval 30s] [--requests-per-connection 1]

Builds a scenario (log for 30 minutes, then block; three fleets: valid, expired, no certificate)
through the real loader, runs it with the real runner on the virtual clock, and reports real
seconds, simulated requests and connections per real second.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from edge.scenario.loader import parse
from edge.scenario.report import summarize
from edge.scenario.runner import Runner

TEMPLATE = """
[meta]
name = "rollout scale"
seed = 1
start = 2026-06-01T00:00:00Z
duration = "1h"

[pki.root]
subject = {{ CN = "Scale Root" }}

[[tenants]]
name = "scale"
zones = ["example.com"]

[edge]
nodes = 4
propagation = {{ min = "1s", max = "10s" }}

[[fleets]]
name = "valid"
hostname = "api.example.com"
clients = {valid}
interval = "{interval}"
requests_per_connection = {rpc}
cert = {{ profile = "valid", issuer = "root" }}

[[fleets]]
name = "expired"
hostname = "api.example.com"
clients = {other}
interval = "{interval}"
requests_per_connection = {rpc}
cert = {{ profile = "expired", issuer = "root" }}

[[fleets]]
name = "none"
hostname = "api.example.com"
clients = {other}
interval = "{interval}"
requests_per_connection = {rpc}

[[timeline]]
at = "0s"
action = "upload_ca"
tenant = "scale"
ca = "root"

[[timeline]]
at = "0s"
action = "associate"
zone = "example.com"
hostnames = ["api.example.com"]
ca = "root"

[[timeline]]
at = "1s"
phase = "log"
action = "deploy_rules"
zone = "example.com"
rules = [{{ expression = "not cf.tls_client_auth.cert_verified", action = "log" }}]

[[timeline]]
at = "30m"
phase = "enforce"
action = "deploy_rules"
zone = "example.com"
rules = [{{ expression = "not cf.tls_client_auth.cert_verified", action = "block" }}]
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=100, help="clients over the three fleets")
    parser.add_argument("--interval", default="30s", help="between one client's connections")
    parser.add_argument("--requests-per-connection", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3, help="runs; medians are reported")
    args = parser.parse_args()
    other = max(args.clients // 5, 1)
    text = TEMPLATE.format(valid=args.clients - 2 * other, other=other, interval=args.interval,
                           rpc=args.requests_per_connection)
    scenario = parse(text, source="rollout_scale")
    seconds, summary = [], None
    for _ in range(args.runs):
        result = Runner(scenario, Path(".")).run()
        seconds.append(result.real_seconds)
        summary = summarize(result)
    totals = summary["totals"]
    median = statistics.median(seconds)
    print(f"simulated 1h: {totals['connections']} connections, {totals['requests']} requests "
          f"(blocked {totals['blocked']}, would block {totals['would_block']})")
    print(f"real seconds per run: {[round(s, 2) for s in seconds]} (median {median:.2f})")
    print(f"requests per real second: {totals['requests'] / median:.0f}; "
          f"connections per real second: {totals['connections'] / median:.0f}")


if __name__ == "__main__":
    main()
