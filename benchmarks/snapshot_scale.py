"""Scale benchmark for the control-plane store and EdgeConfig snapshots.

Builds a store through the real `apply` with real commands (Enterprise accounts, uploaded
trustme CAs, zones, hostname associations), then measures:

- building the store through `apply` (total, and median per command, per command type),
- a full `build_snapshot(store)` (median of several runs),
- an incremental `build_snapshot(new_store, previous)` after one association PUT in one zone,
  and an incremental build with no change at all (the cost of the walk over the zone list),
- memory retained per hostname by a snapshot and by the store (tracemalloc, retained, not peak),
- the number of distinct trust sets and the median cost of `EdgeConfig.host(hostname)`.

This is a benchmark, not a test:

    python benchmarks/snapshot_scale.py                      # 1,000 zones, 100,000 hostnames
    python benchmarks/snapshot_scale.py --zones 100 --hostnames 10000 --json out.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import platform
import random
import statistics
import sys
import time
import tracemalloc
from collections import defaultdict
from collections.abc import Callable, Iterator

import trustme

from edge.control import commands as c
from edge.control.records import Plan
from edge.control.snapshot import EdgeConfig, build_snapshot
from edge.control.store import Settings, Store, apply, new_store

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


# --- the workload ------------------------------------------------------------------------------


def add_common_arguments(parser: argparse.ArgumentParser, *, repeats: int,
                         repeats_help: str) -> None:
    """The flags that shape the store (node_snapshot.py builds the same one), `--repeats` and
    `--json`; `check_common` checks them."""
    parser.add_argument("--zones", type=int, default=1000, help="zones in total (default 1000)")
    parser.add_argument(
        "--hostnames", type=int, default=100_000,
        help="associated hostnames in total, spread evenly over the zones (default 100000)",
    )
    parser.add_argument(
        "--cas-per-account", type=int, default=5,
        help="uploaded CAs per Enterprise account (default 5, the Enterprise quota)",
    )
    parser.add_argument(
        "--accounts", type=int, default=None,
        help="Enterprise accounts; zones are spread evenly over them (default: zones / 100)",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the hostname/CA layout")
    parser.add_argument("--repeats", type=int, default=repeats,
                        help=f"{repeats_help}, median quoted (default {repeats})")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON to PATH")


def check_common(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    if args.accounts is None:
        args.accounts = max(1, args.zones // 100)
    if min(args.zones, args.hostnames, args.accounts, args.repeats) < 1:
        parser.error("--zones, --hostnames, --accounts and --repeats must be >= 1")
    if args.cas_per_account < 1:
        parser.error("--cas-per-account must be >= 1")
    if args.accounts > args.zones:
        parser.error("--accounts must not exceed --zones")
    return args


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Build a large control-plane store through apply() and time EdgeConfig "
        "snapshots (full and incremental), their memory and hostname lookups.",
    )
    add_common_arguments(parser, repeats=7, repeats_help="runs per snapshot timing")
    parser.add_argument(
        "--lookups", type=int, default=200_000,
        help="host() lookups over random hostnames, timed in batches of 1000 (default 200000)",
    )
    parser.add_argument(
        "--no-store-memory", action="store_true",
        help="skip the second, tracemalloc-traced store build that measures store memory",
    )
    args = check_common(parser, parser.parse_args(argv))
    if args.lookups < 1:
        parser.error("--lookups must be >= 1")
    return args


def make_cas(accounts: int, per_account: int) -> list[list[str]]:
    """PEMs of `per_account` trustme CAs (EC P-256) per account, generated up front."""
    return [
        [
            trustme.CA(organization_name=f"Tenant {a} CA {i}").cert_pem.bytes().decode("ascii")
            for i in range(per_account)
        ]
        for a in range(accounts)
    ]


def split(total: int, parts: int) -> list[int]:
    """`total` spread over `parts` as evenly as possible."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def host_cas(rng: random.Random, uploads: list[str]) -> list[str | None]:
    """The CAs one hostname trusts; None is the managed CA (no mtls_certificate_id).

    10% managed only, 10% managed plus one upload, 50% one upload, 30% two uploads.
    """
    roll = rng.random()
    if roll < 0.10:
        return [None]
    if roll < 0.20:
        return [None, rng.choice(uploads)]
    if roll < 0.70 or len(uploads) < 2:
        return [rng.choice(uploads)]
    return rng.sample(uploads, 2)


