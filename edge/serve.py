"""`edge serve`: the simulator's edge node on real TCP, in real time, for real clients.

The same EdgeNode code as a rehearsal, behind a `TcpListener` on a loopback address (or in
worker processes sharing one port). A file sets up its tenants, CAs, associations and rules (a
scenario's fleets and timing are ignored) and may carry a [serve] table of options; without
one the edge starts with one Enterprise account and the zone example.com.
Events go to a JSON Lines file and, one line per request, to the terminal. Ctrl-C or SIGTERM
stops gracefully (the edge first, then the rest), a second one at once; either way every
connection's events are written before the file closes.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
import signal
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO

import attrs
import trio

from edge.collector import Collector
from edge.control.snapshot import EdgeConfig
from edge.control.errors import ApiError
from edge.deployment import Deployment
from edge.events import Event, RequestEvent
from edge.net import TcpListener
from edge.node.identity import EdgeIdentity
from edge.node.node import EdgeNode, NodeSettings
from edge.node.origin import EchoOrigin
from edge.scenario import model as m
from edge.scenario.loader import load, parse
from edge.scenario.pki import build_cas
from edge.scenario.tenancy import Tenancy
from edge.workers import Workers

NODE = "local"
DEFAULT_LISTEN = "127.0.0.1:8443"


@attrs.frozen
class Served:
    host: str
    port: int
    server_ca: Path
    api_url: str | None  # e.g. http://127.0.0.1:8080, without /client/v4
    stop: Callable[[], None] = attrs.field(eq=False, repr=False)  # a graceful stop, as Ctrl-C


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
            "--allow-remote (serve.allow_remote) is given"
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
            request = f"{event.method} {event.path}" if event.method else "(malformed request)"
            self._say(
                f"{event.at:%H:%M:%S} {event.host or '-'} {request} -> "
                f"{event.status} {event.decision.value} ({event.reason})"
            )
        if self._jsonl is not None:
            self._jsonl.flush()  # a `tail -f` sees each event as it happens


async def _set_up(deployment: Deployment, config: m.Scenario, base: Path,
                  say: Callable[[str], None]) -> None:
    tenancy = Tenancy(deployment.plane, build_cas(config, base))
    await tenancy.set_up(config.tenants)
    for index, entry in sorted(enumerate(config.timeline), key=lambda pair: pair[1].at):
        if entry.action not in (m.ActionKind.UPLOAD_CA, m.ActionKind.ASSOCIATE,
                                m.ActionKind.DEPLOY_RULES, m.ActionKind.DELETE_CA):
            continue  # fleets, topology and phases belong to rehearsals
        try:
            await tenancy.act(entry)
        except ApiError as err:
            say(f"timeline[{index}] ({entry.action.value}) refused: {err}")
    for tenant in config.tenants:
        say(f"account {tenancy.accounts[tenant.name]} ({tenant.name}, {tenant.plan.value})")
    for name, zone_id in tenancy.zones.items():
        say(f"zone {zone_id} ({name})")


async def _serve_api(nursery, plane, settle, api: tuple[str, int],
                     tokens: frozenset[str]) -> str:
    """The control-plane API on `api`, behind hypercorn (an HTTP server that runs on Trio)."""
    from hypercorn.config import Config
    from hypercorn.trio import serve as serve_asgi

    from edge.api.app import build_app

    config = Config()
    config.bind = [f"{api[0]}:{api[1]}"]
    config.accesslog = None
    config.errorlog = None
    try:
        binds = await nursery.start(
            lambda task_status: serve_asgi(build_app(plane, tokens, settle=settle),
                                           config, task_status=task_status)
        )
    except* OSError as group:  # hypercorn binds inside nurseries of its own
        err = leaves(group)[0]
        raise ServeError(f"cannot listen on {_address(*api)} for the API: "
                         f"{err.strerror or err}") from None
    return binds[0]


def leaves(group: BaseExceptionGroup) -> list[BaseException]:
    """The exceptions of a (nested) group, in order."""
    return [leaf for inner in group.exceptions
            for leaf in (leaves(inner) if isinstance(inner, BaseExceptionGroup) else [inner])]


@attrs.frozen
class ServeOptions:
    """Where and how to serve, once the command line and the file's [serve] table are merged."""

    listen: tuple[str, int]
    api: tuple[str, int] | None
    tokens: frozenset[str]
    events: Path | None
    server_ca_out: Path | None
    workers: int


