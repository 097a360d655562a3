"""Simulated clients: open a connection to an edge node, present a certificate, send requests.

Each connection is recorded as the client saw it (TLS outcome, status codes), under the
connection id the network gave both ends, so that the collector's totals can be checked against
what clients actually experienced.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Sequence

import attrs
import trio

from edge import http
from edge.events import TlsOutcome
from edge.net import Accepted
from edge.tls import TlsChannel, TlsClosed


@attrs.frozen
class ClientResult:
    conn_id: str
    outcome: TlsOutcome
    statuses: tuple[int, ...] = ()
    error: str = ""
    session: ssl.SSLSession | None = attrs.field(default=None, eq=False, repr=False)
    resumed: bool = False


def client_context(
    trust_edge: Callable[[ssl.SSLContext], None],
    credential=None,
    *,
    check_hostname: bool = True,
    maximum_version: ssl.TLSVersion | None = None,
) -> ssl.SSLContext:
    """A client context trusting the edge; `credential` (if any) has `configure(context)`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    trust_edge(context)
    context.check_hostname = check_hostname
    if maximum_version is not None:
        context.maximum_version = maximum_version
    if credential is not None:
        credential.configure(context)
    return context


async def visit(
    connect: Callable[[], Accepted],
    context: ssl.SSLContext,
    *,
    sni: str | None,
    host: str | None = None,
    paths: Sequence[str] = ("/",),
    timeout: float = 30.0,
    session: ssl.SSLSession | None = None,
    keep_session: bool = False,
) -> ClientResult:
    """One connection: handshake, then one request per path on the same connection, the last
    with `Connection: close`; with `session`, an attempt to resume it.

    The result carries the connection's session only with `keep_session`: reading it costs
    about a fifth of a handshake (CPython copies it through DER, parsing the server's
    certificate again), and only a client that resumes later needs it.
    """
    accepted = connect()
    channel = TlsChannel.wrap(accepted.stream, context, server_side=False, server_hostname=sni)
    if session is not None:
        channel.ssl_object.session = session
    statuses: list[int] = []
    handshaken = False
    # What is left when the timeout strikes (`move_on_after`, not the dearer generator context
    # manager `fail_after`); finishing the block, or an exception, says otherwise.
    failure, error = TlsOutcome.TIMEOUT, "timed out"
    try:
        with trio.move_on_after(timeout):
            await channel.handshake(flush=not paths)  # the first request carries our Finished
            handshaken = True
            reader = http.ResponseReader()
            for number, path in enumerate(paths, 1):
                # the edge closes after the last answer instead of waiting for the client to
                last = (("connection", "close"),) if number == len(paths) else ()
                statuses.append(await request(channel, reader, host or sni or "", path, last))
                if reader.ended:
                    break
            failure, error = TlsOutcome.OK, ""
    except ssl.SSLError as exc:
        failure, error = TlsOutcome.HANDSHAKE_FAILED, str(exc)
    except (TlsClosed, trio.BrokenResourceError, http.BadResponse) as exc:
        failure, error = TlsOutcome.CLIENT_CLOSED, str(exc) or type(exc).__name__
    finally:
        await channel.aclose()
    outcome = TlsOutcome.OK if handshaken else failure
    return ClientResult(
        accepted.conn_id, outcome, tuple(statuses), error,
        channel.ssl_object.session if handshaken and keep_session else None,
        handshaken and channel.ssl_object.session_reused,
    )


async def request(
    channel: TlsChannel,
    reader: http.ResponseReader,
    host: str,
    path: str,
    headers: Sequence[tuple[str, str]] = (),
) -> int:
    """One GET on an open connection (`reader` holds what the connection received so far);
    the response's status code."""
    await channel.send_all(http.request("GET", path, [("host", host), *headers]))
    while (response := reader.next_response()) is None:
        data = await channel.receive_some()
        if not data:
            raise TlsClosed("edge closed the connection mid-response")
        reader.receive(data)
    return response.status


@attrs.define
class Fleet:
    """A named group of clients sharing a certificate, an SNI, a Host and paths.

    `run` opens `connections` connections, at most `concurrency` at a time, spread over the
    `connect` callables in turn (one per edge node), and keeps every result.
    """

    name: str
    credential: object | None
    sni: str | None
    host: str | None = None
    paths: tuple[str, ...] = ("/",)
    connections: int = 1
    concurrency: int = 16
    results: list[ClientResult] = attrs.field(factory=list)

    async def run(
        self,
        connects: Sequence[Callable[[], Accepted]],
        trust_edge: Callable[[ssl.SSLContext], None],
    ) -> list[ClientResult]:
        context = client_context(trust_edge, self.credential, check_hostname=self.sni is not None)
        limiter = trio.CapacityLimiter(self.concurrency)

        async def one(connect: Callable[[], Accepted]) -> None:
            async with limiter:
                result = await visit(
                    connect, context, sni=self.sni, host=self.host, paths=self.paths
                )
            self.results.append(result)

        async with trio.open_nursery() as nursery:
            for index in range(self.connections):
                nursery.start_soon(one, connects[index % len(connects)])
        return self.results
