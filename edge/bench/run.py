"""`edge bench`: every row measured in turn, `rounds` times, with the same certificates.

Each row's figure is the median of its rounds. Its ratio to `stdlib-membio` is the median over
the rounds of its rate over the raw loop's, measured just before and just after it (the baseline
brackets every row), so a noisy, shared machine whose speed drifts moves numerator and
denominator alike. The TCP rows' ratios to `asyncio-tcp` and `openssl-s_server` are of medians
measured in the same invocation.
"""

from __future__ import annotations

import json
import os
import platform
import ssl
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

import attrs
from rich import box
from rich.console import Console
from rich.table import Table

from edge.bench import inprocess, machine, tcp
from edge.bench.material import Material, make
from edge.pki.issuer import Authority

BASELINE = "stdlib-membio"
WORKERS_ROW = "edge-tcp-workers"  # named edge-tcp-workers-N in the report
PARALLEL_ROW = "membio-parallel"  # the raw loop in N processes at once: the workers' yardstick
# The baseline runs before the first row of a round and after every row, this long at most:
# each row's ratio is to the mean of the two runs around it, so a machine whose speed drifts
# during a round (shared machines do) moves numerator and denominator alike.
BRACKET_SECONDS = 1.0
CA_COUNTS = (1, 5, 50)
PLACES = (("raw_loop", ""), ("edge_inmemory", "edge-"))  # extras: JSON key, prefix of measures
PLACE_TITLES = {"raw_loop": "raw loop", "edge_inmemory": "edge-inmemory"}
TRANSPORT_ROWS = {"edge-transport", "trio-sslstream"}  # handshakes only: what `transport` brings
EXTRA_TITLES = {"resumption": "TLS resumption", "cas": "CA count",
                "client-auth": "client-certificate cost"}
# What `--only` can choose; the baseline always runs, since every row is a ratio of it.
SECTIONS = ("edge-inmemory", "transport", "edge-tcp", "asyncio-tcp", "openssl-s_server", WORKERS_ROW,
            "resumption", "cas", "client-auth")


@attrs.define
class Row:
    name: str
    runs: list[float] = attrs.field(factory=list)
    server_cpu_ms: list[float] = attrs.field(factory=list)  # TCP rows, where /proc tells
    load_busy: list[float] = attrs.field(factory=list)  # TCP rows
    load_cpu_ms: list[float] = attrs.field(factory=list)  # TCP rows
    ratios: list[float] = attrs.field(factory=list)  # each run over the baseline around it

    @property
    def rate(self) -> float:
        return statistics.median(self.runs) if self.runs else 0.0

    def add(self, result: float | tcp.Measured, baseline: float | None = None) -> None:
        """One run; with `baseline` (the raw loop's rate measured around it), its ratio too."""
        if isinstance(result, tcp.Measured):
            self.load_busy.append(result.load_busy)
            self.load_cpu_ms.append(result.load_cpu_ms)
            if result.server_cpu_ms is not None:
                self.server_cpu_ms.append(result.server_cpu_ms)
            result = result.rate
        self.runs.append(result)
        if baseline:
            self.ratios.append(result / baseline)


def _median(values: list[float], digits: int) -> float | None:
    return round(statistics.median(values), digits) if values else None


