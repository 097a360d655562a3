"""Verification events: one per connection, one per request, joined by the connection id.

Frozen records that edge nodes send to the collector. Each carries the node, the snapshot
version the decision was made under, and the simulated time.
"""

from __future__ import annotations

import datetime as dt
import enum

import attrs

from edge.node.verdict import Verdict
from edge.pki import formats


class TlsOutcome(str, enum.Enum):
    """How a connection's TLS went, as both the edge and the client can tell."""

    OK = "ok"
    HANDSHAKE_FAILED = "handshake_failed"  # a TLS error: garbage, no shared cipher, an alert
    TIMEOUT = "timeout"  # the handshake did not finish in time
    CLIENT_CLOSED = "client_closed"  # the peer went away mid-handshake
    INTERNAL = "internal"  # the edge itself failed; never silent
    STOPPED = "stopped"  # the edge shut down before the handshake finished


class Decision(str, enum.Enum):
    ALLOW = "allow"  # went to the origin, no rule matched
    LOG = "log"  # went to the origin, a log rule matched
    BLOCK = "block"  # answered 403 at the edge
    SKIP = "skip"  # a skip rule ended evaluation; went to the origin
    BAD_REQUEST = "bad_request"  # malformed or oversized HTTP: answered 4xx, connection closed
    MISDIRECTED = "misdirected"  # a Host this node must not serve on this connection: 421
    UNAVAILABLE = "unavailable"  # the node has no configuration yet: 503


@attrs.frozen
class ConnectionEvent:
    conn_id: str
    node: str
    snapshot_version: int  # -1 when the node had no snapshot yet
    at: dt.datetime
    sni: str | None
    outcome: TlsOutcome
    verdict: Verdict | None  # None when the handshake did not get that far
    handshake_seconds: float
    requests: int = 0
    error: str = ""
    kind: str = "connection"

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "conn_id": self.conn_id,
            "node": self.node,
            "snapshot_version": self.snapshot_version,
            "at": formats.rfc3339(self.at, micro=True),
            "sni": self.sni,
            "outcome": self.outcome.value,
            "verdict": None if self.verdict is None else self.verdict.summary(),
            "handshake_seconds": self.handshake_seconds,
            "requests": self.requests,
            "error": self.error,
        }


@attrs.frozen
class RequestEvent:
    conn_id: str
    node: str
    snapshot_version: int
    at: dt.datetime
    sni: str | None
    host: str
    method: str
    path: str
    status: int
    decision: Decision
    would_block: bool  # the decision if every log rule were a block rule
    reason: str  # the connection verdict's reason
    sni_host_mismatch: bool = False
    matched: tuple[str, ...] = ()
    kind: str = "request"

    def to_json(self) -> dict:
        data = attrs.asdict(self, recurse=False)
        data["at"] = formats.rfc3339(self.at, micro=True)
        data["decision"] = self.decision.value
        data["matched"] = list(self.matched)
        return data


Event = ConnectionEvent | RequestEvent
