"""The EdgeNode task: a point of presence terminating mutual TLS and answering HTTP.

Thin Trio shell over the pure parts: it follows the control plane's snapshots, accepts
connections from a listener, runs each one as a task in its own nursery, asks the verdict and
policy modules what to do, and sends one event per connection and per request to the collector.
A connection lives under the snapshot it started with, even if a newer one arrives meanwhile.
"""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Callable

import attrs
import h11
import trio

from edge.control.snapshot import EdgeConfig, HostPolicy
from edge.events import ConnectionEvent, Decision, Event, RequestEvent, TlsOutcome
from edge.net import Accepted
from edge.node import verdict as verdicts
from edge.node.identity import EdgeIdentity
from edge.node.origin import Origin, OriginRequest
from edge.node import forwarding
from edge.node.forwarding import NO_FORWARDING
from edge.node.policy import Policy, PolicyDecision, RequestFacts, RulesPolicy
from edge.node.trust import DEFAULT_MAX_CHAIN_DEPTH, ContextCache
from edge.pki import openssl
from edge.tls import TlsChannel, TlsClosed


@attrs.frozen
class NodeSettings:
    handshake_timeout: float = 10.0
    idle_timeout: float = 30.0  # between requests on a kept-alive connection
    max_request_bytes: int = 16 * 1024  # request line and headers
    max_body_bytes: int = 1024 * 1024
    max_chain_depth: int = DEFAULT_MAX_CHAIN_DEPTH
    num_tickets: int = 0


class _Connection:
    """Per-connection state the SNI callback fills in."""

    __slots__ = ("conn_id", "client_ip", "snapshot", "contexts", "sni", "policy", "error")

    def __init__(self, conn_id: str, snapshot: EdgeConfig | None, contexts: ContextCache) -> None:
        self.conn_id = conn_id
        self.client_ip = _client_ip(conn_id)
        self.snapshot = snapshot
        self.contexts = contexts
        self.sni: str | None = None
        self.policy: HostPolicy | None = None
        self.error = ""


class _RequestTooLarge(Exception):
    pass


