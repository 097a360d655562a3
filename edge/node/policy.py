"""The per-request decision hook, and its placeholder until the rules language lands.

A policy sees the connection's verdict and the request, and says what happens: allow, log,
block (403) or skip, plus `would_block`, the decision if every log rule were a block rule (the
number a team needs before it enforces).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Protocol

import attrs

from edge.events import Decision
from edge.node.verdict import Verdict


@attrs.frozen
class RequestFacts:
    """What a policy may look at: the request and the TLS facts of its connection."""

    verdict: Verdict
    sni: str | None
    host: str
    method: str
    path: str


@attrs.frozen
class PolicyDecision:
    decision: Decision
    would_block: bool
    matched: tuple[str, ...] = ()

    @property
    def status(self) -> int | None:
        """403 when the edge answers itself; None when the request goes to the origin."""
        return 403 if self.decision is Decision.BLOCK else None


class Policy(Protocol):
    def decide(self, facts: RequestFacts) -> PolicyDecision: ...


class Mode(str, enum.Enum):
    LOG = "log"
    BLOCK = "block"


@attrs.frozen
class HostModePolicy:
    """Per hostname, log or block requests whose certificate is not verified (or is revoked).

    Hostnames without a mode are not policed. The modes live with the policy, not in
    snapshots, until custom rules replace this placeholder.
    """

    modes: Mapping[str, Mode] = attrs.field(factory=dict)

    def decide(self, facts: RequestFacts) -> PolicyDecision:
        mode = self.modes.get(facts.host)
        failing = not facts.verdict.verified or facts.verdict.revoked
        if mode is None or not failing:
            return PolicyDecision(Decision.ALLOW, False)
        rule = f"{mode.value} unverified on {facts.host}"
        decision = Decision.BLOCK if mode is Mode.BLOCK else Decision.LOG
        return PolicyDecision(decision, True, (rule,))
