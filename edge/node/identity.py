"""The edge's own server identity: a local server CA and the certificates edge nodes present.

Clients trust the server CA (`configure_trust`); a node presents one certificate covering every
zone of its snapshot (the zone name and its wildcard), re-issued only when the set of zones
changes.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Callable

import trustme

from edge.control.snapshot import EdgeConfig

NO_ZONES = ("edge.invalid",)


class EdgeIdentity:
    def __init__(self, ca: trustme.CA | None = None) -> None:
        self.ca = ca or trustme.CA(organization_name="edge simulator server CA")

    @staticmethod
    def names_for(snapshot: EdgeConfig | None) -> tuple[str, ...]:
        if snapshot is None or not snapshot.zones:
            return NO_ZONES
        return tuple(sorted(n for zone in snapshot.zones for n in (zone, "*." + zone)))

    @functools.lru_cache(maxsize=8)
    def configurer(self, names: tuple[str, ...]) -> Callable[[ssl.SSLContext], None]:
        """What loads a certificate for these names into a server context."""
        return self.ca.issue_cert(*names).configure_cert

    def configure_trust(self, context: ssl.SSLContext) -> None:
        """Make a client context trust the edge's server certificates."""
        self.ca.configure_trust(context)
