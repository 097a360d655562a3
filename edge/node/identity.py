"""The edge's own server identity: a local server CA and the certificates edge nodes present.

Clients trust the server CA (`configure_trust`); a node presents one certificate covering the
identity's own names and every zone of its snapshot (the zone name and its wildcard), re-issued
only when that set of names changes.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Callable

import trustme

from edge.control.snapshot import EdgeConfig

NO_ZONES = ("edge.invalid",)


class EdgeIdentity:
    """`names` are always covered, even before a node has a snapshot (a real edge's certificates
    do not wait for the mTLS configuration); a snapshot's zones are added to them."""

    def __init__(self, ca: trustme.CA | None = None, *, names: tuple[str, ...] = ()) -> None:
        self.ca = ca or trustme.CA(organization_name="edge simulator server CA")
        self.names = tuple(names)

    def names_for(self, snapshot: EdgeConfig | None) -> tuple[str, ...]:
        zones = () if snapshot is None else tuple(snapshot.zones)
        names = {*self.names, *(n for zone in zones for n in (zone, "*." + zone))}
        return tuple(sorted(names)) or NO_ZONES

    @functools.lru_cache(maxsize=8)
    def configurer(self, names: tuple[str, ...]) -> Callable[[ssl.SSLContext], None]:
        """What loads a certificate for these names into a server context."""
        return self.ca.issue_cert(*names).configure_cert

    def configure_trust(self, context: ssl.SSLContext) -> None:
        """Make a client context trust the edge's server certificates."""
        self.ca.configure_trust(context)