def _rows(material: Material, seconds: float, concurrency: int, workers: int,
          load_processes: int, only: frozenset[str]) -> dict:
    """Row name -> a function measuring one round, in the order they run."""
    server, client = material.server_context(), material.client_context()

    def tcp_row(target, count: int = 1):
        return lambda: tcp.measure(tcp.python_servers(target, material, count), material, seconds,
                                   concurrency, load_processes)

    rows: dict[str, Callable[[], float | tcp.Measured]] = {
        BASELINE: lambda: inprocess.membio_rate(server, client, min(seconds, BRACKET_SECONDS)),
        "edge-inmemory": lambda: inprocess.edge_inmemory_rate(material, seconds, concurrency),
        "edge-transport": lambda: inprocess.handshake_pairs_rate(
            inprocess.channel_pair, server, client, seconds, concurrency),
        "trio-sslstream": lambda: inprocess.handshake_pairs_rate(
            inprocess.sslstream_pair, server, client, seconds, concurrency),
        "edge-tcp": tcp_row(tcp.edge_server_process),
        "asyncio-tcp": tcp_row(tcp.asyncio_server_process),
    }
    openssl_start = tcp.openssl_server(material)
    if openssl_start is not None:
        rows["openssl-s_server"] = lambda: tcp.measure(openssl_start, material, seconds,
                                                       concurrency, load_processes)
    rows[f"{PARALLEL_ROW}-{workers}"] = lambda: machine.parallel_membio_rate(material, seconds,
                                                                           workers)
    rows[f"{WORKERS_ROW}-{workers}"] = tcp_row(tcp.edge_server_process, workers)
    # the workers row is a ratio of edge-tcp, and the raw loop in parallel is its yardstick
    chosen = only | ({PARALLEL_ROW, "edge-tcp"} if WORKERS_ROW in only else set())
    chosen |= TRANSPORT_ROWS if "transport" in only else set()
    return {name: measure for name, measure in rows.items()
            if name == BASELINE or name.removesuffix(f"-{workers}") in chosen}


def _resumption(material: Material, seconds: float,
                concurrency: int) -> dict[str, Callable[[], float]]:
    """TLS resumption in the raw loop and on the edge, and what tickets cost the edge."""
    client = material.client_context()
    with_tickets = material.server_context(tickets=2)

    def edge(**options) -> Callable[[], float]:
        return lambda: inprocess.edge_inmemory_rate(material, seconds, concurrency, **options)

    return {
        "full-with-tickets": lambda: inprocess.membio_rate(with_tickets, client, seconds),
        "resumed": lambda: inprocess.membio_rate(with_tickets, client, seconds, resume=True),
        "edge-no-tickets": edge(),
        "edge-full-with-tickets": edge(tickets=2),
        "edge-resumed": edge(tickets=2, resume=True),
    }


def _ca_count(material: Material, seconds: float,
              concurrency: int) -> dict[str, Callable[[], float]]:
    """1, 5 and 50 CAs trusted on the one hostname: in the raw loop, and associated with the
    hostname on the edge (edge-inmemory)."""
    client = material.client_context()
    others = [Authority.root({"CN": f"bench extra CA {i}"}).certificate_pem for i in range(49)]
    measures: dict[str, Callable[[], float]] = {}
    for count in CA_COUNTS:
        extra = others[: count - 1]
        measures[f"cas-{count}"] = (lambda context=inprocess.trusting(material, extra):
                                    inprocess.membio_rate(context, client, seconds))
        measures[f"edge-cas-{count}"] = (lambda extra=extra: inprocess.edge_inmemory_rate(
            material, seconds, concurrency, extra_cas=extra))
    return measures


def _client_auth(material: Material, seconds: float,
                 concurrency: int) -> dict[str, Callable[[], float]]:
    """What asking for and verifying a client certificate costs: mutual TLS beside server
    authentication only, in the raw loop and on the edge (a hostname with no CA associated)."""
    client = material.client_context()
    contexts = {"mutual": material.server_context(),
                "server-auth-only": material.server_context(client_auth=False)}
    measures: dict[str, Callable[[], float]] = {}
    for name, context in contexts.items():
        measures[name] = lambda context=context: inprocess.membio_rate(context, client, seconds)
        measures[f"edge-{name}"] = lambda mutual=name == "mutual": inprocess.edge_inmemory_rate(
            material, seconds, concurrency, client_auth=mutual)
    return measures


def _extras(material: Material, seconds: float, rounds: int, concurrency: int,
            only: frozenset[str]) -> dict[str, list[float]]:
    """Each chosen extra measure's runs, one per round, measured in turn within each round."""
    measures = {
        **(_resumption(material, seconds, concurrency) if "resumption" in only else {}),
        **(_ca_count(material, seconds, concurrency) if "cas" in only else {}),
        **(_client_auth(material, seconds, concurrency) if "client-auth" in only else {}),
    }
    runs: dict[str, list[float]] = {name: [] for name in measures}
    for _ in range(rounds):
        for name, measure in measures.items():
            runs[name].append(measure())
    return runs


def _paired_runs(numerator: list[float], denominator: list[float]) -> float:
    """The median over the rounds of one measure's rate over another's in the same round."""
    return round(statistics.median(a / b for a, b in zip(numerator, denominator)), 3)