class EdgeNode:
    def __init__(
        self,
        name: str,
        *,
        identity: EdgeIdentity,
        events: trio.MemorySendChannel[Event],
        clock: Callable[[], dt.datetime],
        policy: Policy | None = None,
        origin: Origin | None = None,
        settings: NodeSettings = NodeSettings(),
    ) -> None:
        self.name = name
        self.identity = identity
        self.settings = settings
        self.policy: Policy = policy or RulesPolicy()
        self.origin = origin or Origin()
        self._events = events
        self._clock = clock
        self.snapshot: EdgeConfig | None = None
        self._names: tuple[str, ...] | None = None
        self._contexts = self._adopt(None)

    # --- snapshots ------------------------------------------------------------------------

    def _adopt(self, snapshot: EdgeConfig | None) -> ContextCache:
        """Contexts for a snapshot: a new cache only when the set of zones (certificate) changes."""
        names = self.identity.names_for(snapshot)
        if names != self._names:
            self._names = names
            self._contexts = ContextCache(
                self.identity.configurer(names),
                num_tickets=self.settings.num_tickets,
                max_chain_depth=self.settings.max_chain_depth,
            )
            self._contexts.plain.sni_callback = self._on_sni
        if snapshot is not None:
            self._contexts.update(snapshot)
        return self._contexts

    def apply_snapshot(self, snapshot: EdgeConfig) -> None:
        """Switch to a newer snapshot at once; an older or equal version is ignored."""
        if self.snapshot is not None and snapshot.version <= self.snapshot.version:
            return
        self._adopt(snapshot)
        self.policy.prepare(snapshot)
        self.snapshot = snapshot

    def forget(self) -> None:
        """Drop the current snapshot, as a restarted node starts without one."""
        self.snapshot = None
        self._adopt(None)

    async def follow(self, snapshots: trio.MemoryReceiveChannel[EdgeConfig]) -> None:
        async with snapshots:
            async for snapshot in snapshots:
                self.apply_snapshot(snapshot)

    # --- serving --------------------------------------------------------------------------

    async def serve(self, listener, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Accept connections until cancelled; each runs in this node's own nursery."""
        async with trio.open_nursery() as connections:
            task_status.started()
            while True:
                accepted = await listener.accept()
                connections.start_soon(self.handle, accepted)

    async def handle(self, accepted: Accepted) -> None:
        """One connection from handshake to close; always exactly one connection event."""
        state = _Connection(accepted.conn_id, self.snapshot, self._contexts)
        channel = TlsChannel.wrap(accepted.stream, state.contexts.plain, server_side=True)
        channel.ssl_object.edge_connection = state  # read back by the SNI callback
        openssl.track(channel.ssl_object, at_time=self._clock())
        started_at, started = self._clock(), trio.current_time()
        outcome, error, verdict, requests = TlsOutcome.INTERNAL, "", None, 0
        try:
            outcome, error = await self._handshake(channel)
            handshake_seconds = trio.current_time() - started
            if outcome is TlsOutcome.OK:
                verdict = self._verdict(state, channel.ssl_object)
                requests = await self._serve_http(state, channel, verdict)
        except Exception as exc:  # noqa: BLE001 - accounted for as INTERNAL, never lost
            outcome, error = TlsOutcome.INTERNAL, f"{type(exc).__name__}: {exc}"
            handshake_seconds = trio.current_time() - started
        finally:
            with trio.CancelScope(shield=True):
                await channel.aclose()
        await self._events.send(
            ConnectionEvent(
                conn_id=state.conn_id,
                node=self.name,
                snapshot_version=_version(state.snapshot),
                at=started_at,
                sni=state.sni,
                outcome=outcome,
                verdict=verdict,
                handshake_seconds=handshake_seconds,
                requests=requests,
                error=error or state.error,
            )
        )

    async def _handshake(self, channel: TlsChannel) -> tuple[TlsOutcome, str]:
        try:
            with trio.fail_after(self.settings.handshake_timeout):
                await channel.handshake()
        except trio.TooSlowError:
            return TlsOutcome.TIMEOUT, "handshake timed out"
        except (TlsClosed, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            return TlsOutcome.CLIENT_CLOSED, str(exc) or type(exc).__name__
        except ssl.SSLError as exc:
            return TlsOutcome.HANDSHAKE_FAILED, exc.reason or str(exc)
        return TlsOutcome.OK, ""

    def _on_sni(self, ssl_object: ssl.SSLObject, server_name: str | None, _context) -> None:
        """Choose the trust set by SNI: swap in the pre-built context of the hostname's CAs."""
        state: _Connection = ssl_object.edge_connection
        try:
            state.sni = server_name
            if state.snapshot is None or server_name is None:
                return None
            state.policy = state.snapshot.host(server_name)
            if state.policy is not None:
                ssl_object.context = state.contexts.for_trust(state.policy.trust)
                openssl.sync_verify_with_context(ssl_object)
        except Exception as exc:  # noqa: BLE001 - an exception here would abort the handshake
            state.error = f"SNI callback: {type(exc).__name__}: {exc}"
        return None

    def _verdict(self, state: _Connection, ssl_object: ssl.SSLObject) -> verdicts.Verdict:
        snapshot = state.snapshot
        if snapshot is None or (state.sni and snapshot.zone_for(state.sni) is None):
            return verdicts.POLICY_MISSING
        if state.policy is None:
            return verdicts.NOT_REQUESTED
        peer = openssl.peer_verification(ssl_object)
        first = peer.verdict
        return verdicts.decide(
            state.policy,
            snapshot,
            leaf_der=peer.leaf_der,
            sent_chain=peer.chain_der,
            built_chain=peer.verified_chain_der,
            openssl_code=first.code if first else 0,
            openssl_message=first.message if first else "ok",
            depth=first.depth if first else -1,
        )

    # --- HTTP -----------------------------------------------------------------------------

    async def _serve_http(
        self, state: _Connection, channel: TlsChannel, verdict: verdicts.Verdict
    ) -> int:
        """Answer requests until the client closes or the connection must close; count them."""
        conn = h11.Connection(
            h11.SERVER, max_incomplete_event_size=self.settings.max_request_bytes
        )
        served = 0
        while True:
            try:
                with trio.move_on_after(self.settings.idle_timeout):
                    request, body = await self._next_request(conn, channel)
                    if request is None:
                        return served
                    await self._answer(state, channel, conn, verdict, request, body)
                    served += 1
                    if conn.our_state is h11.MUST_CLOSE:
                        return served
                    conn.start_next_cycle()
                    continue
                return served  # idle too long
            except (h11.RemoteProtocolError, _RequestTooLarge) as exc:
                await self._refuse(state, channel, conn, verdict, exc)
                return served + 1

    async def _next_request(
        self, conn: h11.Connection, channel: TlsChannel
    ) -> tuple[h11.Request | None, bytes]:
        request, body = None, bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await channel.receive_some()
                conn.receive_data(data)
                if not data and conn.their_state is h11.IDLE:
                    return None, b""
                continue
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > self.settings.max_body_bytes:
                    raise _RequestTooLarge("request body too large")
            elif isinstance(event, h11.EndOfMessage):
                return request, bytes(body)
            elif isinstance(event, h11.ConnectionClosed):
                return None, b""

    async def _answer(self, state, channel, conn, verdict, request: h11.Request, body: bytes):
        facts = self._facts(state, channel, verdict, request)
        if self._misdirected(state, facts):
            status, payload = 421, b"misdirected request: Host does not match the TLS SNI\n"
            decided = PolicyDecision(Decision.MISDIRECTED, False)
        else:
            decided = self.policy.decide(facts)
            status, payload = decided.status, b'{"error": "client certificate required"}\n'
        if status is None:
            client_headers = tuple(
                (k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers
            )
            options = facts.zone.settings.forwarding if facts.zone else NO_FORWARDING
            headers = forwarding.origin_headers(client_headers, verdict, options)
            status, payload = self.origin.handle(
                OriginRequest(state.conn_id, facts.method, facts.target, headers, body)
            )
        await _respond(channel, conn, status, payload)
        await self._emit_request(state, verdict, facts, status, decided.decision,
                                 decided.would_block, decided.matched)

    def _facts(self, state, channel, verdict, request: h11.Request) -> RequestFacts:
        host = _host_of(request)
        target = request.target.decode("latin-1")
        snapshot = state.snapshot
        return RequestFacts(
            verdict=verdict,
            sni=state.sni,
            host=host,
            method=request.method.decode("ascii", "replace"),
            path=target.split("?", 1)[0],
            target=target,
            zone=None if snapshot is None or not host else snapshot.zone_for(host),
            tls_version=channel.ssl_object.version() or "",
            client_ip=state.client_ip,
        )

    @staticmethod
    def _misdirected(state, facts: RequestFacts) -> bool:
        """Strict SNI/Host: the Host is another mTLS hostname than the one TLS was set up for."""
        if facts.zone is None or not facts.zone.settings.strict_sni_host:
            return False
        if facts.host == (state.sni or "").lower():
            return False
        return state.snapshot.host(facts.host) is not None

    async def _refuse(self, state, channel, conn, verdict, exc) -> None:
        status = getattr(exc, "error_status_hint", 413)
        if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            try:
                await _respond(channel, conn, status, b"bad request\n")
            except (h11.LocalProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
                pass
        facts = RequestFacts(verdict, state.sni, "", "", "", client_ip=state.client_ip)
        await self._emit_request(state, verdict, facts, status, Decision.BAD_REQUEST, False, ())

    async def _emit_request(self, state, verdict, facts, status, decision, would_block, matched):
        await self._events.send(
            RequestEvent(
                conn_id=state.conn_id,
                node=self.name,
                snapshot_version=_version(state.snapshot),
                at=self._clock(),
                sni=state.sni,
                host=facts.host,
                method=facts.method,
                path=facts.path,
                status=status,
                decision=decision,
                would_block=would_block,
                reason=verdict.reason.value,
                sni_host_mismatch=bool(facts.host and state.sni and facts.host != state.sni),
                matched=matched,
            )
        )


async def _respond(channel: TlsChannel, conn: h11.Connection, status: int, body: bytes) -> None:
    headers = [("content-length", str(len(body))), ("content-type", "text/plain")]
    data = conn.send(h11.Response(status_code=status, headers=headers))
    data += conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
    await channel.send_all(data)


def _host_of(request: h11.Request) -> str:
    for name, value in request.headers:
        if name == b"host":
            return value.decode("latin-1").rsplit(":", 1)[0].lower()
    return ""


def _client_ip(conn_id: str) -> str:
    """The peer address for `ip.src`: from a TCP connection id; the in-memory network has none,
    so simulated clients come from a documentation address (RFC 5737)."""
    if conn_id.startswith("tcp:"):
        return conn_id[4:].rsplit(":", 1)[0]
    return "192.0.2.1"


def _version(snapshot: EdgeConfig | None) -> int:
    return -1 if snapshot is None else snapshot.version
