"""The `edge` command: one entry point, one subcommand per job."""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from pathlib import Path

import click

from edge import __version__
from edge.pki import formats, upload


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edge")
def main() -> None:
    """Rehearse client-certificate (mTLS) enforcement on a simulated bring-your-own-CA edge.

    Start with `edge run scenarios/byo-ca-rollout.toml`. Also: `edge serve` (the edge and a
    Cloudflare-v4-shaped API on loopback for real clients), `edge bench` (handshake throughput
    against baselines in the same run), `edge fuzz` and `edge conformance` (the validation
    logic against generated chains and x509-limbo).
    """


@main.command("ca-check")
@click.argument("pem_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--leaf", is_flag=True, help="Check as an upload with ca: false.")
def ca_check(pem_file: Path, leaf: bool) -> None:
    """Check PEM_FILE as the account CA store would check an upload of it.

    Prints the fields the API would show for each certificate, or the reason the upload would be
    refused (exit status 1).
    """
    try:
        bundle = upload.parse_bundle(pem_file.read_bytes())
        upload.check_bundle(bundle, ca=not leaf)
    except upload.UploadRejected as err:
        click.echo(f"{pem_file}: refused: {err}", err=True)
        sys.exit(1)
    shown = [
        {
            "subject": formats.dn_rfc2253(cert.subject),
            "issuer": formats.dn_rfc2253(cert.issuer),
            "serial_number": formats.serial_decimal(cert),
            "signature": formats.signature_name(cert),
            "expires_on": formats.rfc3339(cert.not_valid_after_utc),
            "fingerprint_sha256": formats.fingerprint_sha256(cert),
        }
        for cert in bundle.certificates
    ]
    click.echo(json.dumps({"accepted": True, "certificates": shown}, indent=2))


@main.command("run")
@click.argument("scenario_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--events", type=click.Path(dir_okay=False, path_type=Path),
              help="Write every event as JSON Lines to this file.")
@click.option("--summary", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the summary (totals, fleets, phases, expectations) as JSON.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path),
              help="Draw requests per outcome over simulated time as a PNG (needs matplotlib).")
@click.option("--seed", type=int, help="Override the scenario's seed.")
@click.option("--quiet", is_flag=True, help="No progress bar and no report on the terminal.")
def run(scenario_file: Path, events, summary, plot, seed, quiet) -> None:
    """Rehearse the rollout in SCENARIO_FILE and report who would break.

    Exit status: 0 when every expectation holds, 1 when one fails (or the run is stopped by a
    refused action with fail_on_rejected_action), 2 when the file is invalid.
    """
    from edge.scenario import rehearsal

    sys.exit(rehearsal.main(scenario_file, events=events, summary=summary, plot=plot,
                            seed=seed, quiet=quiet))


# Row names the table prints that --only takes too, for the section that measures them.
_ROW_SECTIONS = {"edge-transport": "transport", "trio-sslstream": "transport",
                 "membio-parallel": "edge-tcp-workers"}
_ALWAYS = "stdlib-membio"  # the baseline runs whatever --only says
_NUMBERED = re.compile(r"^(edge-tcp-workers|membio-parallel)-(\d+)$")


def _bench_sections(value: str | None, workers: int) -> frozenset[str]:
    """--only's names as the bench's sections; a row's name as the table prints it is taken
    too (edge-tcp-workers-N and membio-parallel-N only with N = --workers)."""
    from edge.bench.run import SECTIONS

    if value is None:
        return frozenset(SECTIONS)
    names = [part.strip() for part in value.split(",") if part.strip()]
    sections = set()
    for name in names:
        numbered = _NUMBERED.match(name)
        if numbered:
            if int(numbered[2]) != workers:
                raise click.BadParameter(f"{name} needs --workers {numbered[2]} (it is "
                                         f"{workers})", param_hint="'--only'")
            name = numbered[1]
        if name != _ALWAYS:
            sections.add(_ROW_SECTIONS.get(name, name))
    unknown = sorted(sections - set(SECTIONS))
    if unknown or not names:
        raise click.BadParameter(f"unknown {', '.join(unknown) or '(empty)'}; expected some of "
                                 f"{', '.join(SECTIONS)}", param_hint="'--only'")
    return frozenset(sections)


@main.command("bench")
@click.option("--seconds", type=float, default=3.0, show_default=True,
              help="Length of one measurement of one row (the raw-loop runs around each row "
                   "take at most 1 s).")