def _paired(extras: dict[str, list[float]], numerator: str, denominator: str) -> float:
    return _paired_runs(extras[numerator], extras[denominator])


def _paired_rows(numerator: Row, denominator: Row) -> float:
    return _paired_runs(numerator.runs, denominator.runs)


def measure_all(material: Material, *, seconds: float, rounds: int, concurrency: int,
                workers: int, load_processes: int = 1, only: frozenset[str] = frozenset(SECTIONS),
                progress: Callable[[str], None] = lambda _: None) -> dict:
    measures = _rows(material, seconds, concurrency, workers, load_processes, only)
    rows = {name: Row(name) for name in measures}
    progress("warming up")
    inprocess.membio_rate(material.server_context(), material.client_context(), min(seconds, 0.5))

    baseline = measures.pop(BASELINE)
    for round_ in range(rounds):
        progress(f"round {round_ + 1}/{rounds}: {BASELINE}")
        before = baseline()
        rows[BASELINE].add(before)
        for name, measure in measures.items():
            progress(f"round {round_ + 1}/{rounds}: {name}")
            result = measure()
            after = baseline()
            rows[BASELINE].add(after)
            rows[name].add(result, baseline=(before + after) / 2)
            before = after
    chosen_extras = [name for name in EXTRA_TITLES if name in only]
    if chosen_extras:
        progress(f"{' and '.join(EXTRA_TITLES[name] for name in chosen_extras)}, "
                 f"{rounds} round(s)")
    extras = _extras(material, seconds, rounds, concurrency, only)
    return _report(material, rows, extras, seconds=seconds, rounds=rounds,
                   concurrency=concurrency, workers=workers, load_processes=load_processes)


def _ratio(rate: float, base: Row | None) -> float | None:
    return round(rate / base.rate, 3) if base is not None and base.rate else None


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity), which a container may set below the
    machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def workers_bound(edge_tcp: Row, workers: int, cpus: float, load_processes: int = 1) -> dict | None:
    """The most `workers` edge processes could reach on `cpus` cores that the load generator
    shares, from edge-tcp's measured CPU per handshake: S on the server, C in the load
    generator. N workers run at most N/S; K load processes at most K/C; all the cores together
    at most cpus/(S+C). `cpus` may be what the cores were measured to give (membio-parallel-N
    over the raw loop: a shared machine's cores may give less than their count). Perfect
    sharing is assumed, so the real figure stays below this."""
    if not edge_tcp.server_cpu_ms or not edge_tcp.load_cpu_ms or not edge_tcp.rate:
        return None
    server, load = statistics.median(edge_tcp.server_cpu_ms), statistics.median(edge_tcp.load_cpu_ms)
    rate = min(workers / server, load_processes / load, cpus / (server + load)) * 1e3
    return {"handshakes_per_s": round(rate, 1), "ratio_to_edge_tcp": round(rate / edge_tcp.rate, 3),
            "cpus": round(cpus, 2)}


