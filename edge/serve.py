"""`edge serve`: the simulator's edge node on real TCP, in real time, for real clients.

The same EdgeNode code as a rehearsal, behind a `TcpListener` on a loopback address; a
scenario file sets up its tenants, CAs, associations and rules (no fleets, no timeline
timing); without one the edge starts with one Enterprise account and the zone example.com.
Events go to a JSON Lines file and, one line per request, to the terminal. Ctrl-C cancels the
nursery: every task ends and the events file is closed complete.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

import attrs
import trio

from edge.collector import Collector
from edge.control import commands as c
from edge.control.errors import ApiError
from edge.deployment import Deployment
from edge.events import Event, RequestEvent
from edge.net import TcpListener
from edge.node.identity import EdgeIdentity
from edge.node.origin import EchoOrigin
from edge.scenario import model as m
from edge.scenario.loader import load
from edge.scenario.pki import build_cas
from edge.scenario.tenancy import Tenancy
from edge.workers import Workers

NODE = "local"
DEFAULT_ZONE = "example.com"


@attrs.frozen
class Served:
    host: str
    port: int
    server_ca: Path
    api_url: str | None  # e.g. http://127.0.0.1:8080, without /client/v4


class ServeError(ValueError):
    """The server cannot start as asked (address, file); nothing was started."""


def parse_listen(text: str, *, allow_remote: bool) -> tuple[str, int]:
    """`HOST:PORT` (port 0: any free port); a non-loopback host needs `allow_remote`. The same
    rule for the mTLS port and the API port."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        number = int(port)
    except ValueError:
        raise ServeError(f"expected HOST:PORT, got {text!r}") from None
    if not 0 <= number <= 65535:
        raise ServeError(f"port {number} is out of range")
    loopback = host == "localhost" or _is_loopback(host)
    if not loopback and not allow_remote:
        raise ServeError(
            f"{host} is not a loopback address; edge serves 127.0.0.1 unless "
            "--allow-remote is given"
        )
    return host, number


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Announcing(Collector):
    """A collector that also says one line per request."""

    def __init__(self, say: Callable[[str], None] | None, jsonl: IO[str] | None) -> None:
        super().__init__(jsonl=jsonl)
        self._say = say

    async def record(self, event: Event) -> None:
        await super().record(event)
        if self._say is not None and isinstance(event, RequestEvent):
            self._say(
                f"{event.at:%H:%M:%S} {event.host or '-'} {event.method} {event.path} -> "
                f"{event.status} {event.decision.value} ({event.reason})"
            )
        if self._jsonl is not None:
            self._jsonl.flush()  # a `tail -f` sees each event as it happens


async def _set_up(deployment: Deployment, scenario: m.Scenario | None, base: Path | None,
                  say: Callable[[str], None]) -> None:
    plane = deployment.plane
    if scenario is None:
        account = await plane.submit(c.CreateAccount("edge"))
        zone = await plane.submit(c.CreateZone(account.id, DEFAULT_ZONE))
        say(f"account {account.id} (edge, enterprise), zone {zone.id} ({DEFAULT_ZONE})")
        return
    tenancy = Tenancy(plane, build_cas(scenario, base))
    await tenancy.set_up(scenario.tenants)
    for index, entry in sorted(enumerate(scenario.timeline), key=lambda pair: pair[1].at):
        if entry.action not in (m.ActionKind.UPLOAD_CA, m.ActionKind.ASSOCIATE,
                                m.ActionKind.DEPLOY_RULES, m.ActionKind.DELETE_CA):
            continue  # fleets, topology and phases belong to rehearsals
        try:
            await tenancy.act(entry)
        except ApiError as err:
            say(f"timeline[{index}] ({entry.action.value}) refused: {err}")
    for name, account_id in tenancy.accounts.items():
        say(f"account {account_id} ({name})")
    for name, zone_id in tenancy.zones.items():
        say(f"zone {zone_id} ({name})")


