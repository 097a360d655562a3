"""A subset of Cloudflare's Rules language (wirefilter) for custom rules on the edge.

Pure: text in, compiled closures out; no I/O. Compile once per snapshot with
`compile_expression` or `compile_rules`, evaluate per request. docs/rules.md lists the fields,
operators, literals and limits.
"""

from edge.rules.errors import RuleSyntaxError
from edge.rules.expression import Expression, compile_expression
from edge.rules.fields import FIELD_TYPES, FieldType
from edge.rules.ruleset import CompiledRule, Evaluation, RuleSet, compile_rules
from edge.rules.syntax import MAX_DEPTH, MAX_EXPRESSION_LENGTH

__all__ = [
    "FIELD_TYPES",
    "MAX_DEPTH",
    "MAX_EXPRESSION_LENGTH",
    "CompiledRule",
    "Evaluation",
    "Expression",
    "FieldType",
    "RuleSet",
    "RuleSyntaxError",
    "compile_expression",
    "compile_rules",
]