def commands(args: argparse.Namespace, ca_pems: list[list[str]]) -> Iterator:
    """The commands that build the store; the generator is sent each command's result."""
    rng = random.Random(args.seed)
    account_ids = []
    for a in range(args.accounts):
        account = yield c.CreateAccount(name=f"tenant-{a}", plan=Plan.ENTERPRISE)
        account_ids.append(account.id)
    uploads: list[list[str]] = []
    for a, account_id in enumerate(account_ids):
        ids = []
        for i, pem in enumerate(ca_pems[a]):
            record = yield c.UploadCaCertificate(account_id, pem, ca=True, name=f"ca-{a}-{i}")
            ids.append(record.id)
        uploads.append(ids)
    zones_of_account = split(args.zones, args.accounts)
    hosts_of_zone = split(args.hostnames, args.zones)
    z = 0
    for a, account_id in enumerate(account_ids):
        for _ in range(zones_of_account[a]):
            zone = yield c.CreateZone(account_id, f"zone{z}.tenant{a}.example")
            by_ca: dict[str | None, list[str]] = defaultdict(list)
            for h in range(hosts_of_zone[z]):
                hostname = f"h{h}.{zone.name}"
                for ca_id in host_cas(rng, uploads[a]):
                    by_ca[ca_id].append(hostname)
            for ca_id, hostnames in by_ca.items():
                yield c.PutHostnameAssociations(zone.id, hostnames, mtls_certificate_id=ca_id)
            z += 1


def settings_for(args: argparse.Namespace) -> Settings:
    quota = {plan: 0 for plan in Plan}
    quota[Plan.ENTERPRISE] = max(5, args.cas_per_account)
    return Settings(ca_quota=quota)


def build_store(
    args: argparse.Namespace, ca_pems: list[list[str]], timed: bool
) -> tuple[Store, dict[str, list[int]]]:
    """The store, and (if `timed`) the ns each apply() took, by command type."""
    store = new_store(settings_for(args), now=NOW)
    durations: dict[str, list[int]] = defaultdict(list)
    script = commands(args, ca_pems)
    command = next(script)
    clock = time.perf_counter_ns
    try:
        while True:
            if timed:
                start = clock()
                applied = apply(store, command, NOW)
                durations[type(command).__name__].append(clock() - start)
            else:
                applied = apply(store, command, NOW)
            store = applied.store
            command = script.send(applied.result)
    except StopIteration:
        pass
    return store, durations


# --- measurements ------------------------------------------------------------------------------


def timed_runs(fn: Callable[[], object], repeats: int) -> list[float]:
    """Seconds per run, with garbage collection outside the timed region."""
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def retained_bytes(fn: Callable[[], object]) -> tuple[object, int, int]:
    """(result, bytes still allocated while the result is kept, peak bytes during the call)."""
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        result = fn()
        gc.collect()
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, after - before, peak - before


def lookup_ns(snapshot: EdgeConfig, hostnames: list[str], lookups: int, seed: int) -> list[float]:
    """ns per host() call, one figure per batch of 1000 random hostnames."""
    rng = random.Random(seed)
    batch = 1000
    sample = [rng.choice(hostnames) for _ in range(max(batch, lookups))]
    host = snapshot.host
    per_call = []
    clock = time.perf_counter_ns
    for i in range(0, len(sample) - batch + 1, batch):
        chunk = sample[i : i + batch]
        start = clock()
        for name in chunk:
            host(name)
        per_call.append((clock() - start) / batch)
    return per_call


def one_put(store: Store, seed: int):
    """One PUT in one zone: an upload's hostname list with one hostname added."""
    rng = random.Random(seed)
    zone = rng.choice(sorted(store.zones.values(), key=lambda z: z.name))
    ca_id = next(k for k in sorted(zone.associations) if k in store.cas)
    new_host = f"added.{zone.name}"
    cmd = c.PutHostnameAssociations(
        zone.id, zone.associations[ca_id] + (new_host,), mtls_certificate_id=ca_id
    )
    return zone, new_host, cmd