def _report(material, rows: dict[str, Row], extras: dict[str, list[float]], **settings) -> dict:
    base, asyncio_row = rows[BASELINE], rows.get("asyncio-tcp")
    openssl_row = rows.get("openssl-s_server")
    out = []
    for row in rows.values():
        entry = {
            "name": row.name,
            "handshakes_per_s": round(row.rate, 1),
            "runs": [round(r, 1) for r in row.runs],
            "ratio_to_stdlib_membio": (1.0 if row is base
                                       else round(statistics.median(row.ratios), 3)),
        }
        if row.load_busy:  # the loopback TCP rows
            entry["ratio_to_asyncio_tcp"] = _ratio(row.rate, asyncio_row)
            entry["ratio_to_openssl_s_server"] = _ratio(row.rate, openssl_row)
            entry["server_cpu_ms_per_handshake"] = _median(row.server_cpu_ms, 3)
            entry["load_generator_busy"] = _median(row.load_busy, 2)
            entry["load_cpu_ms_per_handshake"] = _median(row.load_cpu_ms, 3)
        out.append(entry)
    workers_row = rows.get(f"{WORKERS_ROW}-{settings['workers']}")
    report: dict = {"rows": out}
    parallel = rows.get(f"{PARALLEL_ROW}-{settings['workers']}")
    cores = float(usable_cpus())
    if parallel is not None:
        report["machine_scaling"] = round(statistics.median(parallel.ratios), 3)
        cores = min(cores, report["machine_scaling"])  # what the cores gave this run
    if workers_row is not None and "edge-tcp" in rows:
        report["workers_scaling"] = _paired_rows(workers_row, rows["edge-tcp"])
        bound = workers_bound(rows["edge-tcp"], settings["workers"], cores,
                              settings["load_processes"])
        if bound is not None:
            report["workers_bound"] = bound
    if "resumed" in extras:
        rate = {name: statistics.median(runs) for name, runs in extras.items()}
        report["resumption"] = {
            "full_handshakes_per_s": round(rate["full-with-tickets"], 1),
            "resumed_per_s": round(rate["resumed"], 1),
            "ratio": _paired(extras, "resumed", "full-with-tickets"),
            "edge_no_tickets_per_s": round(rate["edge-no-tickets"], 1),
            "edge_full_with_tickets_per_s": round(rate["edge-full-with-tickets"], 1),
            "edge_resumed_per_s": round(rate["edge-resumed"], 1),
            "edge_ratio": _paired(extras, "edge-resumed", "edge-full-with-tickets"),
            "edge_ticket_cost": _paired(extras, "edge-full-with-tickets", "edge-no-tickets"),
        }
    if "cas-1" in extras:
        report["ca_count"] = {
            where: {f"{n}": round(statistics.median(extras[f"{prefix}cas-{n}"]), 1)
                    for n in CA_COUNTS}
            for where, prefix in PLACES
        }
        report["ca_count_ratio_to_1"] = {
            where: {f"{n}": _paired(extras, f"{prefix}cas-{n}", f"{prefix}cas-1")
                    for n in CA_COUNTS[1:]}
            for where, prefix in PLACES
        }
    if "mutual" in extras:
        report["client_auth"] = {
            where: {
                "mutual_per_s": round(statistics.median(extras[f"{prefix}mutual"]), 1),
                "server_auth_only_per_s": round(
                    statistics.median(extras[f"{prefix}server-auth-only"]), 1),
                "ratio": _paired(extras, f"{prefix}mutual", f"{prefix}server-auth-only"),
            }
            for where, prefix in PLACES
        }
    return {
        **report,
        "settings": {**settings, "key": material.key_type, "tls": material.tls},
        "machine": {
            "python": platform.python_version(),
            "openssl": ssl.OPENSSL_VERSION,
            "cpus": os.cpu_count(),
            "usable_cpus": usable_cpus(),
        },
    }


# The table's columns after the row name: (heading, JSON key); a column no measured row has a
# value for is left out.
COLUMNS = (("hs/s", "handshakes_per_s"), ("x membio", "ratio_to_stdlib_membio"),
           ("x asyncio", "ratio_to_asyncio_tcp"), ("x openssl", "ratio_to_openssl_s_server"),
           ("server ms/hs", "server_cpu_ms_per_handshake"), ("load busy", "load_generator_busy"))


