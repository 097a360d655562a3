"""Parsing rule expressions into a small syntax tree, with lark's LALR parser.

The grammar encodes wirefilter's precedence (not > and > xor > or). Trees are built while
parsing (lark's inline transformer), so nothing here recurses: a hostile expression costs time
linear in its length and can only fail with `RuleSyntaxError`. Types are not checked here (see
`typecheck`); literals are decoded, and must be well-formed.
"""

from __future__ import annotations

import ipaddress
from typing import Union

import attrs
from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from edge.rules.errors import RuleSyntaxError
from edge.rules.fields import FieldType

MAX_EXPRESSION_LENGTH = 4096  # characters, Cloudflare's limit for a rule expression
MAX_DEPTH = 64  # nested `not`s, groups of different operators and the like
_INT_RANGE = range(-(2**63), 2**63)

_GRAMMAR = r"""
?start: or_expr
?or_expr: xor_expr ((OR | OROR) xor_expr)*
?xor_expr: and_expr ((XOR | CARETS) and_expr)*
?and_expr: unary ((AND | AMPS) unary)*
?unary: (NOT | BANG) unary -> negation
      | atom
?atom: FIELD -> bare
     | FIELD _cmp _value -> compare
     | FIELD IN "{" _value+ "}" -> in_set
     | "(" or_expr ")"
_cmp: EQ | EQ_KW | NE | NE_KW | LT | LT_KW | LE | LE_KW | GT | GT_KW | GE | GE_KW
    | CONTAINS | MATCHES
_value: STRING | INT | TRUE | FALSE | IP

OR: "or"
OROR: "||"
XOR: "xor"
CARETS: "^^"
AND: "and"
AMPS: "&&"
NOT: "not"
BANG: "!"
EQ: "=="
EQ_KW: "eq"
NE: "!="
NE_KW: "ne"
LT: "<"
LT_KW: "lt"
LE: "<="
LE_KW: "le"
GT: ">"
GT_KW: "gt"
GE: ">="
GE_KW: "ge"
CONTAINS: "contains"
MATCHES: "matches"
IN: "in"
TRUE: "true"
FALSE: "false"
FIELD: /[a-z][a-z0-9_]*(\.[a-z0-9_]+)*/
STRING: /"(?:[^"\\]|\\[\s\S])*"/
INT: /-?[0-9]+/
IP.2: /[0-9]{1,3}(\.[0-9]{1,3}){3}(\/[0-9]{1,3})?/
    | /[0-9a-fA-F]*:[0-9a-fA-F:.]*(\/[0-9]{1,3})?/
%ignore /\s+/
"""

# Comparison operators by their canonical spelling.
OPERATORS = {
    "==": "==", "eq": "==", "!=": "!=", "ne": "!=",
    "<": "<", "lt": "<", "<=": "<=", "le": "<=",
    ">": ">", "gt": ">", ">=": ">=", "ge": ">=",
    "contains": "contains", "matches": "matches",
}  # fmt: skip

IpValue = Union[
    ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Network, ipaddress.IPv6Network
]


@attrs.frozen
class Field:
    name: str
    column: int


@attrs.frozen
class Literal:
    kind: FieldType
    value: bool | int | str | IpValue
    text: str  # as written, for error messages
    column: int

    @property
    def is_network(self) -> bool:
        return isinstance(self.value, (ipaddress.IPv4Network, ipaddress.IPv6Network))


@attrs.frozen
class BareField:
    field: Field
    depth: int = 1


@attrs.frozen
class Comparison:
    field: Field
    op: str  # canonical: == != < <= > >= contains matches
    op_text: str
    op_column: int
    value: Literal
    depth: int = 1


@attrs.frozen
class Membership:
    field: Field
    values: tuple[Literal, ...]
    op_column: int
    depth: int = 1


@attrs.frozen
class Not:
    operand: Node
    column: int
    depth: int


@attrs.frozen
class Logical:
    op: str  # and, xor, or
    operands: tuple[Node, ...]
    depth: int


Node = Union[BareField, Comparison, Membership, Not, Logical]


def _column(token: Token) -> int:
    return token.start_pos + 1


def _checked_depth(depth: int, column: int) -> int:
    if depth > MAX_DEPTH:
        expected = f"an expression nested at most {MAX_DEPTH} deep"
        raise RuleSyntaxError(column, expected, "deeper nesting")
    return depth


def _first_column(node: Node) -> int:
    while isinstance(node, (Not, Logical)):
        if isinstance(node, Not):
            return node.column
        node = node.operands[0]
    return node.field.column


class _Build(Transformer):
    """Callbacks run by the parser as it reduces; stateless, so one parser serves everyone."""

    def _logical(self, op: str, children: list) -> Logical:
        operands = tuple(children[0::2])
        depth = 1 + max(node.depth for node in operands)
        return Logical(op, operands, _checked_depth(depth, _first_column(operands[0])))

    def or_expr(self, children: list) -> Logical:
        return self._logical("or", children)

    def xor_expr(self, children: list) -> Logical:
        return self._logical("xor", children)

    def and_expr(self, children: list) -> Logical:
        return self._logical("and", children)

    def negation(self, children: list) -> Not:
        token, operand = children
        return Not(operand, _column(token), _checked_depth(operand.depth + 1, _column(token)))

    def bare(self, children: list) -> BareField:
        (name,) = children
        return BareField(Field(str(name), _column(name)))

    def compare(self, children: list) -> Comparison:
        name, op, value = children
        field = Field(str(name), _column(name))
        return Comparison(field, OPERATORS[str(op)], str(op), _column(op), _literal(value))

    def in_set(self, children: list) -> Membership:
        name, op, *values = children
        field = Field(str(name), _column(name))
        return Membership(field, tuple(_literal(value) for value in values), _column(op))