def resolve(spec: m.ServeSpec, base: Path, *, listen: str | None = None, api: str | None = None,
            token: str | None = None, events: Path | None = None,
            server_ca_out: Path | None = None, workers: int | None = None,
            allow_remote: bool = False) -> ServeOptions:
    """The options given (not None) win over the file's; errors name the option or the key."""
    allow_remote = allow_remote or spec.allow_remote

    def address(given: str | None, key: str, default: str | None) -> tuple[str, int] | None:
        text = given if given is not None else getattr(spec, key) or default
        if text is None:
            return None
        try:
            return parse_listen(text, allow_remote=allow_remote)
        except ServeError as err:
            raise ServeError(f"{'--' + key if given is not None else 'serve.' + key}: {err}") \
                from None

    if token == "":
        raise ServeError("--token (or EDGE_API_TOKEN): an empty token would let anyone in")
    if workers is not None and workers < 1:
        raise ServeError(f"--workers: expected at least 1, got {workers}")
    return ServeOptions(
        listen=address(listen, "listen", DEFAULT_LISTEN),
        api=address(api, "api", None),
        tokens=frozenset([token] if token else spec.tokens),
        events=events or (base / spec.events if spec.events else None),
        server_ca_out=server_ca_out or (base / spec.server_ca_out if spec.server_ca_out else None),
        workers=workers or spec.workers,
    )


def configured(path: Path | None) -> tuple[m.Scenario, Path]:
    """The file's set-up (a scenario or a serve configuration), or the defaults without one."""
    if path is None:
        return parse("", source="(defaults)", serving=True), Path.cwd()
    return load(path, serving=True)


async def serve(
    config: m.Scenario,
    options: ServeOptions,
    *,
    base: Path = Path("."),
    events: IO[str] | None = None,
    say: Callable[[str], None] = print,
    per_request: bool = True,
    task_status=trio.TASK_STATUS_IGNORED,
) -> None:
    """Run until stopped (`Served.stop`, Ctrl-C, SIGTERM) or cancelled;
    `task_status.started(Served(...))` once listening. `events` is where the JSON Lines go (the
    caller opened `options.events`)."""
    zones = [z for t in config.tenants for z in t.zones]
    identity = EdgeIdentity(names=tuple(n for z in zones for n in (z, "*." + z)))
    collector = _Announcing(say if per_request else None, events)
    with tempfile.TemporaryDirectory(prefix="edge-serve-") as folder:
        ca_path = options.server_ca_out or Path(folder) / "server-ca.pem"
        identity.ca.cert_pem.write_to_path(str(ca_path))
        dropped = await _run(identity, collector, config, base, options, ca_path=ca_path,
                             say=say, task_status=task_status)
    if dropped is None:
        say("edge: stopped while starting")
    elif dropped:
        say(f"edge: stopped; {dropped} events could not be recorded")
    else:
        say("edge: stopped" + ("; every event was written" if events is not None else ""))


@attrs.define
class _Edge:
    """The serving side as `_run` steers it, in this process or in workers."""

    host: str
    port: int
    settle: Callable[[], Awaitable[None]]
    stop: Callable[..., None]  # stop(grace=None): graceful; stop(0): at once
    dropped: Callable[[], int]  # events that could not be handed to the collector


@attrs.define
class _Stopper:
    stop: Callable[..., None] | None = None  # None while starting: a signal then just cancels


async def _run(identity: EdgeIdentity, collector: Collector, config: m.Scenario, base: Path,
               options: ServeOptions, *, ca_path: Path, say, task_status) -> int | None:
    """Serve until stopped (a signal, `Served.stop`) or cancelled; the server CA is written at
    `ca_path` for as long as it runs. A stop winds the edge down first (no new connections,
    those in flight finish), and only then the plane, the API and the collector. Returns the
    number of events that could not be recorded, None if stopped before the edge listened."""
    stopper, edge = _Stopper(), None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_stop_on_signals, stopper, nursery.cancel_scope, say)
        deployment = Deployment(
            start=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=trio.current_time()),
            identity=identity, collector=collector,
        )
        await deployment.start_in(nursery)
        said: list[str] = []  # the set-up's lines, shown once the ports are ours
        await _set_up(deployment, config, base, said.append)
        async with trio.open_nursery() as edge_nursery:
            edge = await _listen(edge_nursery, deployment, options, collector)
            stopper.stop = edge.stop
            api_url, token = None, None
            if options.api is not None:
                token = None if options.tokens else secrets.token_urlsafe(24)
                api_url = await _serve_api(nursery, deployment.plane, edge.settle, options.api,
                                           options.tokens or frozenset([token]))
            for line in [*said, *_started_lines(edge, options, ca_path, deployment.plane.snapshot,
                                                api_url, token)]:
                say(line)
            task_status.started(Served(edge.host, edge.port, ca_path, api_url, edge.stop))
        nursery.cancel_scope.cancel()  # every connection has ended: now the rest
    return None if edge is None else edge.dropped()


