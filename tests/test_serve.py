"""`edge serve`: the edge on real loopback TCP, with curl as the client."""

from __future__ import annotations

import datetime as dt
import functools
import io
import json
import shlex
import shutil
import signal
import socket
import subprocess
import sys

import httpx
import pytest
import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from edge.clients import client_context
from edge.events import Decision, RequestEvent
from edge.node.node import NodeSettings
from edge.pki.issuer import Authority
from edge.scenario.loader import ScenarioError
from edge.serve import ServeError, _Announcing, configured, parse_listen, resolve, serve
from edge.tls import TlsChannel

GRACE = NodeSettings().stop_grace

SCENARIO = """
[meta]
name = "served"
start = 2026-01-01T00:00:00Z
duration = "1h"
[pki.corp]
pem = "corp.pem"
key_pem = "corp.key"
[[tenants]]
name = "corp"
zones = ["example.com"]
[[timeline]]
at = "0s"
action = "upload_ca"
tenant = "corp"
ca = "corp"
[[timeline]]
at = "1s"
action = "associate"
zone = "example.com"
hostnames = ["api.example.com"]
ca = "corp"
[[timeline]]
at = "2s"
action = "deploy_rules"
zone = "example.com"
rules = [{ expression = "not cf.tls_client_auth.cert_verified", action = "ACTION" }]
"""


def test_listen_addresses():
    assert parse_listen("127.0.0.1:8443", allow_remote=False) == ("127.0.0.1", 8443)
    assert parse_listen("[::1]:0", allow_remote=False) == ("::1", 0)
    with pytest.raises(ServeError, match="not a loopback address"):
        parse_listen("0.0.0.0:8443", allow_remote=False)
    assert parse_listen("0.0.0.0:8443", allow_remote=True) == ("0.0.0.0", 8443)
    with pytest.raises(ServeError, match="expected HOST:PORT"):
        parse_listen("localhost", allow_remote=False)


def test_options_on_the_command_line_win_over_the_files_serve_table(tmp_path):
    (tmp_path / "edge.toml").write_text(
        '[serve]\nlisten = "127.0.0.1:9443"\napi = "127.0.0.1:9080"\ntokens = ["a", "b"]\n'
        'events = "events.jsonl"\nworkers = 2\n')
    config, base = configured(tmp_path / "edge.toml")
    assert [t.zones for t in config.tenants] == [("example.com",)]  # the default tenant
    from_file = resolve(config.serve, base)
    assert (from_file.listen, from_file.api, from_file.tokens, from_file.events,
            from_file.workers) == (("127.0.0.1", 9443), ("127.0.0.1", 9080),
                                   frozenset({"a", "b"}), tmp_path / "events.jsonl", 2)
    given = resolve(config.serve, base, listen="127.0.0.1:0", token="c", workers=1)
    assert (given.listen, given.tokens, given.workers) == (("127.0.0.1", 0), {"c"}, 1)
    assert resolve(configured(None)[0].serve, base).listen == ("127.0.0.1", 8443)
    assert resolve(configured(None)[0].serve, base).api is None
    with pytest.raises(ServeError, match=r"--token \(or EDGE_API_TOKEN\): an empty token"):
        resolve(config.serve, base, token="")
    with pytest.raises(ServeError, match="--api: 0.0.0.0 is not a loopback address"):
        resolve(config.serve, base, api="0.0.0.0:80")


@pytest.mark.parametrize("table, problem", [
    ('tokens = [""]', "serve.tokens: an empty token would let anyone in"),
    ("workers = 0", "serve.workers: expected at least 1, got 0"),
    ('listne = "x"', "serve: unknown key(s): listne"),
])
def test_a_bad_serve_table_names_the_key(tmp_path, table, problem):
    (tmp_path / "edge.toml").write_text(f"[serve]\n{table}\n")
    with pytest.raises(ScenarioError) as raised:
        configured(tmp_path / "edge.toml")
    assert problem in str(raised.value)
    assert str(raised.value).startswith(f"{tmp_path / 'edge.toml'}: invalid file for edge serve")


