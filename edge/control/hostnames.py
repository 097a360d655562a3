"""Which zone holds a hostname: the most specific zone whose name is the hostname or a suffix.

The store uses it to accept an association, snapshots to route a connection; one rule for both,
so the control plane and the edge can never disagree about which zone a hostname is in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

T = TypeVar("T")


def most_specific(hostname: str, by_zone_name: Mapping[str, T]) -> T | None:
    """The value of the longest zone name that is `hostname` or ends it at a dot."""
    labels = hostname.lower().split(".")
    for start in range(len(labels) - 1):
        found = by_zone_name.get(".".join(labels[start:]))
        if found is not None:
            return found
    return None
