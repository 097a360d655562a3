"""Cloudflare custom-rule semantics over an ordered list of compiled rules.

Rules run in order; disabled rules are skipped. `log` records a match and goes on, `block`
ends evaluation with a 403, `skip` ends evaluation of the remaining custom rules (the request
goes on). `would_block` is the rehearsal number: the decision had every `log` rule been a
`block` rule, i.e. whether a log or block rule matches before any skip rule does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs

from edge.control.records import Action, Rule
from edge.rules.errors import RuleSyntaxError
from edge.rules.expression import Expression, compile_expression
from edge.rules.fields import FIELD_TYPES, FieldType


@attrs.frozen
class Evaluation:
    matched: tuple[int, ...]  # indexes (in the rule list) of rules that matched and acted, in order
    action: Action | None  # BLOCK, SKIP, LOG if only log rules matched, None if nothing did
    would_block: bool


NO_MATCH = Evaluation((), None, False)


@attrs.frozen
class CompiledRule:
    index: int  # position in the list given to compile_rules, disabled rules included
    rule: Rule
    expression: Expression


@attrs.frozen
class RuleSet:
    """The enabled rules of a zone, compiled; build one per snapshot, evaluate per request."""

    rules: tuple[CompiledRule, ...]
    fields: frozenset[str]  # every field the enabled rules read

    def evaluate(self, fields: Mapping[str, object]) -> Evaluation:
        """The outcome for one request, with the semantics in this module's docstring."""
        matched: list[int] = []
        action: Action | None = None
        logged = False
        for compiled in self.rules:
            if not compiled.expression.evaluate(fields):
                continue
            matched.append(compiled.index)
            action = compiled.rule.action
            if action is not Action.LOG:  # block and skip both end evaluation
                break
            logged = True
        if not matched:
            return NO_MATCH
        return Evaluation(tuple(matched), action, logged or action is Action.BLOCK)


def compile_rules(
    rules: Sequence[Rule], *, schema: Mapping[str, FieldType] = FIELD_TYPES
) -> RuleSet:
    """Compile every rule (disabled ones too: a bad expression is refused either way).

    Raises `RuleSyntaxError` located at the first bad rule, e.g. `rules[2].expression: ...`.
    """
    compiled = []
    for index, rule in enumerate(rules):
        try:
            expression = compile_expression(rule.expression, schema=schema)
        except RuleSyntaxError as error:
            raise error.located(f"rules[{index}].expression") from None
        if rule.enabled:
            checked = attrs.evolve(rule, action=Action(rule.action))  # accepts "block" as well
            compiled.append(CompiledRule(index, checked, expression))
    reads = frozenset().union(*(c.expression.fields for c in compiled))
    return RuleSet(tuple(compiled), reads)