def test_a_remote_address_in_the_file_names_the_key(tmp_path):
    (tmp_path / "edge.toml").write_text('[serve]\nlisten = "10.1.2.3:443"\n')
    config, base = configured(tmp_path / "edge.toml")
    with pytest.raises(ServeError, match="serve.listen: 10.1.2.3 is not a loopback"):
        resolve(config.serve, base)
    (tmp_path / "edge.toml").write_text('[serve]\nlisten = "10.1.2.3:443"\nallow_remote = true\n')
    config, base = configured(tmp_path / "edge.toml")
    assert resolve(config.serve, base).listen == ("10.1.2.3", 443)


def starter(path, *, events, say, **options):
    """`serve` as the command line would start it with these options, for nursery.start."""
    config, base = configured(path)
    return functools.partial(serve, config, resolve(config.serve, base, **options), base=base,
                             events=events, say=say)


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _files(folder, action: str):
    """The scenario (its CA loaded from PEM files, with a rule of `action`) and a client
    certificate from that CA as client.pem / client.key, all in `folder`."""
    corp = Authority.root({"CN": "Served Corp Root"})
    (folder / "corp.pem").write_text(corp.certificate_pem)
    (folder / "corp.key").write_bytes(_pem_key(corp.key))
    client = corp.issue("device")
    (folder / "client.pem").write_bytes(client.cert_chain_pem())
    (folder / "client.key").write_bytes(_pem_key(client.key))
    scenario = folder / "served.toml"
    scenario.write_text(SCENARIO.replace("ACTION", action))
    return scenario


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_curl_with_and_without_a_client_certificate(tmp_path):
    scenario = _files(tmp_path, "block")
    events, lines = io.StringIO(), []
    async with trio.open_nursery() as nursery:
        served = await nursery.start(
            starter(scenario, listen="127.0.0.1:0", events=events, say=lines.append))
        host, port, ca_path = served.host, served.port, served.server_ca

        async def curl(*options: str) -> str:
            done = await trio.run_process(
                ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", str(ca_path),
                 "--resolve", f"api.example.com:{port}:{host}", *options,
                 f"https://api.example.com:{port}/orders"],
                capture_stdout=True, check=False,
            )
            return done.stdout.decode()

        with_cert = await curl("--cert", str(tmp_path / "client.pem"),
                               "--key", str(tmp_path / "client.key"))
        without = await curl()
        hint = next(line for line in lines if line.startswith("try: curl "))
        hinted = await trio.run_process(  # the start-up hint works as printed
            [*shlex.split(hint[5:]), "-s", "-o", "/dev/null", "-w", "%{http_code}"],
            capture_stdout=True, check=False)
        await trio.sleep(0.2)
        nursery.cancel_scope.cancel()
    assert (with_cert, without, hinted.stdout.decode()) == ("200", "403", "403")
    records = [json.loads(line) for line in events.getvalue().splitlines()]
    requests = [r for r in records if r["kind"] == "request"]
    assert [(r["status"], r["reason"]) for r in requests] == [
        (200, "OK"), (403, "NO_CERT"), (403, "NO_CERT")]
    assert any("/orders -> 403 block (NO_CERT)" in line for line in lines)




