"""The rules language's syntax and type checking: what parses, how it groups, where errors point."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.node.verdict import ClientAuthFields
from edge.rules import (
    FIELD_TYPES,
    MAX_DEPTH,
    MAX_EXPRESSION_LENGTH,
    FieldType,
    RuleSyntaxError,
    compile_expression,
)
from edge.rules.syntax import BareField, Comparison, Logical, Membership, Not, parse

REFERENCE_EXAMPLES = [
    '(http.host in {"api.example.com" "b.example.com"} and not cf.tls_client_auth.cert_verified)',
    'not cf.tls_client_auth.cert_verified and http.request.uri.path in {"/api"}',
    'not cf.tls_client_auth.cert_verified and http.request.uri.path in {"/api"}'
    " or cf.tls_client_auth.cert_revoked",
    'cf.tls_client_auth.cert_issuer_ski eq "A5A4C1E3D5B4B2D2F1A0E9D8C7B6A5F4E3D2C1B0"',
]


def test_fields_match_what_the_node_produces():
    python_types = {bool: FieldType.BOOL, str: FieldType.STRING}
    produced = ClientAuthFields().as_fields()
    assert len(produced) == 21
    for name, value in produced.items():
        assert FIELD_TYPES[name] is python_types[type(value)], name
    others = set(FIELD_TYPES) - set(produced)
    assert others == {
        "http.host",
        "http.request.uri.path",
        "http.request.method",
        "http.request.full_uri",
        "ip.src",
        "ssl",
        "cf.tls_version",
    }


@pytest.mark.parametrize("text", REFERENCE_EXAMPLES)
def test_reference_examples_compile(text):
    expression = compile_expression(text)
    assert expression.text == text
    assert expression.fields <= set(FIELD_TYPES)


def test_fields_lists_what_the_expression_reads():
    expression = compile_expression(REFERENCE_EXAMPLES[2])
    assert expression.fields == {
        "cf.tls_client_auth.cert_verified",
        "http.request.uri.path",
        "cf.tls_client_auth.cert_revoked",
    }


# --- grouping ------------------------------------------------------------------------------------


def shape(node) -> object:
    """A tree as nested tuples of operator names and field names, for readable assertions."""
    if isinstance(node, Logical):
        return (node.op, *(shape(child) for child in node.operands))
    if isinstance(node, Not):
        return ("not", shape(node.operand))
    if isinstance(node, BareField):
        return node.field.name
    if isinstance(node, Comparison):
        return (node.op, node.field.name, node.value.value)
    assert isinstance(node, Membership)
    return ("in", node.field.name, tuple(literal.value for literal in node.values))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("a or b and c", ("or", "a", ("and", "b", "c"))),
        ("a and b or c", ("or", ("and", "a", "b"), "c")),
        ("a xor b and c", ("xor", "a", ("and", "b", "c"))),
        ("a or b xor c", ("or", "a", ("xor", "b", "c"))),
        ("a xor b or c xor d", ("or", ("xor", "a", "b"), ("xor", "c", "d"))),
        ("not a and b", ("and", ("not", "a"), "b")),
        ("not a or not b", ("or", ("not", "a"), ("not", "b"))),
        ("not (a or b)", ("not", ("or", "a", "b"))),
        ("(a or b) and c", ("and", ("or", "a", "b"), "c")),
        ("a and b and c", ("and", "a", "b", "c")),
        ("! ! a", ("not", ("not", "a"))),
        ('not h == "x"', ("not", ("==", "h", "x"))),
        ("a || b && c ^^ d", ("or", "a", ("xor", ("and", "b", "c"), "d"))),
        ("((a))", "a"),
    ],
)
def test_precedence_is_not_and_xor_or(text, expected):
    assert shape(parse(text)) == expected


@pytest.mark.parametrize(
    "symbol, word, canonical",
    [
        ("==", "eq", "=="),
        ("!=", "ne", "!="),
        ("<", "lt", "<"),
        ("<=", "le", "<="),
        (">", "gt", ">"),
        (">=", "ge", ">="),
    ],
)
def test_comparison_synonyms(symbol, word, canonical):
    assert shape(parse(f'h {symbol} "x"')) == shape(parse(f'h {word} "x"')) == (canonical, "h", "x")


@pytest.mark.parametrize("symbol, word", [("&&", "and"), ("||", "or"), ("^^", "xor")])
def test_logical_synonyms(symbol, word):
    assert shape(parse(f"a {symbol} b")) == shape(parse(f"a {word} b")) == (word, "a", "b")
    assert shape(parse(f"a{symbol}b")) == (word, "a", "b")


def test_every_operator_parses_on_a_string_field():
    for op in (
        "==",
        "!=",
        "<",
        "<=",
        ">",
        ">=",
        "eq",
        "ne",
        "lt",
        "le",
        "gt",
        "ge",
        "contains",
        "matches",
    ):
        compile_expression(f'http.host {op} "a"')
    compile_expression('http.host in {"a" "b"}')


def test_literals():
    assert shape(parse('h in {"a" "b\\"c" "d\\\\e" ""}')) == ("in", "h", ("a", 'b"c', "d\\e", ""))
    assert shape(parse("n in {1 -2 9223372036854775807}")) == ("in", "n", (1, -2, 2**63 - 1))
    assert shape(parse("b in {true false}")) == ("in", "b", (True, False))
    addresses = parse("ip.src in {192.0.2.1 10.0.0.0/8 2001:db8::1 2001:db8::/32}")
    assert [str(literal.value) for literal in addresses.values] == [
        "192.0.2.1",
        "10.0.0.0/8",
        "2001:db8::1",
        "2001:db8::/32",
    ]


def test_whitespace_and_newlines_are_free():
    assert shape(parse(' \n\th\n==\t"x"\n and\nb ')) == ("and", ("==", "h", "x"), "b")
    assert shape(parse('h in{"a""b"}')) == ("in", "h", ("a", "b"))


def test_keywords_are_not_field_prefixes():
    assert shape(parse("notes and android")) == ("and", "notes", "android")


# --- errors --------------------------------------------------------------------------------------


def error_of(text: str, **kwargs) -> RuleSyntaxError:
    with pytest.raises(RuleSyntaxError) as caught:
        compile_expression(text, **kwargs)
    return caught.value


@pytest.mark.parametrize(
    "text, column, expected, got",
    [
        ('http.host in {"a"} and {', 24, "a field name", "'{'"),
        ("", 1, "a field name", "end of input"),
        ("not", 4, "a field name", "end of input"),
        ("ssl and", 8, "a field name", "end of input"),
        ("and ssl", 1, "a field name", "'and'"),
        ("http.host ==", 13, "a value", "end of input"),
        ("http.host == @", 14, "a value", "'@'"),
        ('http.host == "x" "y"', 18, "a logical operator or end of input", "'\"y\"'"),
        ("ssl ssl", 5, "a comparison operator, a logical operator or end of input", "'ssl'"),
        ("(ssl", 5, "a comparison operator, a logical operator or ')'", "end of input"),
        ("(ssl == true", 13, "a logical operator or ')'", "end of input"),
        ("ssl)", 4, "a comparison operator, a logical operator or end of input", "')'"),
        ("http.host in ssl", 14, "'{'", "'ssl'"),
        ("http.host in {}", 15, "a value", "'}'"),
        ('http.host in {"a"', 18, "a value or '}'", "end of input"),
        ('http.host == "abc', 14, "a string closed by '\"'", "an unterminated string"),
        (
            'http.host == "a\\d"',
            16,
            'an escape \\" or \\\\ (write \\\\ for a backslash)',
            "'\\\\d'",
        ),
        ("Ssl", 1, "a field name", "'S'"),
        ("ip.src == 1.2.3.999", 11, "an IP address or CIDR range", "'1.2.3.999'"),
        ("ip.src == 1.2", 12, "a logical operator or end of input", "'.'"),
    ],
)
def test_syntax_errors_say_where_and_what(text, column, expected, got):
    error = error_of(text)
    assert (error.column, error.expected, error.got) == (column, expected, got)
    assert str(error) == f"column {column}: expected {expected}, got {got}"


def test_the_brief_example_message():
    assert str(error_of('http.host in {"a"} {')) == (
        "column 20: expected a logical operator or end of input, got '{'"
    )
    assert str(error_of("ssl and {")) == "column 9: expected a field name, got '{'"


@pytest.mark.parametrize(
    "text, column, expected, got",
    [
        ('http.hots == "a"', 1, "a known field name", "'http.hots' (did you mean 'http.host'?)"),
        ("zzz", 1, "a known field name", "'zzz'"),
        ("http.host == true", 14, "a string", "true (a boolean)"),
        ("http.host == 1", 14, "a string", "1 (an integer)"),
        ('ssl == "true"', 8, "a boolean", '"true" (a string)'),
        ('ip.src == "192.0.2.1"', 11, "an IP address", '"192.0.2.1" (a string)'),
        ('http.host in {"a" 1 "b"}', 19, "a string", "1 (an integer)"),
        ('ssl contains "x"', 5, "an operator for a boolean field (==, != or in)", "'contains'"),
        ("ssl < true", 5, "an operator for a boolean field (==, != or in)", "'<'"),
        ("ip.src gt 192.0.2.1", 8, "an operator for an IP address field (==, != or in)", "'gt'"),
        (
            'ip.src matches "x"',
            8,
            "an operator for an IP address field (==, != or in)",
            "'matches'",
        ),
        (
            "http.host",
            1,
            "a boolean expression",
            "'http.host' (a string field, which needs a comparison)",
        ),
        (
            "ssl and not http.host",
            13,
            "a boolean expression",
            "'http.host' (a string field, which needs a comparison)",
        ),
        (
            "ip.src == 10.0.0.0/8",
            11,
            "a single IP address (a CIDR range goes in a set: ip.src in {...})",
            "'10.0.0.0/8'",
        ),
    ],
)
def test_type_errors_say_where_and_what(text, column, expected, got):
    error = error_of(text)
    assert (error.column, error.expected, error.got) == (column, expected, got)


def test_integers_type_check_against_integer_fields():
    schema = {**FIELD_TYPES, "test.count": FieldType.INT}
    for op in ("==", "!=", "<", "<=", ">", ">=", "in"):
        value = "{1 2}" if op == "in" else "3"
        compile_expression(f"test.count {op} {value}", schema=schema)
    assert error_of('test.count == "3"', schema=schema).expected == "an integer"
    assert error_of("test.count contains 3", schema=schema).column == 12
    assert error_of("http.host < 3").expected == "a string"
    assert error_of("test.count == 99999999999999999999", schema=schema).expected == (
        "an integer that fits in 64 bits"
    )


@pytest.mark.parametrize(
    "pattern, got",
    [
        ("(a)\\\\1", "a backreference"),
        ("(?=a)b", "a lookaround assertion"),
        ("(?<!a)b", "a lookaround assertion"),
        ("(?>a)", "an atomic group"),
        ("a*+", "a possessive quantifier"),
        ("\\\\bword", "a word boundary (\\b or \\B)"),
        ("(?m)^a", "the flag (?m) (multi-line anchors are not supported)"),
        ("[a", "an invalid pattern (unterminated character set)"),
        ("a" * 1025, "a pattern of 1025 characters (at most 1024)"),
        ("(a{30}){40}", "a pattern of more than 1000 states once repetitions expand"),
    ],
)
def test_unsafe_or_unsupported_regexes_are_refused_at_the_pattern(pattern, got):
    text = f'http.request.uri.path matches "{pattern}"'
    error = error_of(text)
    assert error.column == 31
    assert error.expected == "a regular expression in the supported subset"
    assert error.got == got


def test_expression_length_and_depth_are_bounded():
    long = "ssl or " * (MAX_EXPRESSION_LENGTH // 7) + "ssl"
    assert error_of(long).column == MAX_EXPRESSION_LENGTH + 1
    assert error_of("not " * (MAX_DEPTH + 1) + "ssl").expected.startswith("an expression nested")
    compile_expression("not " * (MAX_DEPTH - 1) + "ssl")
    compile_expression("(" * 1000 + "ssl" + ")" * 1000)  # parentheses alone nest nothing
    compile_expression(" or ".join(["ssl"] * 500))  # a flat chain is one node


def test_a_non_string_expression_is_a_rule_syntax_error():
    assert error_of(None).expected == "an expression (a string)"  # type: ignore[arg-type]


def test_errors_are_value_errors_and_pickle():
    error = error_of("ssl and").located("rules[3].expression")
    assert isinstance(error, ValueError)
    assert str(error) == "rules[3].expression: column 8: expected a field name, got end of input"
    again = pickle.loads(pickle.dumps(error))
    assert (str(again), again.column, again.expected) == (str(error), 8, "a field name")


# --- robustness ----------------------------------------------------------------------------------


def check_only_rule_syntax_errors(text: str) -> None:
    """Compiling any text gives an expression or a RuleSyntaxError pointing inside (or just past)
    the text; a compiled expression evaluates to a bool on an empty request."""
    try:
        expression = compile_expression(text)
    except RuleSyntaxError as error:
        assert 1 <= error.column <= len(text) + 1
        assert str(error).startswith(f"column {error.column}: expected ")
    else:
        assert expression.evaluate({}) in (True, False)


@given(st.text(max_size=200))
def test_arbitrary_text_only_raises_rule_syntax_error(text):
    check_only_rule_syntax_errors(text)


TOKENS = [
    "(", ")", "{", "}", "not", "!", "and", "&&", "or", "||", "xor", "^^",
    "==", "eq", "!=", "ne", "<", "lt", "<=", "le", ">", "gt", ">=", "ge",
    "contains", "matches", "in", "true", "false",
    "0", "-7", "99999999999999999999", "192.0.2.1", "10.0.0.0/8", "::1", "1.2.3", "2001:db8::/129",
    '"a"', '""', '"\\""', '"\\\\"', '"\\n"', '"unterminated', '"(a)\\\\1"', '"[a"', '"^/api/.*$"',
    "ssl", "http.host", "ip.src", "http.request.uri.path", "cf.tls_client_auth.cert_verified",
    "cf.tls_client_auth.cert_issuer_ski", "cf.tls_version", "unknown.field", "@", ".", "-",
]  # fmt: skip


@given(st.lists(st.sampled_from(TOKENS), max_size=25), st.lists(st.sampled_from(["", " ", "\n"])))
def test_text_made_of_the_languages_tokens_only_raises_rule_syntax_error(tokens, gaps):
    pieces = []
    for index, token in enumerate(tokens):
        pieces.append(token)
        pieces.append(gaps[index] if index < len(gaps) else " ")
    check_only_rule_syntax_errors("".join(pieces))
