"""The `edge` command: one entry point, one subcommand per job."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from edge import __version__
from edge.pki import formats, upload


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edge")
def main() -> None:
    """Rehearse client-certificate (mTLS) enforcement on a simulated bring-your-own-CA edge.

    Start with `edge run scenarios/byo-ca-rollout.toml`. Coming in later releases: `edge bench`
    (handshake throughput) and `edge fuzz` (fuzz the validation logic).
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
