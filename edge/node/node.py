"""The EdgeNode task: a point of presence terminating mutual TLS and answering HTTP.

Thin Trio shell over the pure parts: it follows the control plane's snapshots, accepts
connections from a listener, runs each one as a task in its own nursery, asks the verdict and
policy modules what to do, and sends one event per connection and per request to the collector.
A connection lives under the snapshot it started with, even if a newer one arrives meanwhile.
"""

from __future__ import annotations

import collections
import datetime as dt
import ssl
from collections.abc import Callable
from functools import partial

import attrs
import trio

from edge import http
from edge.control.snapshot import EdgeConfig, HostPolicy
from edge.events import ConnectionEvent, Decision, Event, RequestEvent, TlsOutcome
from edge.net import Accepted
from edge.node import verdict as verdicts
from edge.node.identity import EdgeIdentity
from edge.node.origin import Origin, OriginRequest
from edge.node import forwarding, routing
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
    stop_grace: float = 5.0  # seconds connections in flight get once the node stops accepting


class _Connection:
    """Per-connection state the SNI callback fills in."""

    __slots__ = ("conn_id", "client_ip", "snapshot", "contexts", "started_at", "sni", "policy",
                 "error", "requests")

    def __init__(self, conn_id: str, snapshot: EdgeConfig | None, contexts: ContextCache,
                 started_at: dt.datetime) -> None:
        self.conn_id = conn_id
        self.started_at = started_at
        self.client_ip = _client_ip(conn_id)
        self.snapshot = snapshot
        self.contexts = contexts
        self.sni: str | None = None
        self.policy: HostPolicy | None = None
        self.error = ""
        self.requests = 0  # answered so far: still counted if the connection is cut short


TEXT, JSON = "text/plain", "application/json"
BLOCKED_ANSWER = b'{"error": "client certificate required"}\n'
EMIT_TIMEOUT = 60.0  # seconds a cancelled connection waits for room at a stalled collector


SESSION_VERDICTS = 4096