async def _serve_api(nursery, plane, settle, api: tuple[str, int], token: str, say) -> str:
    """The control-plane API on `api`, behind hypercorn (an HTTP server that runs on Trio)."""
    from hypercorn.config import Config
    from hypercorn.trio import serve as serve_asgi

    from edge.api.app import build_app

    config = Config()
    config.bind = [f"{api[0]}:{api[1]}"]
    config.accesslog = None
    config.errorlog = None
    binds = await nursery.start(
        lambda task_status: serve_asgi(build_app(plane, frozenset({token}), settle=settle),
                                       config, task_status=task_status)
    )
    say(f"control-plane API on {binds[0]}/client/v4 (Authorization: Bearer <token>)")
    return binds[0]


async def serve(
    scenario_path: Path | None,
    *,
    listen: tuple[str, int],
    api: tuple[str, int] | None = None,
    token: str | None = None,
    events: IO[str] | None = None,
    server_ca_out: Path | None = None,
    workers: int = 1,
    say: Callable[[str], None] = print,
    per_request: bool = True,
    task_status=trio.TASK_STATUS_IGNORED,
) -> None:
    """Run until cancelled; `task_status.started(Served(...))` once listening."""
    if workers < 1:
        raise ServeError(f"--workers: expected at least 1, got {workers}")
    if api is not None and token == "":
        raise ServeError("--token: an empty token would let anyone in")
    scenario, base = load(scenario_path) if scenario_path is not None else (None, None)
    zones = [z for t in scenario.tenants for z in t.zones] if scenario else [DEFAULT_ZONE]
    identity = EdgeIdentity(names=tuple(n for z in zones for n in (z, "*." + z)))
    collector = _Announcing(say if per_request else None, events)
    with tempfile.TemporaryDirectory(prefix="edge-serve-") as folder:
        ca_path = server_ca_out or Path(folder) / "server-ca.pem"
        identity.ca.cert_pem.write_to_path(str(ca_path))
        await _run(identity, collector, scenario, base, listen=listen, api=api, token=token,
                   workers=workers, ca_path=ca_path, say=say, task_status=task_status)


async def _run(identity: EdgeIdentity, collector: Collector, scenario, base, *, listen, api,
               token, workers, ca_path, say, task_status) -> None:
    """Serve until cancelled, the server CA written at `ca_path` for as long as it runs."""
    async with trio.open_nursery() as nursery:
        deployment = Deployment(
            start=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=trio.current_time()),
            identity=identity, collector=collector,
        )
        await deployment.start_in(nursery)
        await _set_up(deployment, scenario, base, say)
        host = "127.0.0.1" if listen[0] == "localhost" else listen[0]  # one address, one port
        if workers == 1:
            host, port = await _serve_in_process(nursery, deployment, (host, listen[1]))
            settle = deployment.settle
        else:
            pool = Workers(workers, plane=deployment.plane, identity=identity,
                           collector=collector, origin=EchoOrigin(), name=NODE)
            host, port = await nursery.start(pool.run, (host, listen[1]))
            settle = pool.settle
        processes = f" in {workers} worker processes" if workers > 1 else ""
        say(f"edge serving mTLS on {host}:{port}{processes}; clients trust the edge's server CA: "
            f"{ca_path}")
        api_url = None
        if api is not None:
            if token is None:
                token = secrets.token_urlsafe(24)
                say(f"API token (generated): {token}")
            api_url = await _serve_api(nursery, deployment.plane, settle, api, token, say)
        task_status.started(Served(host, port, ca_path, api_url))


async def _serve_in_process(nursery, deployment: Deployment, address) -> tuple[str, int]:
    """One EdgeNode in this process, on every socket trio opens for `address`."""
    node = await deployment.add_node(NODE, origin=EchoOrigin())
    await deployment.settle()  # listen only once the configuration is in: no client sees a 503
    listeners = await trio.open_tcp_listeners(address[1], host=address[0])
    for listener in listeners:
        await nursery.start(node.serve, TcpListener(listener))
    return listeners[0].socket.getsockname()[:2]
