"""A deployment: one control plane, N edge nodes and a collector, wired on one network.

What the scenario runner, the benchmarks and the tests all need to stand up an edge: every task
runs in the caller's nursery, every node follows the plane through its own `Link`, and every
event reaches the collector. Simulated time is `start + trio.current_time()`, so under
`trio.testing.MockClock` the whole deployment lives on a virtual clock.
"""

from __future__ import annotations

import datetime as dt
from typing import IO

import trio

from edge.collector import DEFAULT_BUFFER, Collector
from edge.control.plane import ControlPlane, Link
from edge.control.store import Settings, new_store
from edge.net import MemoryNetwork
from edge.node.identity import EdgeIdentity
from edge.node.node import EdgeNode, NodeSettings
from edge.node.origin import Origin
from edge.node.policy import Policy


class Deployment:
    def __init__(
        self,
        *,
        start: dt.datetime,
        settings: Settings = Settings(),
        identity: EdgeIdentity | None = None,
        collector: Collector | None = None,
        jsonl: IO[str] | None = None,
    ) -> None:
        self.start = start
        self.identity = identity or EdgeIdentity()
        self.network = MemoryNetwork()
        self.plane = ControlPlane(new_store(settings, now=start), now=self.now)
        self.collector = collector or Collector(buffer=DEFAULT_BUFFER, jsonl=jsonl)
        self.nodes: dict[str, EdgeNode] = {}
        self.links: dict[str, Link] = {}
        self._follow_scopes: dict[str, trio.CancelScope] = {}
        self._nursery: trio.Nursery | None = None

    def now(self) -> dt.datetime:
        """Simulated time: the start plus the Trio clock's reading."""
        return self.start + dt.timedelta(seconds=trio.current_time())

    async def start_in(self, nursery: trio.Nursery) -> None:
        """Start the plane and the collector; nodes are added with `add_node`."""
        self._nursery = nursery
        await nursery.start(self.plane.run)
        nursery.start_soon(self.collector.run)

    async def add_node(
        self,
        name: str,
        *,
        link: Link | None = None,
        policy: Policy | None = None,
        origin: Origin | None = None,
        settings: NodeSettings = NodeSettings(),
    ) -> EdgeNode:
        """A node listening at `name`, following the plane through `link`."""
        if self._nursery is None:
            raise RuntimeError("start_in(nursery) first")
        node = EdgeNode(
            name,
            identity=self.identity,
            events=self.collector.sender(),
            clock=self.now,
            policy=policy,
            origin=origin,
            settings=settings,
        )
        self.links[name] = link = link or Link()
        self.nodes[name] = node
        self._follow(name)
        await self._nursery.start(node.serve, self.network.listen(name))
        return node

    def _follow(self, name: str) -> None:
        """The node's subscription, in a cancel scope of its own so a restart can end it."""
        scope = self._follow_scopes[name] = trio.CancelScope()
        snapshots = self.plane.subscribe(self.links[name])

        async def follow() -> None:
            with scope:
                await self.nodes[name].follow(snapshots)

        self._nursery.start_soon(follow)

    def restart_node(self, name: str) -> None:
        """The node forgets its configuration and fetches it again, as a restarted process
        would; connections in flight finish, new ones see POLICY_MISSING until it arrives."""
        self._follow_scopes[name].cancel()
        self.nodes[name].forget()
        self._follow(name)

    async def settle(self) -> None:
        """Let every node catch up with the plane's newest snapshot (links permitting)."""
        target = self.plane.store.version
        while any(
            node.snapshot is None or node.snapshot.version < target
            for name, node in self.nodes.items()
            if not self.links[name].is_cut
        ):
            await trio.sleep(0.001)