@click.option("--rounds", type=int, default=3, show_default=True,
              help="Measurements per row; the figure is their median.")
@click.option("--key", type=click.Choice(["ec", "rsa"]), default="ec", show_default=True,
              help="Key type of every certificate.")
@click.option("--tls", type=click.Choice(["1.2", "1.3"]), default="1.3", show_default=True,
              help="TLS version of every handshake.")
@click.option("--concurrency", type=int, default=16, show_default=True,
              help="Concurrent client connections.")
@click.option("--workers", type=int, default=os.cpu_count() or 1, show_default="CPU count",
              help="Edge worker processes on one port (SO_REUSEPORT) for the last row.")
@click.option("--load-processes", type=int,
              show_default="CPU count, at most --concurrency",
              help="Processes the TCP rows' load generator runs, sharing --concurrency: one "
                   "reaches about a core's worth of handshakes, too few for several workers.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the rows and extras as JSON.")
@click.option("--only", metavar="NAMES",
              help="Comma-separated rows and extras to measure, of: edge-inmemory, transport, "
                   "edge-tcp, asyncio-tcp, openssl-s_server, edge-tcp-workers, resumption, cas, "
                   "client-auth "
                   "(stdlib-membio always runs: every figure is a ratio of it; transport brings "
                   "edge-transport and trio-sslstream; edge-tcp-workers brings "
                   "membio-parallel and edge-tcp). A row name the table prints is taken for "
                   "its section. Default: all.")
@click.option("--quiet", is_flag=True, help="No table, no progress (with --json).")
def bench(seconds, rounds, key, tls, concurrency, workers, load_processes, json_path, only,
          quiet) -> None:
    """Measure full mutual-TLS handshakes per second of the edge and of baselines, side by side.

    Rows: stdlib-membio (raw SSLObject loop, the baseline), edge-inmemory (the simulator's
    whole path), edge-transport and trio-sslstream (handshakes only, two Trio tasks per
    connection: the simulator's transport, and trio's SSLStream as a reference), edge-tcp,
    asyncio-tcp and openssl-s_server (loopback TCP, clients in another process),
    edge-tcp-workers-N beside membio-parallel-N (the raw loop in N processes at once: what the
    cores themselves scale to) and the bound the shared cores put on the workers. Also what a
    client certificate costs (mutual TLS against server authentication only), TLS resumption
    rates (with what tickets cost) and the cost of 1, 5 and 50 CAs on one hostname, each in the
    raw loop and on the edge. Only 127.0.0.1 is used.
    """
    from edge.bench.run import main as run_bench, usable_cpus

    if seconds <= 0 or rounds < 1 or concurrency < 1 or workers < 1:
        raise click.BadParameter("--seconds must be above 0; --rounds, --concurrency and "
                                 "--workers at least 1")
    if load_processes is None:
        load_processes = min(usable_cpus(), concurrency)
    if not 1 <= load_processes <= concurrency:
        raise click.BadParameter(f"from 1 to --concurrency ({concurrency}), got {load_processes}",
                                 param_hint="'--load-processes'")
    sections = _bench_sections(only, workers)
    sys.exit(run_bench(seconds=seconds, rounds=rounds, key=key, tls=tls, json_path=json_path,
                       concurrency=concurrency, workers=workers, load_processes=load_processes,
                       only=sections, quiet=quiet))


@main.command("conformance")
@click.argument("limbo_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--profile", type=click.Choice(["edge", "strict"]), default="edge",
              show_default=True,
              help="edge: exactly the edge's OpenSSL settings; strict: also pyca/cryptography's "
                   "client verifier and extra RFC 5280 checks.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write limbo-style results: {\"results\": [{id, actual_result, context}]}.")
def conformance(limbo_file: Path, profile: str, json_path: Path | None) -> None:
    """Run the x509-limbo test cases in LIMBO_FILE through the edge's verification.

    Prints pass / fail / skipped per namespace and every false accept (a chain the suite says
    must fail that the profile accepted); pathological cases run under a time limit (HANG).
    """
    from edge.conformance import main as run_conformance

    sys.exit(run_conformance(limbo_file, profile=profile, json_path=json_path, console=None))


