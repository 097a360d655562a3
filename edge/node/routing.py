"""Which requests an edge node answers itself before any rule runs. Pure.

Trust was chosen by the TLS SNI; a request names its site in the Host header. A node answers
503 while it has no configuration at all (it cannot know whether a hostname enforces, so it
fails closed), 421 for a Host no zone of its snapshot serves, and 421 for domain fronting: a
Host of another account than the SNI's, or, with a zone's `strict_sni_host`, another mTLS
hostname than the SNI. Otherwise, as at Cloudflare, the Host's zone rules decide, and the
request event flags any SNI/Host difference.
"""

from __future__ import annotations

import attrs

from edge.control.snapshot import EdgeConfig, ZoneConfig
from edge.events import Decision
from edge.node.reasons import Reason


@attrs.frozen
class Refusal:
    status: int
    decision: Decision
    reason: Reason
    message: bytes


NO_CONFIGURATION = Refusal(
    503, Decision.UNAVAILABLE, Reason.POLICY_MISSING,
    b"this edge node has no configuration yet\n",
)
NO_HOST = Refusal(400, Decision.BAD_REQUEST, Reason.POLICY_MISSING, b"missing Host header\n")
UNKNOWN_HOST = Refusal(
    421, Decision.MISDIRECTED, Reason.POLICY_MISSING, b"no zone on this edge serves this Host\n"
)
FRONTING = Refusal(
    421, Decision.MISDIRECTED, Reason.SNI_HOST_MISMATCH,
    b"misdirected request: the Host belongs to another account than the TLS SNI\n",
)
STRICT = Refusal(
    421, Decision.MISDIRECTED, Reason.SNI_HOST_MISMATCH,
    b"misdirected request: Host is another mTLS hostname than the TLS SNI\n",
)


def normalise_host(raw: str) -> str:
    """Lower case, no port, no trailing dot: `API.example.com.:443` -> `api.example.com`."""
    host = raw.strip().lower()
    if host.startswith("["):  # an IPv6 literal keeps its colons
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0].rstrip(".") if ":" in host else host.rstrip(".")


def refusal(
    snapshot: EdgeConfig | None, sni: str | None, host: str, zone: ZoneConfig | None
) -> Refusal | None:
    """The edge's own answer to a request, or None to let the zone's rules decide."""
    if snapshot is None:
        return NO_CONFIGURATION
    if not host:
        return NO_HOST
    if zone is None:
        return UNKNOWN_HOST
    if sni is None or normalise_host(sni) == host:
        return None
    sni_zone = snapshot.zone_for(sni)
    if sni_zone is None or sni_zone.account_id != zone.account_id:
        return FRONTING
    if zone.settings.strict_sni_host and snapshot.host(host) is not None:
        return STRICT
    return None