def _literal(token: Token) -> Literal:
    text, column = str(token), _column(token)
    if token.type == "STRING":
        return Literal(FieldType.STRING, _unescape(text, column), text, column)
    if token.type == "INT":
        if int(text) not in _INT_RANGE:
            raise RuleSyntaxError(column, "an integer that fits in 64 bits", repr(text))
        return Literal(FieldType.INT, int(text), text, column)
    if token.type in ("TRUE", "FALSE"):
        return Literal(FieldType.BOOL, token.type == "TRUE", text, column)
    return Literal(FieldType.IP, _ip(text, column), text, column)


def _unescape(text: str, column: int) -> str:
    """The string's value: only \\" and \\\\ are escapes, as in wirefilter's plain strings."""
    body, out, index = text[1:-1], [], 0
    while index < len(body):
        char = body[index]
        if char == "\\":
            escaped = body[index + 1]
            if escaped not in '"\\':
                raise RuleSyntaxError(
                    column + 1 + index, 'an escape \\" or \\\\ (write \\\\ for a backslash)',
                    repr("\\" + escaped),
                )  # fmt: skip
            out.append(escaped)
            index += 2
        else:
            out.append(char)
            index += 1
    return "".join(out)


def _ip(text: str, column: int) -> IpValue:
    try:
        if "/" in text:
            return ipaddress.ip_network(text, strict=False)
        return ipaddress.ip_address(text)
    except ValueError:
        raise RuleSyntaxError(column, "an IP address or CIDR range", repr(text)) from None


_PARSER = Lark(_GRAMMAR, parser="lalr", lexer="basic", transformer=_Build())

# How errors name what the parser would have accepted.
_COMPARISON_TERMINALS = frozenset(
    "EQ EQ_KW NE NE_KW LT LT_KW LE LE_KW GT GT_KW GE GE_KW CONTAINS MATCHES IN".split()
)
_LOGICAL_TERMINALS = frozenset("OR OROR XOR CARETS AND AMPS".split())
_VALUE_TERMINALS = frozenset("STRING INT TRUE FALSE IP".split())
_SIMPLE_NAMES = {"RPAR": "')'", "LBRACE": "'{'", "RBRACE": "'}'", "$END": "end of input"}


def parse(text: str) -> Node:
    """The syntax tree of an expression, or `RuleSyntaxError` saying where and why not."""
    if len(text) > MAX_EXPRESSION_LENGTH:
        expected = f"an expression of at most {MAX_EXPRESSION_LENGTH} characters"
        raise RuleSyntaxError(MAX_EXPRESSION_LENGTH + 1, expected, f"{len(text)} characters")
    interactive = _PARSER.parse_interactive(text)
    seen: list[Token] = []
    try:
        for token in interactive.iter_parse():
            seen.append(token)
        return interactive.feed_eof()
    except UnexpectedToken as error:
        token = error.token
        if token.type == "$END":
            raise RuleSyntaxError(len(text) + 1, _expected(seen), "end of input") from None
        raise RuleSyntaxError(_column(token), _expected(seen[:-1]), _shown(str(token))) from None
    except UnexpectedCharacters as error:
        raise _unexpected_character(error.pos_in_stream, text, seen) from None
    except UnexpectedInput as error:  # lark's other kinds; not expected with LALR, kept safe
        raise RuleSyntaxError(len(text) + 1, "a complete expression", _shown(str(error))) from None


def _expected(prefix: list[Token]) -> str:
    """What could follow the tokens that parsed: replayed on a fresh parser, because the failed
    one may have reduced its stack already (LALR reduces on lookahead before it fails)."""
    replay = _PARSER.parse_interactive("")
    for token in prefix:
        replay.feed_token(token)
    return _describe(replay.accepts())


def _unexpected_character(position: int, text: str, seen: list[Token]) -> RuleSyntaxError:
    if text[position] == '"':
        return RuleSyntaxError(position + 1, "a string closed by '\"'", "an unterminated string")
    return RuleSyntaxError(position + 1, _expected(seen), _shown(text[position]))


def _describe(terminals: set[str]) -> str:
    """`a field name`, `a comparison operator, a logical operator or end of input`, ..."""
    if "FIELD" in terminals:  # the start of an operand: a field, `not` or `(`
        return "a field name"
    parts = []
    if terminals & _COMPARISON_TERMINALS:
        parts.append("a comparison operator")
    if terminals & _LOGICAL_TERMINALS:
        parts.append("a logical operator")
    if terminals & _VALUE_TERMINALS:
        parts.append("a value")
    parts += [name for terminal, name in _SIMPLE_NAMES.items() if terminal in terminals]
    if not parts:
        return "nothing more"
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")
