"""Run a scenario: one Trio nursery on a virtual clock, hours of simulated rollout in seconds.

The runner is the thin shell around the pure parts: it sets the tenants up through the control
plane, starts the nodes (each behind a seeded propagation delay), plays the timeline, runs every
fleet's clients, and hands the tally to the report. The same file and seed give the same totals.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import attrs
import trio
import trio.testing

from edge.clients import ClientResult, client_context, visit
from edge.control.errors import ApiError
from edge.control.plane import Link
from edge.control.store import Settings
from edge.deployment import Deployment
from edge.node.identity import EdgeIdentity
from edge.node.node import NodeSettings
from edge.pki.issuer import Credential
from edge.scenario import model as m
from edge.scenario.model import FIRST_PHASE
from edge.scenario.pki import Ca, build_cas, fleet_credential
from edge.scenario.tally import Tally
from edge.scenario.tenancy import CONTROL_ACTIONS, Tenancy

DRAIN_TIMEOUT = 600.0  # simulated seconds; far beyond any node's handshake and idle timeouts


def _first(group: BaseExceptionGroup) -> BaseException:
    leaf = group
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    return leaf


class ScenarioFailed(Exception):
    """The run stopped early: a refused action with `fail_on_rejected_action`."""


@attrs.frozen
class RejectedAction:
    index: int
    at: dt.timedelta
    action: str
    code: int
    message: str


@attrs.define
class RunResult:
    scenario: m.Scenario
    seed: int
    tally: Tally
    phases: list[tuple[str, dt.timedelta]]
    rejected: list[RejectedAction]
    client_outcomes: dict[str, dict[str, int]]  # fleet -> TLS outcome as the clients saw it
    real_seconds: float = 0.0


class Runner:
    def __init__(
        self,
        scenario: m.Scenario,
        base: Path,
        *,
        seed: int | None = None,
        events: IO[str] | None = None,
        progress: Callable[[dt.timedelta, int], None] | None = None,
    ) -> None:
        self.scenario = scenario
        self.base = base
        self.seed = scenario.meta.seed if seed is None else seed
        self.progress = progress
        duration = scenario.meta.duration.total_seconds()
        self.tally = Tally(jsonl=events, bucket_seconds=max(duration / 120, 1.0))
        self.tally.start = scenario.meta.start
        self.phase = FIRST_PHASE
        self.phases: list[tuple[str, dt.timedelta]] = [(FIRST_PHASE, dt.timedelta(0))]
        self.rejected: list[RejectedAction] = []
        self.client_outcomes: dict[str, dict[str, int]] = {f.name: {} for f in scenario.fleets}
        self.tenancy: Tenancy | None = None

    # --- entry point ----------------------------------------------------------------------

    def run(self) -> RunResult:
        started = time.perf_counter()
        try:
            trio.run(self._main, clock=trio.testing.MockClock(autojump_threshold=0))
        except BaseExceptionGroup as group:  # the timeline task stopped the run on purpose
            stopped = group.subgroup(ScenarioFailed)
            if stopped is None:
                raise
            raise _first(stopped) from None
        return RunResult(
            self.scenario, self.seed, self.tally, self.phases, self.rejected,
            self.client_outcomes, time.perf_counter() - started,
        )

    async def _main(self) -> None:
        scenario = self.scenario
        cas = build_cas(scenario, self.base)
        zones = [zone for tenant in scenario.tenants for zone in tenant.zones]
        deployment = Deployment(
            start=scenario.meta.start,
            settings=Settings(managed_ca_scope=scenario.settings.managed_ca_scope, seed=self.seed),
            identity=EdgeIdentity(names=self._certificate_names(zones)),
            collector=self.tally,
        )
        async with trio.open_nursery() as root:
            await deployment.start_in(root)
            self.tenancy = Tenancy(deployment.plane, cas)
            await self.tenancy.set_up(scenario.tenants)
            settings = NodeSettings(
                handshake_timeout=scenario.edge.handshake_timeout.total_seconds(),
                idle_timeout=scenario.edge.request_timeout.total_seconds(),
                max_chain_depth=scenario.edge.max_chain_depth,
            )
            for name in scenario.node_names:
                await deployment.add_node(name, link=Link(self._delay(name)), settings=settings)
            credentials = await self._credentials(cas)
            async with trio.open_nursery() as activity:
                activity.start_soon(self._play_timeline, deployment)
                for fleet in scenario.fleets:
                    context = client_context(
                        deployment.identity.configure_trust, credentials[fleet.name]
                    )
                    for index in range(fleet.clients):
                        activity.start_soon(self._client, deployment, fleet, index, context)
                if self.progress is not None:
                    activity.start_soon(self._report_progress)
            await self._drain()
            root.cancel_scope.cancel()

    def _certificate_names(self, zones: list[str]) -> tuple[str, ...]:
        """The edge certificate covers every zone, its wildcard, and each fleet's hostname (a
        name two labels below a zone is outside the wildcard)."""
        hostnames = {f.hostname.lower() for f in self.scenario.fleets}
        return tuple(sorted({*zones, *("*." + z for z in zones), *hostnames}))

    async def _drain(self) -> None:
        """Wait until every connection a client made is in the tally (its node has sent the
        event, which comes after the connection's requests): stopping earlier would lose them."""
        attempted = sum(sum(outcomes.values()) for outcomes in self.client_outcomes.values())
        with trio.move_on_after(DRAIN_TIMEOUT):
            while self.tally.totals.count("connections") < attempted:
                await trio.sleep(0.01)

    # --- set-up ---------------------------------------------------------------------------

    def _delay(self, node: str) -> Callable:
        """Seeded per node and snapshot version, so a snapshot's delay never changes."""
        spec = self.scenario.edge.propagation
        low, high = spec.min.total_seconds(), spec.max.total_seconds()

        def delay(snapshot) -> float:
            return random.Random(f"{self.seed}:{node}:{snapshot.version}").uniform(low, high)

        return delay

    async def _credentials(self, cas: dict[str, Ca]) -> dict:
        start = self.scenario.meta.start
        credentials: dict[str, Credential | None] = {}
        for fleet in self.scenario.fleets:
            cert = fleet.cert
            if cert is not None and cert.source is m.CertSource.MANAGED:
                credentials[fleet.name] = await self.tenancy.managed_credential(fleet)
            else:
                credentials[fleet.name] = fleet_credential(fleet, cas, start)
        return credentials

    # --- timeline -------------------------------------------------------------------------

    async def _play_timeline(self, deployment: Deployment) -> None:
        entries = sorted(enumerate(self.scenario.timeline), key=lambda pair: pair[1].at)
        for index, entry in entries:
            await trio.sleep_until(entry.at.total_seconds())
            if entry.phase is not None:
                self._open_phase(entry.phase, entry.at)
            try:
                await self._act(deployment, entry)
            except ApiError as err:
                self.rejected.append(
                    RejectedAction(index, entry.at, entry.action.value, err.code, err.message)
                )
                if self.scenario.settings.fail_on_rejected_action:
                    raise ScenarioFailed(
                        f"timeline[{index}] ({entry.action.value}) was refused: {err}"
                    ) from None

    def _open_phase(self, name: str, at: dt.timedelta) -> None:
        """A phase opened at the very start replaces the default first phase."""
        if at == dt.timedelta(0) and self.phases == [(FIRST_PHASE, at)]:
            self.phases = []
        self.phase = name
        self.phases.append((name, at))

    async def _act(self, deployment: Deployment, entry: m.TimelineEntry) -> None:
        if entry.action in CONTROL_ACTIONS:
            await self.tenancy.act(entry)
        elif entry.action is m.ActionKind.PARTITION:
            deployment.links[entry.node].cut()
        elif entry.action is m.ActionKind.HEAL:
            deployment.links[entry.node].heal()
        elif entry.action is m.ActionKind.RESTART_NODE:
            deployment.restart_node(entry.node)

    # --- clients --------------------------------------------------------------------------

    async def _client(self, deployment: Deployment, fleet: m.FleetSpec, index: int, context):
        rng = random.Random(f"{self.seed}:{fleet.name}:{index}")
        interval = fleet.interval.total_seconds()
        end = self.scenario.meta.duration.total_seconds()
        nodes = fleet.nodes or self.scenario.node_names
        moment, count = rng.uniform(0, interval), 0
        while moment < end:
            await trio.sleep_until(moment)
            node = nodes[(index + count) % len(nodes)]
            paths = [
                fleet.paths[(count + k) % len(fleet.paths)]
                for k in range(fleet.requests_per_connection)
            ]
            result = await visit(
                self._tagged_connect(deployment, node, fleet.name), context,
                sni=fleet.hostname, host=fleet.host, paths=paths,
            )
            self._count(fleet.name, result)
            count += 1
            moment += interval * rng.uniform(0.9, 1.1)

    def _tagged_connect(self, deployment: Deployment, node: str, fleet: str):
        def connect():
            accepted = deployment.network.connect(node)
            self.tally.tag(accepted.conn_id, fleet, self.phase)
            return accepted

        return connect

    def _count(self, fleet: str, result: ClientResult) -> None:
        outcomes = self.client_outcomes[fleet]
        outcomes[result.outcome.value] = outcomes.get(result.outcome.value, 0) + 1

    async def _report_progress(self) -> None:
        end = self.scenario.meta.duration.total_seconds()
        step = max(end / 200, 1.0)
        while trio.current_time() < end:
            self.progress(
                dt.timedelta(seconds=trio.current_time()), self.tally.totals.count("requests")
            )
            await trio.sleep(step)
        self.progress(dt.timedelta(seconds=end), self.tally.totals.count("requests"))
