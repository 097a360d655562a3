"""`edge serve` under load, as a user runs it: requests per second, and every answer accounted.

Starts `python -m edge serve FILE` (a generated CA associated with api.example.com, `--workers`
as asked), drives it with asyncio clients presenting a certificate from that CA for
`--seconds`, sends SIGTERM while they are still going (at 80 % of the time), and checks that
every request the clients saw answered has its request event, each with a connection event
(no event lost on a stop under load).

    python benchmarks/serve_soak.py --workers 2 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from edge.pki.issuer import Authority

HOST = "api.example.com"
CONFIG = """[serve]
listen = "127.0.0.1:0"
workers = {workers}
events = "events.jsonl"
server_ca_out = "edge-ca.pem"
[pki.corp]
pem = "corp.pem"
[[tenants]]
name = "corp"
zones = ["example.com"]
[[timeline]]
at = "0s"
action = "upload_ca"
tenant = "corp"
ca = "corp"
[[timeline]]
at = "0s"
action = "associate"
zone = "example.com"
hostnames = ["api.example.com"]
ca = "corp"
"""


def _files(folder: Path, workers: int) -> Path:
    corp = Authority.root({"CN": "Soak Corp Root"})
    client = corp.issue("device")
    (folder / "corp.pem").write_text(corp.certificate_pem)
    (folder / "client.pem").write_bytes(client.cert_chain_pem())
    (folder / "client.key").write_bytes(client.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    config = folder / "edge.toml"
    config.write_text(CONFIG.format(workers=workers))
    return config


async def _load(port: int, context: ssl.SSLContext, seconds: float, concurrency: int,
                stop) -> int:
    """Answers with 200 seen by the clients; `stop()` is called at 80 % of `seconds`, and each
    client ends at its first refused or cut connection after that (or at the deadline)."""
    answered = 0
    deadline = time.monotonic() + seconds

    async def client() -> None:
        nonlocal answered
        while time.monotonic() < deadline:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context,
                                                               server_hostname=HOST)
                writer.write(f"GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"
                             .encode())
                answer = await reader.read()
                writer.close()
            except (OSError, ssl.SSLError):
                return  # the edge is stopping
            answered += answer.startswith(b"HTTP/1.1 200")

    async def stopper() -> None:
        await asyncio.sleep(seconds * 0.8)
        stop()

    await asyncio.gather(stopper(), *(client() for _ in range(concurrency)))
    return answered


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="edge-soak-"))
    config = _files(folder, args.workers)
    edge = subprocess.Popen([sys.executable, "-m", "edge", "serve", str(config), "--quiet"],
                            stdout=subprocess.PIPE, text=True)
    try:
        port = next(int(line.split()[4].rstrip(";").rpartition(":")[2]) for line in edge.stdout
                    if line.startswith("edge serving mTLS on "))
        context = ssl.create_default_context(cafile=str(folder / "edge-ca.pem"))
        context.load_cert_chain(folder / "client.pem", folder / "client.key")
        started = time.monotonic()
        answered = asyncio.run(_load(port, context, args.seconds, args.concurrency,
                                     lambda: edge.send_signal(signal.SIGTERM)))
        elapsed = time.monotonic() - started
        last = edge.communicate(timeout=60)[0].strip().splitlines()[-1]
    finally:
        edge.kill()
    records = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    kinds = collections.Counter(record["kind"] for record in records)
    nodes = collections.Counter(r["node"] for r in records if r["kind"] == "request")
    ok_events = sum(r["kind"] == "request" and r["status"] == 200 for r in records)
    with_connection = {r["conn_id"] for r in records if r["kind"] == "connection"}
    whole = ok_events >= answered and all(
        r["conn_id"] in with_connection for r in records if r["kind"] == "request")
    print(f"workers {args.workers}: {answered} requests answered 200 in {elapsed:.1f} s "
          f"({answered / elapsed:.0f}/s, SIGTERM at {args.seconds * 0.8:.1f} s); events: "
          f"{kinds['request']} request ({ok_events} with 200), "
          f"{kinds['connection']} connection, by node {dict(nodes)}; exit {edge.returncode}; "
          f"{last!r}; {'every answer accounted' if whole else 'EVENTS MISSING'}")
    return 0 if whole and edge.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