@main.command("fuzz")
@click.option("--budget", help='Stop after this long, e.g. "30s", "10m" (default: no limit).')
@click.option("--max-examples", type=int, default=500, show_default=True,
              help="Stop after this many generated chains.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the first batch.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Save each finding here as a reproducible case (PEM files and case.json).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help='Write {"examples", "disagreements": {family: count}, "unclassified", '
                   '"findings"}.')
@click.option("--quiet", is_flag=True, help="No progress and no summary on the terminal.")
def fuzz(budget, max_examples, seed, out, json_path, quiet) -> None:
    """Fuzz client-certificate validation with generated chains.

    Each chain goes through the edge's verification (OpenSSL, as in a handshake) and through
    pyca/cryptography's client verifier; disagreements are classified by family
    (docs/validation-differences.md). A finding (an unclassified disagreement, a chain that
    verified under another tenant's key, a reason other than the generator expected) exits 1.
    """
    from edge.fuzz.command import main as run_fuzz
    from edge.scenario.durations import parse_duration

    if max_examples < 1:
        raise click.BadParameter("expected at least 1", param_hint="--max-examples")
    try:
        limit = None if budget is None else parse_duration(budget)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--budget") from None
    sys.exit(run_fuzz(budget=limit, max_examples=max_examples, seed=seed, out=out,
                      json_path=json_path, quiet=quiet))


@main.command("serve")
@click.argument("config_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--listen", help="HOST:PORT for mTLS (port 0: any free port). "
              "[default: serve.listen of the file, else 127.0.0.1:8443]")
@click.option("--allow-remote", is_flag=True,
              help="Allow --listen and --api addresses that are not loopback (the API is plain "
                   "HTTP: its token would cross the network in clear text).")
@click.option("--events", type=click.Path(dir_okay=False, path_type=Path),
              help="Append every event as JSON Lines to this file.")
@click.option("--server-ca-out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the edge's server CA (PEM) here for clients to trust.")
@click.option("--api", "api_listen", help="HOST:PORT for the Cloudflare-v4-shaped control-plane "
              "API (e.g. 127.0.0.1:8080); off unless given here or in the file.")
@click.option("--token", envvar="EDGE_API_TOKEN",
              help="The API's Bearer token (or EDGE_API_TOKEN, or serve.tokens of the file); "
                   "generated and printed if none.")
@click.option("--workers", type=click.IntRange(min=1),
              help="Edge processes sharing the mTLS port (its one listening socket), e.g. one per "
                   "core; the control plane, API and events stay in the main process. "
                   "[default: 1]")
@click.option("--quiet", is_flag=True, help="No line per request on the terminal.")
def serve(config_file, listen, allow_remote, events, server_ca_out, api_listen, token,
          workers, quiet) -> None:
    """Serve the edge on real TCP, for real clients and their real certificates.

    CONFIG_FILE (optional) is a scenario or a serve configuration: its tenants, CAs,
    associations and rules are set up (fleets and timing are ignored), and its [serve] table
    gives defaults for the options (see docs/serve.md). Without it the edge starts with one
    Enterprise account and the zone example.com. Ctrl-C or SIGTERM stops it gracefully (no new
    connections, those in flight finish, every event written); a second one at once.
    """
    import trio

    from edge.scenario.loader import ScenarioError
    from edge.serve import ServeError, configured, leaves, resolve
    from edge.serve import serve as run_serve
    from edge.workers import WorkerExited

    try:
        config, base = configured(config_file)
        options = resolve(config.serve, base, listen=listen, api=api_listen, token=token,
                          events=events, server_ca_out=server_ca_out, workers=workers,
                          allow_remote=allow_remote)
        with open(options.events, "a", encoding="utf-8") if options.events else _nothing() as sink:
            trio.run(lambda: run_serve(config, options, base=base, events=sink,
                                       per_request=not quiet))
    except (ScenarioError, ServeError, OSError) as err:
        click.echo(str(err), err=True)
        sys.exit(2)
    except (KeyboardInterrupt, BaseExceptionGroup) as stopped:
        if isinstance(stopped, KeyboardInterrupt) or stopped.subgroup(KeyboardInterrupt):
            click.echo("edge: stopped (Ctrl-C) while starting", err=True)
            return
        known = stopped.subgroup((ServeError, OSError, WorkerExited))
        if known is None:
            raise
        for problem in leaves(known):  # e.g. the port is taken: say so, no traceback
            click.echo(f"edge serve: {problem}", err=True)
        sys.exit(2)


@contextlib.contextmanager
def _nothing():
    yield None
