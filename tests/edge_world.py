"""A small edge for data-plane tests: a deployment, one tenant, and a way to send clients."""

from __future__ import annotations

import datetime as dt

import trio

from edge.clients import ClientResult, client_context, visit
from edge.collector import Collector
from edge.control import commands as c
from edge.deployment import Deployment
from edge.events import ConnectionEvent, RequestEvent
from edge.node.identity import EdgeIdentity
from edge.node.policy import HostModePolicy, Mode
from edge.pki.issuer import Authority
from edge.tls import TlsChannel

START = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)
BLOCK_HOST = "block.example.com"
LOG_HOST = "log.example.com"


class RecordingCollector(Collector):
    """Keeps every event; `delay` makes it deliberately slow."""

    def __init__(self, *, delay: float = 0.0, buffer: int = 16) -> None:
        super().__init__(buffer=buffer)
        self.delay = delay
        self.events: list = []

    async def record(self, event) -> None:
        if self.delay:
            await trio.sleep(self.delay)
        self.events.append(event)
        await super().record(event)

    def connection(self, conn_id: str) -> ConnectionEvent:
        (found,) = [e for e in self.events if isinstance(e, ConnectionEvent) and e.conn_id == conn_id]
        return found

    def requests(self, conn_id: str) -> list[RequestEvent]:
        return [e for e in self.events if isinstance(e, RequestEvent) and e.conn_id == conn_id]


class EdgeWorld:
    """One Enterprise account with zone example.com; its CA guards a log and a block hostname."""

    def __init__(self, deployment: Deployment, tenant: Authority) -> None:
        self.deployment = deployment
        self.tenant = tenant
        self.collector: RecordingCollector = deployment.collector  # type: ignore[assignment]
        self.ids: dict[str, str] = {}

    @classmethod
    async def start(cls, nursery, tenant: Authority, *, collector=None, nodes=("n1",), link=None,
                    rules: bool = False):
        """`rules=True`: nodes follow the zones' custom rules instead of the fixed host modes."""
        deployment = Deployment(
            start=START,
            collector=collector or RecordingCollector(),
            identity=EdgeIdentity(names=("example.com", "*.example.com")),
        )
        await deployment.start_in(nursery)
        world = cls(deployment, tenant)
        plane = deployment.plane
        account = await plane.submit(c.CreateAccount("acme"))
        zone = await plane.submit(c.CreateZone(account.id, "example.com"))
        ca = await plane.submit(c.UploadCaCertificate(account.id, tenant.certificate_pem))
        await plane.submit(c.PutHostnameAssociations(zone.id, [BLOCK_HOST, LOG_HOST], ca.id))
        world.ids.update(account=account.id, zone=zone.id, ca=ca.id)
        policy = None if rules else HostModePolicy({BLOCK_HOST: Mode.BLOCK, LOG_HOST: Mode.LOG})
        for name in nodes:
            await deployment.add_node(name, policy=policy, link=link)
        await deployment.settle()
        return world

    async def visit(self, credential, *, sni: str, node: str = "n1", paths=("/",), host=None,
                    **context_options) -> ClientResult:
        context = client_context(self.deployment.identity.configure_trust, credential,
                                 **context_options)
        network = self.deployment.network
        return await visit(lambda: network.connect(node), context, sni=sni, host=host, paths=paths)

    async def open_channel(self, credential=None, *, sni: str, node: str = "n1", context=None,
                           session=None) -> tuple[TlsChannel, str]:
        """A client's TLS channel to `node` with the handshake done (resuming `session`, if
        given), and its connection id; over `context` instead of one for `credential`."""
        context = context or client_context(self.deployment.identity.configure_trust, credential)
        accepted = self.deployment.network.connect(node)
        channel = TlsChannel.wrap(accepted.stream, context, server_side=False, server_hostname=sni)
        if session is not None:
            channel.ssl_object.session = session
        await channel.handshake()
        return channel, accepted.conn_id

    async def drain(self) -> None:
        """Give the nodes and the collector time to account for finished connections."""
        await trio.sleep(1)