@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
async def test_openssl_s_client_no_sni_and_plain_http_on_the_tls_port(tmp_path):
    scenario = _files(tmp_path, "log")
    events = io.StringIO()
    async with trio.open_nursery() as nursery:
        served = await nursery.start(
            starter(scenario, listen="127.0.0.1:0", events=events, say=lambda line: None))
        address = f"{served.host}:{served.port}"

        async def s_client(*options: str, request: bytes) -> str:
            done = await trio.run_process(
                ["openssl", "s_client", "-connect", address, "-quiet", "-CAfile",
                 str(served.server_ca), *options],
                stdin=request, capture_stdout=True, capture_stderr=True, check=False,
            )
            return done.stdout.decode(errors="replace")

        get = b"GET / HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n"
        verified = await s_client("-servername", "api.example.com", "-cert",
                                  str(tmp_path / "client.pem"), "-key",
                                  str(tmp_path / "client.key"), request=get)
        unverified = await s_client("-servername", "api.example.com", request=get)
        no_sni = await s_client("-noservername", request=get)
        # plain HTTP on the TLS port: that connection fails, the edge goes on
        stream = await trio.open_tcp_stream(served.host, served.port)
        await stream.send_all(get)
        with trio.move_on_after(5):
            while await stream.receive_some(4096):
                pass
        await stream.aclose()
        after = await s_client("-servername", "api.example.com", request=get)
        await trio.sleep(0.2)
        nursery.cancel_scope.cancel()
    # log mode: both get through, and the event says which one verified
    assert verified.startswith("HTTP/1.1 200") and unverified.startswith("HTTP/1.1 200")
    assert no_sni.startswith("HTTP/1.1 200") and after.startswith("HTTP/1.1 200")
    records = [json.loads(line) for line in events.getvalue().splitlines()]
    requests = [r for r in records if r["kind"] == "request"]
    assert [(r["decision"], r["reason"]) for r in requests] == [
        ("allow", "OK"), ("log", "NO_CERT"), ("log", "NO_CERT"), ("log", "NO_CERT")]
    failed = [r for r in records if r["kind"] == "connection" and r["outcome"] != "ok"]
    assert [r["outcome"] for r in failed] == ["handshake_failed"]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_two_workers_forward_the_edges_headers_never_the_clients(tmp_path):
    """Two worker processes on one port: the origin (which answers with what it received)
    sees the certificate headers the edge computed, never a client's copies; every request's
    event reaches the parent's events file by the time serve has stopped."""
    scenario = _files(tmp_path, "block")
    client = x509.load_pem_x509_certificate((tmp_path / "client.pem").read_bytes())
    fingerprint = client.fingerprint(hashes.SHA256()).hex()
    events = io.StringIO()
    async with trio.open_nursery() as nursery:
        served = await nursery.start(
            starter(scenario, listen="127.0.0.1:0", api="127.0.0.1:0", token="t", workers=2,
                    events=events, say=lambda line: None))
        async with httpx.AsyncClient(base_url=served.api_url,
                                     headers={"authorization": "Bearer t"}) as http:
            zone = (await http.get("/client/v4/zones")).json()["result"][0]["id"]
            toggled = await http.patch(f"/client/v4/zones/{zone}/managed_headers", json={
                "managed_request_headers": [{"id": "add_client_certificate_headers",
                                             "enabled": True}]})
        assert toggled.json()["result"]["managed_request_headers"][0]["enabled"] is True

        async def curl(*options: str) -> tuple[str, str]:
            done = await trio.run_process(
                ["curl", "-s", "-w", "\n%{http_code} %{content_type}", "--cacert", str(served.server_ca),
                 "--resolve", f"api.example.com:{served.port}:{served.host}",
                 "-H", "cf-cert-sha256: spoofed", "-H", "cf-cert-verified: true", *options,
                 f"https://api.example.com:{served.port}/orders"],
                capture_stdout=True, check=False,
            )
            body, _, status = done.stdout.decode().rpartition("\n")
            return status, body

        certified = ["--cert", str(tmp_path / "client.pem"), "--key", str(tmp_path / "client.key")]
        answers = [await curl(*certified) for _ in range(6)]
        refused = await curl()
        nursery.cancel_scope.cancel()
    for status, body in answers:
        seen = json.loads(body)["headers"]
        assert status == "200 application/json"
        assert seen["cf-cert-sha256"] == fingerprint and seen["cf-cert-verified"] == "true"
    assert refused[0] == "403 application/json"  # a spoofed "verified" header changes nothing
    records = [json.loads(line) for line in events.getvalue().splitlines()]
    requests = [r for r in records if r["kind"] == "request"]
    assert [r["status"] for r in requests].count(200) == 6 and len(requests) == 7
    assert {r["node"] for r in records} <= {"local-1", "local-2"}


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_command_from_a_config_file_stops_on_sigterm_with_every_event(tmp_path):
    """`edge serve FILE` as a user runs it: two workers from the file's [serve] table, ten
    requests, then `kill` at once: exit status 0 and both events of every request in the file
    (a stop lets answered connections account for themselves first)."""
    scenario = _files(tmp_path, "block")
    scenario.write_text('[serve]\nlisten = "127.0.0.1:0"\nworkers = 2\nevents = "events.jsonl"\n'
                        'server_ca_out = "edge-ca.pem"\n' + scenario.read_text())
    edge = subprocess.Popen([sys.executable, "-m", "edge", "serve", str(scenario)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    port = None
    try:
        for line in edge.stdout:
            if line.startswith("edge serving mTLS on "):
                port = line.split()[4].rstrip(";").rpartition(":")[2]
                break
        assert port is not None, edge.stderr.read()
        statuses = [subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert",
             str(tmp_path / "edge-ca.pem"), "--resolve", f"api.example.com:{port}:127.0.0.1",
             f"https://api.example.com:{port}/{n}"], capture_output=True, text=True,
            timeout=30).stdout for n in range(10)]
        edge.send_signal(signal.SIGTERM)
        out, err = edge.communicate(timeout=30)
    finally:
        edge.kill()
    assert statuses == ["403"] * 10 and edge.returncode == 0, err
    assert "stopping (SIGTERM)" in out and "stopped; every event was written" in out
    records = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    requests = sorted(r["path"] for r in records if r["kind"] == "request")
    assert requests == sorted(f"/{n}" for n in range(10))
    connections = [r for r in records if r["kind"] == "connection"]
    assert len(connections) == 10 and all(r["requests"] == 1 for r in connections)


