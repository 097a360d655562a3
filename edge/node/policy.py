"""The per-request decision: custom rules from the snapshot, or a fixed per-hostname mode.

A policy sees the connection's verdict and the request, and says what happens: allow, log,
block (403) or skip, plus `would_block`, the decision if every log rule were a block rule (the
number a team needs before it enforces).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Protocol

import attrs

from edge.control.records import Action
from edge.control.snapshot import EdgeConfig, ZoneConfig
from edge.events import Decision
from edge.node.verdict import Verdict
from edge.rules import RuleSet, compile_rules


@attrs.frozen
class RequestFacts:
    """What a policy may look at: the request and the TLS facts of its connection."""

    verdict: Verdict
    sni: str | None
    host: str
    method: str
    path: str
    target: str = ""
    zone: ZoneConfig | None = None  # the zone of the Host header, in the connection's snapshot
    tls_version: str = ""
    client_ip: str = ""

    def fields(self) -> dict[str, bool | str]:
        """The Rules-language fields of this request."""
        return {
            **self.verdict.fields.as_fields(),
            "http.host": self.host,
            "http.request.uri.path": self.path,
            "http.request.method": self.method,
            "http.request.full_uri": f"https://{self.host}{self.target or self.path}",
            "ip.src": self.client_ip,
            "ssl": True,
            "cf.tls_version": self.tls_version,
        }


@attrs.frozen
class PolicyDecision:
    decision: Decision
    would_block: bool
    matched: tuple[str, ...] = ()

    @property
    def status(self) -> int | None:
        """403 when the edge answers itself; None when the request goes to the origin."""
        return 403 if self.decision is Decision.BLOCK else None


ALLOW = PolicyDecision(Decision.ALLOW, False)


class Policy(Protocol):
    def prepare(self, snapshot: EdgeConfig) -> None:
        """Do per-snapshot work (compiling rules) before requests need it."""

    def decide(self, facts: RequestFacts) -> PolicyDecision: ...


_DECISIONS = {Action.BLOCK: Decision.BLOCK, Action.LOG: Decision.LOG, Action.SKIP: Decision.SKIP}


class RulesPolicy:
    """Zones' custom rules, compiled once per distinct rule list.

    Keyed by the rule tuple itself, so a connection still on an older snapshot and one on the
    newest each find theirs without recompiling; `prepare` forgets lists no snapshot uses.
    """

    def __init__(self) -> None:
        self._compiled: dict[tuple, RuleSet] = {}

    def _rules(self, rules: tuple) -> RuleSet:
        compiled = self._compiled.get(rules)
        if compiled is None:
            compiled = self._compiled[rules] = compile_rules(rules)
        return compiled

    def prepare(self, snapshot: EdgeConfig) -> None:
        current = {zone.rules for zone in snapshot.zones.values() if zone.rules}
        self._compiled = {rules: self._compiled.get(rules) or compile_rules(rules)
                          for rules in current}

    def decide(self, facts: RequestFacts) -> PolicyDecision:
        if facts.zone is None or not facts.zone.rules:
            return ALLOW
        rules = facts.zone.rules
        evaluation = self._rules(rules).evaluate(facts.fields())
        matched = tuple(rules[i].description or rules[i].expression for i in evaluation.matched)
        decision = _DECISIONS.get(evaluation.action, Decision.ALLOW)
        return PolicyDecision(decision, evaluation.would_block, matched)


class Mode(str, enum.Enum):
    LOG = "log"
    BLOCK = "block"


@attrs.frozen
class HostModePolicy:
    """Per hostname, log or block requests whose certificate is not verified (or is revoked).

    A fixed policy for tests and benchmarks that want no rules; hostnames without a mode are
    not policed.
    """

    modes: Mapping[str, Mode] = attrs.field(factory=dict)

    def prepare(self, snapshot: EdgeConfig) -> None:
        pass

    def decide(self, facts: RequestFacts) -> PolicyDecision:
        mode = self.modes.get(facts.host)
        failing = not facts.verdict.verified or facts.verdict.revoked
        if mode is None or not failing:
            return ALLOW
        rule = f"{mode.value} unverified on {facts.host}"
        decision = Decision.BLOCK if mode is Mode.BLOCK else Decision.LOG
        return PolicyDecision(decision, True, (rule,))