class _Bounded:
    """A small LRU map: the oldest entry goes when it is full."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: collections.OrderedDict = collections.OrderedDict()

    def get(self, key):
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key, value) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        if len(self._items) > self._size:
            self._items.popitem(last=False)


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
        # With tickets on: the verdict of each certificate's full handshake, per trust set, for
        # the sessions that resume it (OpenSSL does not verify a resumed session again).
        self._sessions = _Bounded(SESSION_VERDICTS)
        self._names: tuple[str, ...] | None = None
        self._contexts = self._adopt(None)
        # What a graceful stop reaches: accept loops, connection nurseries, and kept-alive
        # connections waiting for their next request.
        self._accepting: set[trio.CancelScope] = set()
        self._serving: set[trio.CancelScope] = set()
        self._idle: set[trio.CancelScope] = set()
        self._stop_at: float | None = None  # trio time by which every connection is ended
        self.dropped = 0  # events the collector was not there (or too stuck) to take

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
        """Take connections from the listener (`hand_over`), each in this node's own nursery,
        until cancelled or `stop()`ped: then the listener closes and the connections wind down
        (see `stop`)."""
        accepting = trio.CancelScope()
        try:
            async with trio.open_nursery() as connections:
                self._serving.add(connections.cancel_scope)
                self._accepting.add(accepting)
                self._hurry()
                with accepting:
                    task_status.started()
                    await listener.hand_over(partial(connections.start_soon, self.handle))
                await listener.aclose()
        finally:
            self._accepting.discard(accepting)
            self._serving.discard(connections.cancel_scope)

    def stop(self, grace: float | None = None) -> None:
        """Stop gracefully: no new connections; kept-alive connections waiting for a request
        close at once (one whose next request has already arrived gets it answered), answers
        carry `Connection: close`, and what is still in flight after
        `grace` seconds (`settings.stop_grace` by default) is cancelled, each connection still
        sending its events. Called again with a shorter grace, it hurries the stop."""
        deadline = trio.current_time() + (self.settings.stop_grace if grace is None else grace)
        self._stop_at = deadline if self._stop_at is None else min(self._stop_at, deadline)
        self._hurry()

    @property
    def stopping(self) -> bool:
        return self._stop_at is not None

    def _hurry(self) -> None:
        if self._stop_at is None:
            return
        for scope in (*self._accepting, *self._idle):
            scope.cancel()
        for scope in self._serving:
            scope.deadline = min(scope.deadline, self._stop_at)

    async def handle(self, accepted: Accepted) -> None:
        """One connection from handshake to close; always exactly one connection event, even
        when the connection is cancelled because the edge stops."""
        state, channel = self._open(accepted)
        started = trio.current_time()
        outcome, error, verdict = TlsOutcome.INTERNAL, "", None
        handshake_seconds = 0.0
        try:
            outcome, error = await self._handshake(channel)
            handshake_seconds = trio.current_time() - started
            if outcome is TlsOutcome.OK:
                verdict = self._verdict(state, channel.ssl_object)
                await self._serve_http(state, channel, verdict)
        except Exception as exc:  # noqa: BLE001 - accounted for as INTERNAL, never lost
            outcome, error = TlsOutcome.INTERNAL, f"{type(exc).__name__}: {exc}"
        except trio.Cancelled:
            if verdict is None:
                outcome = TlsOutcome.STOPPED
            error = error or "the edge stopped during this connection"
            raise
        finally:
            await channel.aclose()
            await self._emit(self._connection_event(state, outcome, verdict, handshake_seconds,
                                                    error))

    def _open(self, accepted: Accepted) -> tuple[_Connection, TlsChannel]:
        """A new connection's state and its server side of TLS, under the current snapshot,
        validating at the (simulated) time it starts."""
        state = _Connection(accepted.conn_id, self.snapshot, self._contexts, self._clock())
        channel = TlsChannel.wrap(accepted.stream, state.contexts.plain, server_side=True)
        channel.ssl_object.edge_connection = state  # read back by the SNI callback
        openssl.track(channel.ssl_object, at_time=state.started_at)
        return state, channel

    def _connection_event(self, state: _Connection, outcome: TlsOutcome, verdict,
                          handshake_seconds: float, error: str) -> ConnectionEvent:
        return ConnectionEvent(
            conn_id=state.conn_id,
            node=self.name,
            snapshot_version=_version(state.snapshot),
            at=state.started_at,
            sni=state.sni,
            outcome=outcome,
            verdict=verdict,
            handshake_seconds=handshake_seconds,
            requests=state.requests,
            error=error or state.error,
        )

    async def _handshake(self, channel: TlsChannel) -> tuple[TlsOutcome, str]:
        """The handshake's outcome. Timed with `move_on_after` (one falls out of the block only
        when the timeout struck): `fail_after` is a generator context manager, dearer per
        connection."""
        with trio.move_on_after(self.settings.handshake_timeout):
            try:
                await channel.handshake()
            except (TlsClosed, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                return TlsOutcome.CLIENT_CLOSED, str(exc) or type(exc).__name__
            except ssl.SSLError as exc:
                return TlsOutcome.HANDSHAKE_FAILED, exc.reason or str(exc)
            return TlsOutcome.OK, ""
        return TlsOutcome.TIMEOUT, "handshake timed out"

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
        if ssl_object.session_reused:
            leaf = ssl_object.getpeercert(binary_form=True)
            known = self._sessions.get((leaf, state.policy.trust.key)) if leaf else None
            if known is not None:
                verdict, anchor = known
                return verdicts.resumed(verdict, state.policy, snapshot, leaf, anchor)
        verdict, anchor = self._full_verdict(state, ssl_object)
        if self.settings.num_tickets and verdict.presented:
            self._sessions.put((ssl_object.getpeercert(binary_form=True), state.policy.trust.key),
                               (verdict, anchor))
        return verdict

    def _full_verdict(self, state: _Connection, ssl_object: ssl.SSLObject):
        """The verdict, and the fingerprint of the anchor it verified to (for resumptions)."""
        peer = openssl.peer_verification(ssl_object)
        first = peer.verdict
        built = peer.verified_chain_der
        anchor = verdicts.anchor_fingerprint(built) if built else None
        return verdicts.decide(
            state.policy,
            state.snapshot,
            leaf_der=peer.leaf_der,
            sent_chain=peer.chain_der,
            built_chain=peer.verified_chain_der,
            openssl_code=first.code if first else 0,
            openssl_message=first.message if first else "ok",
            depth=first.depth if first else -1,
        ), anchor

    # --- HTTP -----------------------------------------------------------------------------

    async def _serve_http(
        self, state: _Connection, channel: TlsChannel, verdict: verdicts.Verdict
    ) -> None:
        """Answer requests (counted in `state.requests`) until the client closes, idles out or
        the connection must close.

        Only the wait for a request is timed: answering and its event (which waits for the
        collector when it is slow) are never cut short.
        """
        reader = http.RequestReader(
            max_head=self.settings.max_request_bytes, max_body=self.settings.max_body_bytes
        )
        while True:
            try:
                request = await self._wait_for_request(reader, channel, state.requests)
                if request is None:
                    return
                close = self.stopping or not request.keep_alive
                await self._answer(state, channel, verdict, request, close)
                state.requests += 1  # with its request event sent
            except http.BadRequest as exc:
                await self._refuse(state, channel, verdict, exc)
                state.requests += 1
                return
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return  # the client left mid-response: its requests still count
            except ssl.SSLError as exc:  # a record that does not decrypt: the client's doing
                state.error = f"TLS error after the handshake: {exc.reason or exc}"
                return
            if close:
                return

    async def _wait_for_request(self, reader: http.RequestReader, channel: TlsChannel,
                                answered: int) -> http.Request | None:
        """The next request, or None when the client closes or idles out. After the first
        request the connection is merely kept alive: a stopping node closes it. A request
        already here needs no timer (the first usually comes with the client's Finished)."""
        request = _request_at_hand(reader, channel)
        if request is not None or reader.ended:
            return request
        with trio.move_on_after(self.settings.idle_timeout) as waiting:
            if not answered:
                return await _next_request(reader, channel)
            self._idle.add(waiting)
            try:
                if self.stopping:
                    waiting.cancel()
                return await _next_request(reader, channel)
            finally:
                self._idle.discard(waiting)
        return None

    async def _answer(self, state, channel, verdict, request: http.Request, close: bool):
        answer, event = self._decide(state, channel.ssl_object, verdict, request, close)
        await channel.send_all(answer)
        await self._emit(event)

    def _decide(self, state, ssl_object, verdict, request: http.Request,
                close: bool) -> tuple[bytes, RequestEvent]:
        """The answer's bytes and the request's event: everything the node decides about a
        request (routing, rules, origin), with no I/O."""
        facts = self._facts(state, ssl_object, verdict, request)
        refused = routing.refusal(state.snapshot, state.sni, facts.host, facts.zone)
        if refused is not None:
            status, payload, kind = refused.status, refused.message, TEXT
            decided, reason = PolicyDecision(refused.decision, False), refused.reason
        else:
            decided, reason = self.policy.decide(facts), verdict.reason
            status, payload, kind = decided.status, BLOCKED_ANSWER, JSON
        if status is None:
            headers = forwarding.origin_headers(
                request.headers, verdict, facts.zone.settings.forwarding
            )
            status, payload = self.origin.handle(
                OriginRequest(state.conn_id, facts.method, facts.target, headers, request.body)
            )
            kind = self.origin.content_type
        head = request.method == "HEAD"
        answer = http.response(status, payload, kind, close=close, head=head)
        return answer, self._request_event(state, facts, status, decided, reason)

    def _facts(self, state, ssl_object, verdict, request: http.Request) -> RequestFacts:
        host = routing.normalise_host(request.header("host"))
        snapshot = state.snapshot
        return RequestFacts(
            verdict=verdict,
            sni=state.sni,
            host=host,
            method=request.method,
            path=request.target.split("?", 1)[0],
            target=request.target,
            zone=None if snapshot is None or not host else snapshot.zone_for(host),
            tls_version=ssl_object.version() or "",
            client_ip=state.client_ip,
        )

    async def _refuse(self, state, channel, verdict, exc: http.BadRequest) -> None:
        try:
            await channel.send_all(http.response(exc.status, b"bad request\n", TEXT, close=True))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        facts = RequestFacts(verdict, state.sni, "", "", "", client_ip=state.client_ip)
        decided = PolicyDecision(Decision.BAD_REQUEST, False)
        await self._emit(self._request_event(state, facts, exc.status, decided, verdict.reason))

    def _request_event(self, state, facts: RequestFacts, status: int, decided,
                       reason) -> RequestEvent:
        sni = routing.normalise_host(state.sni) if state.sni else None
        return RequestEvent(
            conn_id=state.conn_id,
            node=self.name,
            snapshot_version=_version(state.snapshot),
            at=self._clock(),
            sni=state.sni,
            host=facts.host,
            method=facts.method,
            path=facts.path,
            status=status,
            decision=decided.decision,
            would_block=decided.would_block,
            reason=reason.value,
            sni_host_mismatch=bool(facts.host and sni and facts.host != sni),
            matched=decided.matched,
        )

    async def _emit(self, event: Event) -> None:
        """Hand an event to the collector: at once while its buffer has room, else wait for
        room, so a slow collector slows the node (backpressure).

        Never a cancel point, and the wait is shielded (for up to EMIT_TIMEOUT): a connection
        cancelled because the edge stops still accounts for itself. Only a collector that is
        gone (its channel closed) or stuck leaves an event untaken: counted in `dropped`.
        """
        try:
            try:
                self._events.send_nowait(event)
                return
            except trio.WouldBlock:
                with trio.move_on_after(EMIT_TIMEOUT) as waiting:
                    waiting.shield = True
                    await self._events.send(event)
                    return
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        self.dropped += 1  # said at the end: `edge serve` never claims every event was written


def _request_at_hand(reader: http.RequestReader, channel: TlsChannel) -> http.Request | None:
    """The next request if it is parsed or decrypted already; None also at the end."""
    while (request := reader.next_request()) is None and not reader.ended:
        data = channel.receive_nowait()
        if data is None:
            return None
        reader.receive(data)
    return request


async def _next_request(reader: http.RequestReader, channel: TlsChannel) -> http.Request | None:
    """The next request once `_request_at_hand` found none, waiting for the client's bytes as
    long as it takes; None at the end."""
    while True:
        reader.receive(await channel.receive_some())
        if (request := _request_at_hand(reader, channel)) is not None or reader.ended:
            return request


def _client_ip(conn_id: str) -> str:
    """The peer address for `ip.src`: from a TCP connection id; the in-memory network has none,
    so simulated clients come from a documentation address (RFC 5737)."""
    if conn_id.startswith("tcp:"):
        return conn_id[4:].rsplit(":", 1)[0]
    return "192.0.2.1"


def _version(snapshot: EdgeConfig | None) -> int:
    return -1 if snapshot is None else snapshot.version
