"""The control-plane API of `edge serve`, driven by Cloudflare's official Python SDK and by raw
HTTP for the bad inputs. Only 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path

import cloudflare
import httpx
import pytest
import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge.api.app import build_app
from edge.clients import client_context, visit
from edge.control import commands as c
from edge.control.plane import ControlPlane
from edge.control.store import Settings, new_store
from edge.net import Accepted
from edge.pki.issuer import Authority, Credential
from edge.scenario.model import ServeSpec
from edge.serve import configured, resolve, serve

TOKEN = "test-token-0123456789"
PHASE = "http_request_firewall_custom"


@functools.cache
def corp(index: int = 0) -> Authority:
    return Authority.root({"CN": f"API Corp Root {index}"})


async def start(nursery, workers: int = 1):
    options = resolve(ServeSpec(), Path.cwd(), listen="127.0.0.1:0", api="127.0.0.1:0",
                      token=TOKEN, workers=workers)
    return await nursery.start(functools.partial(serve, configured(None)[0], options,
                                                 say=lambda line: None))


async def get(served, credential, host="api.example.com") -> int:
    context = client_context(lambda ctx: ctx.load_verify_locations(served.server_ca), credential)

    stream = await trio.open_tcp_stream(served.host, served.port)
    result = await visit(lambda: Accepted(stream, "client"), context, sni=host)
    return result.statuses[0] if result.statuses else 0


def sdk(served) -> cloudflare.Cloudflare:
    return cloudflare.Cloudflare(api_token=TOKEN, base_url=f"{served.api_url}/client/v4",
                                 max_retries=0)


def _csr() -> tuple[str, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "laptop")]))
           .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())
    return csr, key


@pytest.mark.parametrize("workers", [1, 2])
async def test_the_sdk_drives_a_rollout_that_the_next_connection_sees(nursery, workers):
    """No sleeps: an answer comes once the edge (every worker) serves the change."""
    served = await start(nursery, workers)
    client = sdk(served)
    run = trio.to_thread.run_sync

    account_id = (await run(lambda: list(client.accounts.list())))[0].id
    zone_id = (await run(lambda: list(client.zones.list(name="example.com"))))[0].id
    upload = await run(lambda: client.mtls_certificates.create(
        account_id=account_id, ca=True, certificates=corp().certificate_pem, name="corp",
        private_key="-----BEGIN PRIVATE KEY-----\nnot kept\n-----END PRIVATE KEY-----\n"))
    listed = await run(lambda: list(client.mtls_certificates.list(account_id=account_id)))
    assert [c.id for c in listed] == [upload.id] and upload.name == "corp"
    assert "private_key" not in (upload.model_dump() if hasattr(upload, "model_dump") else {})
    await run(lambda: client.certificate_authorities.hostname_associations.update(
        zone_id=zone_id, hostnames=["api.example.com"], mtls_certificate_id=upload.id))
    await run(lambda: client.rulesets.phases.update(
        PHASE, zone_id=zone_id,
        rules=[{"expression": "not cf.tls_client_auth.cert_verified", "action": "block"}]))
    assert await get(served, corp().issue("device")) == 200
    assert await get(served, None) == 403

    # the managed CA: issue from a CSR, revoke, and the revocation rule blocks it
    csr, key = _csr()
    issued = await run(lambda: client.client_certificates.create(
        zone_id=zone_id, csr=csr, validity_days=30))
    await run(lambda: client.certificate_authorities.hostname_associations.update(
        zone_id=zone_id, hostnames=["admin.example.com"]))
    await run(lambda: client.rulesets.phases.update(
        PHASE, zone_id=zone_id, rules=[{
            "expression": "not cf.tls_client_auth.cert_verified or cf.tls_client_auth.cert_revoked",
            "action": "block"}]))
    laptop = Credential(x509.load_pem_x509_certificate(issued.certificate.encode()), key)
    assert await get(served, laptop, "admin.example.com") == 200
    revoked = await run(lambda: client.client_certificates.delete(
        issued.id, zone_id=zone_id))
    assert revoked.status == "pending_revocation"
    assert await get(served, laptop, "admin.example.com") == 403
    nursery.cancel_scope.cancel()


async def test_api_errors_come_back_as_the_sdks_exceptions_with_codes(nursery):
    served = await start(nursery)
    client = sdk(served)
    run = trio.to_thread.run_sync
    account_id = (await run(lambda: list(client.accounts.list())))[0].id
    zone_id = (await run(lambda: list(client.zones.list(name="example.com"))))[0].id

    def code_of(call) -> int:
        with pytest.raises(cloudflare.APIStatusError) as caught:
            call()
        return caught.value.body["errors"][0]["code"] if isinstance(caught.value.body, dict) \
            else caught.value.response.json()["errors"][0]["code"]

    ids = []
    for index in range(5):
        ids.append((await run(lambda i=index: client.mtls_certificates.create(
            account_id=account_id, ca=True, certificates=corp(i).certificate_pem))).id)
    sixth = functools.partial(client.mtls_certificates.create, account_id=account_id, ca=True,
                              certificates=corp(5).certificate_pem)
    assert await run(lambda: code_of(sixth)) == 1489
    await run(lambda: client.certificate_authorities.hostname_associations.update(
        zone_id=zone_id, hostnames=["api.example.com"], mtls_certificate_id=ids[0]))
    delete = functools.partial(client.mtls_certificates.delete, ids[0], account_id=account_id)
    assert await run(lambda: code_of(delete)) == 1471
    garbage = functools.partial(client.mtls_certificates.create, account_id=account_id, ca=True,
                                certificates="garbage")
    assert await run(lambda: code_of(garbage)) == 1460  # parsed before the quota is counted
    unknown = functools.partial(client.managed_transforms.edit, zone_id=zone_id,
                                managed_request_headers=[{"id": "add_visitor_location_headers",
                                                          "enabled": True}])
    assert await run(lambda: code_of(unknown)) == 1450
    nursery.cancel_scope.cancel()


async def test_the_sdk_turns_on_the_client_certificate_headers(nursery):
    served = await start(nursery)
    client = sdk(served)
    run = trio.to_thread.run_sync
    zone_id = (await run(lambda: list(client.zones.list(name="example.com"))))[0].id
    before = await run(lambda: client.managed_transforms.list(zone_id=zone_id))
    after = await run(lambda: client.managed_transforms.edit(
        zone_id=zone_id, managed_request_headers=[
            {"id": "add_client_certificate_headers", "enabled": True}],
        managed_response_headers=[]))
    listed = await run(lambda: client.managed_transforms.list(zone_id=zone_id))
    assert [(h.id, h.enabled) for h in before.managed_request_headers] == [
        ("add_client_certificate_headers", False)]
    assert [(h.id, h.enabled) for h in after.managed_request_headers] == [
        ("add_client_certificate_headers", True)]
    assert listed.model_dump() == after.model_dump()
    nursery.cancel_scope.cancel()


async def test_bad_input_over_the_wire_changes_nothing(nursery):
    served = await start(nursery)
    base = f"{served.api_url}/client/v4"
    auth = {"Authorization": f"Bearer {TOKEN}"}

    def calls() -> list[tuple[int, dict]]:
        with httpx.Client() as http:
            account = http.get(f"{base}/accounts", headers=auth).json()["result"][0]["id"]
            uploads = f"{base}/accounts/{account}/mtls_certificates"
            answers = [
                http.get(f"{base}/accounts"),  # no token
                http.get(f"{base}/accounts", headers={"Authorization": "Bearer wrong"}),
                http.post(uploads, headers=auth, content=b"{not json"),
                http.get(f"{base}/no/such/route", headers=auth),
                http.post(uploads, headers=auth, json={"ca": "yes", "certificates": 5}),
            ]
            try:  # a huge body: answered 413 before it is read, or the connection is closed
                huge = http.post(uploads, headers=auth, content=b"x" * (2 * 1024 * 1024))
                answers.append(huge)
            except httpx.RemoteProtocolError:
                pass
        listed = httpx.get(uploads, headers=auth).json()  # a new connection: the server goes on
        return [(a.status_code, a.json()) for a in answers], listed

    answers, listed = await trio.to_thread.run_sync(calls)
    assert [status for status, _ in answers][:5] == [401, 403, 400, 404, 400]
    assert [status for status, _ in answers][5:] in ([], [413])
    for _, body in answers:
        assert body["success"] is False and body["errors"][0]["code"] >= 1000
    assert listed["result"] == []  # the store is unchanged
    assert await get(served, None, "www.example.com") == 200  # and the edge still serves
    nursery.cancel_scope.cancel()


async def test_odd_headers_and_bodies_get_the_envelope_never_a_500(nursery):
    served = await start(nursery)
    base = f"{served.api_url}/client/v4"

    def calls() -> list[tuple[int, dict]]:
        answers = []
        with httpx.Client() as http:
            for header in (b"Bearer t\xe9", b"Bearer \xff\xfe", b"Basic dXNlcg=="):
                answers.append(http.get(f"{base}/accounts", headers={"Authorization": header}))
            auth = {"Authorization": f"Bearer {TOKEN}"}
            account = http.get(f"{base}/accounts", headers=auth).json()["result"][0]["id"]
            answers.append(http.post(f"{base}/accounts/{account}/mtls_certificates",
                                     headers=auth, content=b"[" * 100_000))
        return [(a.status_code, a.json()) for a in answers]

    answers = await trio.to_thread.run_sync(calls)
    assert [status for status, _ in answers] == [403, 403, 401, 400]
    assert all(body["success"] is False for _, body in answers)
    nursery.cancel_scope.cancel()


async def test_a_change_is_answered_only_once_the_edge_serves_it(nursery):
    """The app awaits `settle` after each change (never after a read), so an SDK call that
    returns means the next connection sees the change, however slowly the nodes catch up."""
    plane = ControlPlane(new_store(Settings(), now=dt.datetime.now(dt.timezone.utc)))
    await nursery.start(plane.run)
    account = await plane.submit(c.CreateAccount("a"))
    zone = await plane.submit(c.CreateZone(account.id, "example.com"))
    settled = []

    async def settle() -> None:
        await trio.sleep(0.05)  # a node still applying the snapshot
        settled.append(plane.store.version)

    app = build_app(plane, frozenset({TOKEN}), settle=settle)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://edge") as http:
        await http.get(f"/client/v4/zones/{zone.id}/managed_headers", headers=auth)
        assert settled == []
        await http.patch(f"/client/v4/zones/{zone.id}/managed_headers", headers=auth, json={
            "managed_request_headers": [{"id": "add_client_certificate_headers",
                                         "enabled": True}]})
        assert settled == [plane.store.version]


async def test_a_change_the_edge_does_not_confirm_in_time_says_so(nursery, autojump_clock):
    plane = ControlPlane(new_store(Settings(), now=dt.datetime.now(dt.timezone.utc)))
    await nursery.start(plane.run)
    account = await plane.submit(c.CreateAccount("a"))
    zone = await plane.submit(c.CreateZone(account.id, "example.com"))

    async def stuck() -> None:
        await trio.sleep_forever()

    app = build_app(plane, frozenset({TOKEN}), settle=stuck)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://edge") as http:
        answer = await http.patch(
            f"/client/v4/zones/{zone.id}/managed_headers",
            headers={"Authorization": f"Bearer {TOKEN}"},
            json={"managed_request_headers": [{"id": "add_client_certificate_headers",
                                               "enabled": True}]})
    body = answer.json()
    assert answer.status_code == 200 and body["success"] is True
    assert [m["code"] for m in body["messages"]] == [1456]
    assert body["result"]["managed_request_headers"][0]["enabled"] is True
