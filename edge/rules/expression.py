"""Type-checking a parsed expression and turning it into nested closures, once per snapshot.

Evaluation runs per request, so the tree is compiled into Python closures: evaluating is a few
function calls and dict lookups, with no tree walking and no re-parsing. Checking and compiling
are one pass, so every closure that exists was built from a well-typed node.
"""

from __future__ import annotations

import difflib
import functools
import ipaddress
import operator
from collections.abc import Callable, Mapping

import attrs

from edge.rules import syntax
from edge.rules.errors import RuleSyntaxError
from edge.rules.fields import DEFAULTS, FIELD_TYPES, FieldType
from edge.rules.regex import PatternError, compile_pattern
from edge.rules.syntax import BareField, Comparison, Literal, Logical, Membership, Node, Not

Fields = Mapping[str, object]
Predicate = Callable[[Fields], bool]

_ORDERING = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_OPERATORS: Mapping[FieldType, tuple[str, ...]] = {
    FieldType.BOOL: ("==", "!="),
    FieldType.STRING: ("==", "!=", "<", "<=", ">", ">=", "contains", "matches"),
    FieldType.INT: ("==", "!=", "<", "<=", ">", ">="),
    FieldType.IP: ("==", "!="),
}


@attrs.frozen
class Expression:
    """A compiled expression: parsed, type-checked, ready to evaluate many times."""

    text: str
    fields: frozenset[str]  # the field names it reads
    _predicate: Predicate = attrs.field(eq=False, repr=False)

    def evaluate(self, fields: Fields) -> bool:
        """Whether the request matches. `fields` maps field names to values of the field's
        type (a str or an ipaddress object for `ip.src`); a missing field reads as false, "",
        0, or an `ip.src` equal to nothing."""
        return self._predicate(fields)


def compile_expression(text: str, *, schema: Mapping[str, FieldType] = FIELD_TYPES) -> Expression:
    """Parse, type-check and compile; `RuleSyntaxError` for anything wrong with `text`.

    `schema` names the fields and their types; the default is every field `edge` provides.
    """
    if not isinstance(text, str):
        raise RuleSyntaxError(1, "an expression (a string)", type(text).__name__)
    tree = syntax.parse(text)
    reads: set[str] = set()
    predicate = _Compiler(schema, reads).compile(tree)
    return Expression(text, frozenset(reads), predicate)


@attrs.frozen
class _Compiler:
    schema: Mapping[str, FieldType]
    reads: set[str]  # filled in as fields are met

    def compile(self, node: Node) -> Predicate:
        if isinstance(node, Logical):
            return _LOGICAL[node.op](tuple(self.compile(operand) for operand in node.operands))
        if isinstance(node, Not):
            inner = self.compile(node.operand)
            return lambda fields: not inner(fields)
        if isinstance(node, BareField):
            return self.bare(node)
        if isinstance(node, Comparison):
            return self.comparison(node)
        return self.membership(node)

    def field_type(self, field: syntax.Field) -> FieldType:
        kind = self.schema.get(field.name)
        if kind is None:
            close = difflib.get_close_matches(field.name, list(self.schema), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise RuleSyntaxError(field.column, "a known field name", f"{field.name!r}{hint}")
        self.reads.add(field.name)
        return kind

    def bare(self, node: BareField) -> Predicate:
        kind = self.field_type(node.field)
        if kind is not FieldType.BOOL:
            got = f"{node.field.name!r} ({kind.article} field, which needs a comparison)"
            raise RuleSyntaxError(node.field.column, "a boolean expression", got)
        name = node.field.name
        return lambda fields: fields.get(name, False) is True

    def comparison(self, node: Comparison) -> Predicate:
        kind = self.field_type(node.field)
        allowed = _OPERATORS[kind]
        if node.op not in allowed:
            expected = f"an operator for {kind.article} field ({', '.join(allowed)} or in)"
            raise RuleSyntaxError(node.op_column, expected, repr(node.op_text))
        value = _typed(node.value, kind).value
        name, default = node.field.name, DEFAULTS[kind]
        if kind is FieldType.IP:
            if node.value.is_network:
                expected = "a single IP address (a CIDR range goes in a set: ip.src in {...})"
                raise RuleSyntaxError(node.value.column, expected, repr(node.value.text))
            equal = _ip_membership(frozenset([value]), ())
            if node.op == "==":
                return lambda fields: equal(fields.get(name))
            return lambda fields: not equal(fields.get(name))
        if node.op == "==":
            return lambda fields: fields.get(name, default) == value
        if node.op == "!=":
            return lambda fields: fields.get(name, default) != value
        if node.op == "contains":
            return lambda fields: value in fields.get(name, default)
        if node.op == "matches":
            return self.matches(node, name)
        compare = _ORDERING[node.op]
        return lambda fields: compare(fields.get(name, default), value)

    def matches(self, node: Comparison, name: str) -> Predicate:
        try:
            search = compile_pattern(node.value.value)
        except PatternError as error:
            expected = "a regular expression in the supported subset"
            raise RuleSyntaxError(node.value.column, expected, str(error)) from None
        return lambda fields: search(fields.get(name, ""))

    def membership(self, node: Membership) -> Predicate:
        kind = self.field_type(node.field)
        values = [_typed(literal, kind).value for literal in node.values]
        name, default = node.field.name, DEFAULTS[kind]
        if kind is FieldType.IP:
            inside = _ip_membership(
                frozenset(v for v in values if not isinstance(v, _NETWORKS)),
                tuple(v for v in values if isinstance(v, _NETWORKS)),
            )
            return lambda fields: inside(fields.get(name))
        members = frozenset(values)
        return lambda fields: fields.get(name, default) in members


def _typed(literal: Literal, kind: FieldType) -> Literal:
    if literal.kind is not kind:
        got = f"{literal.text} ({literal.kind.article})"
        raise RuleSyntaxError(literal.column, kind.article, got)
    return literal


_NETWORKS = (ipaddress.IPv4Network, ipaddress.IPv6Network)
_ADDRESSES = (ipaddress.IPv4Address, ipaddress.IPv6Address)


@functools.lru_cache(maxsize=4096)
def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """`ip.src` as a string (how a socket gives it) parsed once per distinct address."""
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _ip_membership(addresses: frozenset, networks: tuple) -> Callable[[object], bool]:
    """In the set of addresses or one of the networks; an absent or malformed address is in none."""

    def inside(value: object) -> bool:
        if isinstance(value, str):
            value = _address(value)
        if not isinstance(value, _ADDRESSES):
            return False
        return value in addresses or any(value in network for network in networks)

    return inside


def _all(parts: tuple[Predicate, ...]) -> Predicate:
    if len(parts) == 2:
        first, second = parts
        return lambda fields: first(fields) and second(fields)

    def every(fields: Fields) -> bool:
        for part in parts:
            if not part(fields):
                return False
        return True

    return every


def _any(parts: tuple[Predicate, ...]) -> Predicate:
    if len(parts) == 2:
        first, second = parts
        return lambda fields: first(fields) or second(fields)

    def some(fields: Fields) -> bool:
        for part in parts:
            if part(fields):
                return True
        return False

    return some


def _odd(parts: tuple[Predicate, ...]) -> Predicate:
    if len(parts) == 2:
        first, second = parts
        return lambda fields: first(fields) != second(fields)

    def parity(fields: Fields) -> bool:
        result = False
        for part in parts:
            result = result != part(fields)
        return result

    return parity


_LOGICAL: Mapping[str, Callable[[tuple[Predicate, ...]], Predicate]] = {
    "and": _all,
    "or": _any,
    "xor": _odd,
}