# --- main --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    figures: dict[str, object] = {
        "parameters": {
            k: getattr(args, k)
            for k in ("zones", "hostnames", "cas_per_account", "accounts", "repeats", "lookups", "seed")
        },
        "python": platform.python_version(),
    }
    wall = time.perf_counter()

    def say(message: str) -> None:
        print(f"[{time.perf_counter() - wall:6.1f}s] {message}", file=sys.stderr, flush=True)

    say(f"generating {args.accounts * args.cas_per_account} trustme CAs")
    start = time.perf_counter()
    ca_pems = make_cas(args.accounts, args.cas_per_account)
    figures["ca_generation_s"] = time.perf_counter() - start

    say("building the store through apply()")
    start = time.perf_counter()
    store, durations = build_store(args, ca_pems, timed=True)
    build_total = time.perf_counter() - start
    all_ns = [d for ds in durations.values() for d in ds]
    hostnames = sorted({h for z in store.zones.values() for hs in z.associations.values() for h in hs})
    host_count = len(hostnames)
    figures["store"] = {
        "commands": len(all_ns),
        "build_total_s": build_total,
        "apply_total_s": sum(all_ns) / 1e9,
        "apply_median_us": statistics.median(all_ns) / 1e3,
        "by_command": {
            name: {
                "count": len(ds),
                "total_s": sum(ds) / 1e9,
                "median_us": statistics.median(ds) / 1e3,
                "max_us": max(ds) / 1e3,
            }
            for name, ds in durations.items()
        },
        "zones": len(store.zones),
        "hostnames": host_count,
        "uploaded_cas": len(store.cas),
        "managed_cas": len(store.managed_cas),
        "version": store.version,
    }
    del durations, all_ns

    say(f"full build_snapshot x{args.repeats}")
    full_runs = timed_runs(lambda: build_snapshot(store), args.repeats)
    snapshot = build_snapshot(store)
    assert snapshot.hostname_count == host_count, (snapshot.hostname_count, host_count)

    say(f"incremental build_snapshot x{args.repeats}")
    zone, new_host, put = one_put(store, args.seed)
    changed = apply(store, put, NOW).store
    incremental_runs = timed_runs(lambda: build_snapshot(changed, snapshot), args.repeats)
    unchanged_runs = timed_runs(lambda: build_snapshot(store, snapshot), args.repeats)
    after = build_snapshot(changed, snapshot)
    assert after.host(new_host) is not None and snapshot.host(new_host) is None
    rebuilt = [n for n, part in after.zones.items() if part is not snapshot.zones.get(n)]
    assert rebuilt == [zone.name], rebuilt
    full = statistics.median(full_runs)
    incremental = statistics.median(incremental_runs)
    figures["snapshot"] = {
        "full_median_s": full,
        "full_runs_s": full_runs,
        "incremental_median_s": incremental,
        "incremental_runs_s": incremental_runs,
        "incremental_to_full": incremental / full,
        "unchanged_median_s": statistics.median(unchanged_runs),
        "zones_rebuilt_by_incremental": len(rebuilt),
        "distinct_trust_sets": len(snapshot.trust_sets),
        "distinct_host_policies": sum(len(p.policies) for p in snapshot.zones.values()),
    }
    del after, changed

    say("snapshot memory (tracemalloc)")
    kept, retained, peak = retained_bytes(lambda: build_snapshot(store))
    figures["snapshot"]["retained_bytes"] = retained
    figures["snapshot"]["peak_bytes"] = peak
    figures["snapshot"]["retained_bytes_per_hostname"] = retained / host_count
    del kept

    say("host() lookups")
    per_lookup = lookup_ns(snapshot, hostnames, args.lookups, args.seed)
    figures["lookup"] = {
        "lookups": len(per_lookup) * 1000,
        "median_ns": statistics.median(per_lookup),
        "mean_ns": statistics.fmean(per_lookup),
    }

    if not args.no_store_memory:
        say("store memory: second store build under tracemalloc")
        del snapshot
        old_store, store = store, None
        del old_store
        (store, _), retained, peak = retained_bytes(lambda: build_store(args, ca_pems, timed=False))
        figures["store"]["retained_bytes"] = retained
        figures["store"]["retained_bytes_per_hostname"] = retained / host_count
    figures["wall_s"] = time.perf_counter() - wall
    say("done")

    report(figures)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(figures, out, indent=2)
            out.write("\n")
    return 0


def report(f: dict) -> None:
    s, snap, look = f["store"], f["snapshot"], f["lookup"]
    p = f["parameters"]
    rows = [
        ("scale", f"{s['zones']:,} zones, {s['hostnames']:,} hostnames, {p['accounts']} accounts "
                  f"x {p['cas_per_account']} CAs (+{s['managed_cas']} managed)"),
        ("trustme CA generation", f"{f['ca_generation_s']:.2f} s"),
        ("store build via apply()", f"{s['build_total_s']:.2f} s total, {s['commands']:,} commands, "
                                    f"median {s['apply_median_us']:.1f} us/command"),
    ]
    for name, d in sorted(s["by_command"].items()):
        rows.append((f"  {name}", f"{d['count']:,} x, median {d['median_us']:.1f} us, "
                                  f"max {d['max_us']:.1f} us, total {d['total_s']:.2f} s"))
    rows += [
        ("full build_snapshot", f"median {snap['full_median_s'] * 1e3:.1f} ms "
                                f"(of {len(snap['full_runs_s'])})"),
        ("incremental, one PUT", f"median {snap['incremental_median_s'] * 1e3:.2f} ms, "
                                 f"{snap['incremental_to_full']:.2%} of full "
                                 f"({snap['zones_rebuilt_by_incremental']} zone rebuilt)"),
        ("incremental, no change", f"median {snap['unchanged_median_s'] * 1e3:.2f} ms"),
        ("snapshot memory", f"{snap['retained_bytes_per_hostname']:.0f} B/hostname retained "
                            f"({snap['retained_bytes'] / 2**20:.1f} MiB; peak "
                            f"{snap['peak_bytes'] / 2**20:.1f} MiB)"),
    ]
    if "retained_bytes" in s:
        rows.append(("store memory", f"{s['retained_bytes_per_hostname']:.0f} B/hostname retained "
                                     f"({s['retained_bytes'] / 2**20:.1f} MiB)"))
    rows += [
        ("distinct trust sets", f"{snap['distinct_trust_sets']:,} "
                                f"({snap['distinct_host_policies']:,} HostPolicy objects)"),
        ("host() lookup", f"median {look['median_ns']:.0f} ns/lookup "
                          f"({look['lookups']:,} random hostnames, batches of 1000)"),
        ("wall time", f"{f['wall_s']:.1f} s"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"{'measure':<{width}}  value")
    print(f"{'-' * width}  {'-' * 60}")
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    sys.exit(main())