@pytest.mark.parametrize("workers", [1, 2])
async def test_a_stop_closes_idle_connections_at_once_and_a_second_cuts_the_rest(tmp_path, workers):
    """Served.stop() as Ctrl-C: a kept-alive connection between requests is closed at once;
    one that never starts its handshake holds the stop until stop(0) (a second Ctrl-C) cuts it.
    serve() returns with both connections' events written, the cut one STOPPED."""
    scenario = _files(tmp_path, "log")
    events = io.StringIO()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            served = await nursery.start(starter(scenario, listen="127.0.0.1:0", workers=workers,
                                                 events=events, say=lambda line: None))
            context = client_context(lambda ctx: ctx.load_verify_locations(served.server_ca))
            stream = await trio.open_tcp_stream(served.host, served.port)
            kept = TlsChannel.wrap(stream, context, server_side=False,
                                   server_hostname="api.example.com")
            await kept.handshake()
            await kept.send_all(b"GET /kept HTTP/1.1\r\nHost: api.example.com\r\n\r\n")
            assert (await kept.receive_some()).startswith(b"HTTP/1.1 200")
            silent = await trio.open_tcp_stream(served.host, served.port)
            await trio.sleep(0.5)  # the edge has accepted it
            served.stop()
            with trio.fail_after(GRACE / 2):  # closed at once, not after the grace
                assert await kept.receive_some() == b""
            served.stop(0)
            hurried = trio.current_time()
        assert trio.current_time() - hurried < GRACE / 2  # the silent one did not get its grace
        await silent.aclose()
    records = [json.loads(line) for line in events.getvalue().splitlines()]
    connections = sorted((r["outcome"], r["requests"]) for r in records
                         if r["kind"] == "connection")
    assert connections == [("ok", 1), ("stopped", 0)]
    assert [r["path"] for r in records if r["kind"] == "request"] == ["/kept"]


async def test_an_api_port_in_use_is_named(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(BaseExceptionGroup) as raised:
            async with trio.open_nursery() as nursery:
                await nursery.start(starter(None, listen="127.0.0.1:0", api=f"127.0.0.1:{port}",
                                            token="t", events=None, say=lambda line: None))
    assert raised.group_contains(ServeError, match=f"cannot listen on 127.0.0.1:{port} for the API")


async def test_a_malformed_request_is_announced_as_such():
    lines: list[str] = []
    refused = RequestEvent("tcp:127.0.0.1:1", "local", 3, dt.datetime(2026, 6, 1, 8, 0, 5), "a.test",
                           "", "", "", 400, Decision.BAD_REQUEST, False, "OK")
    await _Announcing(lines.append, None).record(refused)
    assert lines == ["08:00:05 - (malformed request) -> 400 bad_request (OK)"]