def _started_lines(edge: _Edge, options: ServeOptions, ca_path: Path,
                   snapshot: EdgeConfig | None, api_url: str | None,
                   generated_token: str | None) -> list[str]:
    """What a user needs once the edge listens: where, what to trust, a command to try."""
    processes = f" in {options.workers} worker processes" if options.workers > 1 else ""
    name = _example_host(snapshot)
    lines = [f"edge serving mTLS on {_address(edge.host, edge.port)}{processes}; clients trust "
             f"the edge's server CA: {ca_path}",
             f"try: curl --cacert {ca_path} --resolve {name}:{edge.port}:{_bracketed(edge.host)} "
             f"https://{name}:{edge.port}/"]
    if api_url is not None:
        lines.append(f"control-plane API on {api_url}/client/v4 (Authorization: Bearer <token>)")
    if generated_token is not None:
        lines.append(f"API token (generated): {generated_token}")
    return lines


def _example_host(snapshot: EdgeConfig | None) -> str:
    """A hostname for the start-up hint: the first with a CA associated, else a zone."""
    zones = sorted(snapshot.zones.values(), key=lambda zone: zone.name) if snapshot else []
    for zone in zones:
        if zone.hosts:
            return min(zone.hosts)
    return zones[0].name if zones else "example.com"


def _address(host: str, port: int) -> str:
    return f"{_bracketed(host)}:{port}"


def _bracketed(host: str) -> str:
    """An IPv6 address in brackets, as URLs and curl's --resolve want it."""
    return f"[{host}]" if ":" in host else host


async def _listen(edge: trio.Nursery, deployment: Deployment, options: ServeOptions,
                  collector: Collector) -> _Edge:
    """The mTLS port, served by a node in this process or by workers."""
    listen = options.listen
    host = "127.0.0.1" if listen[0] == "localhost" else listen[0]  # one address, one port
    try:
        if options.workers == 1:
            node = await deployment.add_node(NODE, origin=EchoOrigin())
            host, port = await _serve_in_process(edge, deployment, node, (host, listen[1]))
            return _Edge(host, port, deployment.settle, node.stop, lambda: node.dropped)
        pool = Workers(options.workers, plane=deployment.plane, identity=deployment.identity,
                       collector=collector, origin=EchoOrigin(), name=NODE)
        host, port = await edge.start(pool.run, (host, listen[1]))
        return _Edge(host, port, pool.settle, pool.stop, lambda: pool.dropped)
    except OSError as err:
        raise ServeError(f"cannot listen on {_address(host, listen[1])}: "
                         f"{err.strerror or err}") from None


async def _stop_on_signals(stopper: _Stopper, everything: trio.CancelScope,
                           say: Callable[[str], None]) -> None:
    """Ctrl-C or `kill` (SIGTERM): a graceful stop; a second one: the edge stops at once (the
    events of what it cuts are still written); a third, or one while starting: cancel it all."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        received = 0
        async for number in signals:
            received += 1
            if stopper.stop is None or received > 2:
                everything.cancel()  # still starting, or a third signal: no more waiting
            elif received == 1:
                name = "Ctrl-C" if number == signal.SIGINT else "SIGTERM"
                say(f"edge: stopping ({name}): no new connections; those in flight get "
                    f"{NodeSettings().stop_grace:.0f} s (again to stop at once)")
                stopper.stop()
            elif received == 2:
                say("edge: stopping at once (again to abandon what is left)")
                stopper.stop(0)


async def _serve_in_process(nursery, deployment: Deployment, node: EdgeNode,
                            address) -> tuple[str, int]:
    """`node` on every socket trio opens for `address`."""
    await deployment.settle()  # listen only once the configuration is in: no client sees a 503
    listeners = [TcpListener.adopting(listener)
                 for listener in await trio.open_tcp_listeners(address[1], host=address[0])]
    for listener in listeners:
        await nursery.start(node.serve, listener)
    return listeners[0].socket.getsockname()[:2]