def render(report: dict, console: Console) -> None:
    table = Table(title="Full mutual-TLS handshakes per second (median of rounds)",
                  box=box.SIMPLE_HEAD)
    table.add_column("row", no_wrap=True)  # names stay whole on an 80-column terminal
    shown = [(heading, key) for heading, key in COLUMNS
             if any(row.get(key) is not None for row in report["rows"])]
    for heading, _key in shown:
        table.add_column(heading, justify="right")

    def fmt(key: str, value) -> str:
        if value is None:
            return "-"
        return f"{value:.0f}" if key == "handshakes_per_s" else f"{value:.2f}"

    for row in report["rows"]:
        table.add_row(row["name"], *(fmt(key, row.get(key)) for _heading, key in shown))
    console.print(table)
    console.print(f"[dim]{_legend(report, {key for _heading, key in shown})}[/dim]")
    resumption = report.get("resumption")
    if resumption:
        console.print(
            f"TLS resumption: raw loop {resumption['resumed_per_s']:.0f}/s resumed vs "
            f"{resumption['full_handshakes_per_s']:.0f}/s full with tickets "
            f"(x{resumption['ratio']:.2f}); edge-inmemory "
            f"{resumption['edge_resumed_per_s']:.0f}/s resumed vs "
            f"{resumption['edge_full_with_tickets_per_s']:.0f}/s full with tickets "
            f"(x{resumption['edge_ratio']:.2f}); tickets cost the edge's full handshakes "
            f"x{resumption['edge_ticket_cost']:.2f} (the edge issues none by default)"
        )
    if "ca_count" in report:
        console.print("CAs trusted on one hostname: " + "; ".join(
            f"{PLACE_TITLES[where]} " + ", ".join(
                f"{n}: {rate:.0f}/s" + (f" (x{ratios[n]:.2f} of 1)" if n in ratios else "")
                for n, rate in rates.items())
            for (where, rates), ratios in zip(report["ca_count"].items(),
                                              report["ca_count_ratio_to_1"].values())))
    if "client_auth" in report:
        console.print("What asking for and verifying a client certificate costs: " + "; ".join(
            f"{PLACE_TITLES[where]} x{cost['ratio']:.2f} of server authentication only "
            f"({cost['mutual_per_s']:.0f}/s mutual vs {cost['server_auth_only_per_s']:.0f}/s)"
            for where, cost in report["client_auth"].items()))
    if "workers_scaling" in report:
        console.print(f"workers scaling: x{report['workers_scaling']:.2f} over edge-tcp "
                      f"on {report['machine']['usable_cpus']} CPUs (clients share the machine)")
    if "workers_bound" in report:
        bound = report["workers_bound"]
        console.print(f"at most x{bound['ratio_to_edge_tcp']:.2f} over edge-tcp could show here: "
                      f"{report['settings']['workers']} workers and "
                      f"{report['settings']['load_processes']} load process(es) share "
                      f"{bound['cpus']:g} CPUs' worth (the cores' count, or what the raw loop "
                      f"in {report['settings']['workers']} processes gave, if less; from "
                      f"edge-tcp's server and load CPU per handshake)")
    if "machine_scaling" in report:
        console.print(f"the raw loop in {report['settings']['workers']} processes at once runs "
                      f"x{report['machine_scaling']:.2f} of one: how far the cores themselves "
                      f"scale")


def _legend(report: dict, keys: set[str]) -> str:
    """What the table's figures are, for the rows and columns it shows."""
    names = {row["name"] for row in report["rows"]}
    legend = ["x membio: each run over the raw loop measured just before and after it, median "
              "of the rounds."]
    if "ratio_to_asyncio_tcp" in keys:
        legend.append("x asyncio / openssl: ratios to the medians of asyncio-tcp and "
                      "openssl-s_server.")
    if "load_generator_busy" in keys:
        legend.append("TCP rows: server ms/hs is the server processes' CPU per handshake, which "
                      "compares servers whatever the pace; load busy near 1.00 means the load "
                      "generator (on the same cores) set the pace.")
    if names & TRANSPORT_ROWS:
        legend.append("edge-transport and trio-sslstream do handshakes only (no verdict, "
                      "request or event): the simulator's transport against trio's SSLStream.")
    if any(name.startswith(PARALLEL_ROW) for name in names):
        legend.append(f"{PARALLEL_ROW}-N: the handshakes of N raw loops at once, summed.")
    return " ".join(legend)


def main(*, seconds: float, rounds: int, key: str, tls: str, json_path: Path | None,
         concurrency: int, workers: int, load_processes: int = 1,
         only: frozenset[str] = frozenset(SECTIONS), quiet: bool = False) -> int:
    console, errors = Console(), Console(stderr=True)
    with tempfile.TemporaryDirectory(prefix="edge-bench-") as folder:
        material = make(Path(folder), key_type=key, tls=tls)
        progress = (lambda _: None) if quiet else (lambda text: errors.print(f"[dim]{text}[/dim]"))
        report = measure_all(material, seconds=seconds, rounds=rounds, concurrency=concurrency,
                             workers=workers, load_processes=load_processes, only=only,
                             progress=progress)
    if not quiet:
        render(report, console)
    if json_path is not None:
        Path(json_path).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0
